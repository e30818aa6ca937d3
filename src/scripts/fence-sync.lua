-- Fence sync (phase 2): raise each fence counter to at least the chosen token,
-- and confirm that every lock key still holds our value.
--
-- KEYS[1..n]     lock keys
-- KEYS[n+1..2n]  fence counter keys
-- ARGV[1]        the holder's value
-- ARGV[2..n+1]   token of each resource
--
-- Returns 1 when every lock key still holds our value, 0 otherwise.
-- Counters are raised either way: they only ever move forward.
local n = #KEYS / 2
local held = 1
for i = 1, n do
  local t = tonumber(ARGV[i + 1])
  local f = tonumber(redis.call('GET', KEYS[n + i]) or '0')
  if f < t then redis.call('SET', KEYS[n + i], ARGV[i + 1]) end
  if redis.call('GET', KEYS[i]) ~= ARGV[1] then held = 0 end
end
return held
