-- Release: delete every lock key that still holds our value, and publish a
-- release notice (the released value) on each freed resource's channel so
-- waiters retry at once. Keys held by someone else, or already gone, are left
-- alone.
--
-- KEYS[1..n]  lock keys
-- ARGV[1]     the holder's value
-- ARGV[2..n+1] notice channel of each resource; '' publishes nothing (undoing
--             a failed round must not wake every waiter)
--
-- Returns the number of keys deleted.
local deleted = 0
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then
    redis.call('DEL', KEYS[i])
    if ARGV[i + 1] ~= '' then redis.call('PUBLISH', ARGV[i + 1], ARGV[1]) end
    deleted = deleted + 1
  end
end
return deleted
