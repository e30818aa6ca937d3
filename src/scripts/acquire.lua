-- Acquire: take every lock key if each one is free or left over from this
-- acquisition's own earlier rounds, and advance the fence counters (phase 1).
-- All-or-nothing: if any lock key holds another holder's value, nothing is written.
--
-- KEYS[1..n]     lock keys, one per resource
-- KEYS[n+1..2n]  fence counter keys, one per resource (only when fencing is on)
-- ARGV[1]        this round's value
-- ARGV[2]        this acquisition's value prefix (leftovers of earlier rounds start with it)
-- ARGV[3]        ttl in ms
-- ARGV[4]        n, the number of resources
-- ARGV[5]        '1' when fencing is on, '0' otherwise
--
-- Returns {1, fence_1, ..., fence_n} on success (fences only with fencing on),
--         {0, pttl} when taken, pttl the longest remaining ttl in ms of another holder's key.
local n = tonumber(ARGV[4])
local prefix = ARGV[2]
local taken = false
local holder_ttl = 0
for i = 1, n do
  local v = redis.call('GET', KEYS[i])
  if v and string.sub(v, 1, #prefix) ~= prefix then
    taken = true
    local pttl = redis.call('PTTL', KEYS[i])
    if pttl > holder_ttl then holder_ttl = pttl end
  end
end
if taken then return {0, holder_ttl} end

local reply = {1}
for i = 1, n do
  redis.call('SET', KEYS[i], ARGV[1], 'PX', ARGV[3])
end
if ARGV[5] == '1' then
  local now
  for i = 1, n do
    local f = redis.call('GET', KEYS[n + i])
    if f then
      f = redis.call('INCR', KEYS[n + i])
    else
      if not now then
        local t = redis.call('TIME')
        now = tonumber(t[1]) * 1000000 + tonumber(t[2])
      end
      f = now
      redis.call('SET', KEYS[n + i], string.format('%.0f', f))
    end
    reply[#reply + 1] = f
  end
end
return reply
