-- Extend: push back the expiry of every lock key that still holds our value.
-- All-or-nothing, and never shortens: each key gets max(its pttl, ttl).
--
-- KEYS[1..n]  lock keys
-- ARGV[1]     the holder's value
-- ARGV[2]     new ttl in ms
--
-- Returns 1 when every key held our value and was extended, 0 otherwise.
local ttl = tonumber(ARGV[2])
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) ~= ARGV[1] then return 0 end
end
for i = 1, #KEYS do
  if redis.call('PTTL', KEYS[i]) < ttl then redis.call('PEXPIRE', KEYS[i], ttl) end
end
return 1
