-- Fence sync (phase 2): raise each fence counter to at least the chosen token,
-- and confirm that every lock key still holds our value.
--
-- KEYS[1..n]     lock keys
-- KEYS[n+1..2n]  fence counter keys
-- ARGV[1]        the holder's value
-- ARGV[2..n+1]   token of each resource
-- ARGV[n+2]      fence counter retention in ms
--
-- Returns 1 when every lock key still holds our value, 0 otherwise.
-- Counters only ever move forward. A counter that is missing (the node lost
-- its data since phase 1) is seeded from server TIME in µs as in phase 1,
-- never from the token alone, so a higher token issued since cannot come back.
local n = #KEYS / 2
local held = 1
local now
for i = 1, n do
  local t = tonumber(ARGV[i + 1])
  local cur = redis.call('GET', KEYS[n + i])
  local f
  if cur then
    f = tonumber(cur)
  else
    if not now then
      local time = redis.call('TIME')
      now = tonumber(time[1]) * 1000000 + tonumber(time[2])
    end
    f = now
  end
  if f < t then f = t end
  if not cur or f ~= tonumber(cur) then redis.call('SET', KEYS[n + i], string.format('%.0f', f), 'PX', ARGV[n + 2])
  else redis.call('PEXPIRE', KEYS[n + i], ARGV[n + 2]) end
  if redis.call('GET', KEYS[i]) ~= ARGV[1] then held = 0 end
end
return held
