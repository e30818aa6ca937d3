-- Inspect: who holds a resource on this node, for how long, and its fence counter.
--
-- KEYS[1]  lock key
-- KEYS[2]  fence counter key
--
-- Returns {value or false, pttl in ms (-2 when free), fence counter or false}.
return {redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[1]), redis.call('GET', KEYS[2])}
