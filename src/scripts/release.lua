-- Release: for every lock key that still holds our value, hand the lock to the
-- first live waiter queued for it (its turn, reserved for a short grace, and a
-- notice on that waiter's process channel: '<member> <key>'), or delete it when
-- nobody waits. The waiter next in line gets '<member> <key> <grace>': look
-- again once the grace has passed.
-- Keys held by someone else, or already gone, are left alone.
--
-- KEYS[1..n]      lock keys
-- KEYS[n+1..2n]   waiter queue keys
-- KEYS[2n+1..3n]  waiter lease keys
-- ARGV[1]   the holder's value (or '~turn~<member>' to give back a turn)
-- ARGV[2]   a member to remove from the queues first (a waiter leaving, or the
--           holder's own entry left where its claim was refused); '' for none
-- ARGV[3]   turn grace in ms
-- ARGV[4]   notice channel prefix (the member's process id is appended)
-- ARGV[5]   '' to hand on; or a member whose turn is restored instead (undoing
--           that waiter's failed claim keeps its turn)
--
-- Returns the number of lock keys that held our value.
local n = #KEYS / 3
local leaving = ARGV[2]
local grace = ARGV[3]
local released = 0
local now = false
for i = 1, n do
  local q, e = KEYS[n + i], KEYS[2 * n + i]
  local queued = redis.call('EXISTS', q) == 1
  if queued and leaving ~= '' then
    redis.call('ZREM', q, leaving)
    redis.call('ZREM', e, leaving)
  end
  if redis.call('GET', KEYS[i]) == ARGV[1] then
    released = released + 1
    local head = false
    if ARGV[5] ~= '' then
      redis.call('SET', KEYS[i], '~turn~' .. ARGV[5], 'PX', grace)
    else
      if queued then
        if not now then
          local t = redis.call('TIME')
          now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        end
        local dead = redis.call('ZRANGEBYSCORE', e, '-inf', now, 'LIMIT', 0, 16)
        if #dead > 0 then
          redis.call('ZREM', q, unpack(dead))
          redis.call('ZREM', e, unpack(dead))
        end
        head = redis.call('ZRANGE', q, 0, 0)[1]
      end
      if head then
        redis.call('SET', KEYS[i], '~turn~' .. head, 'PX', grace)
        redis.call('ZREM', q, head)
        redis.call('ZREM', e, head)
        redis.call('PUBLISH', ARGV[4] .. string.match(head, '^[^.]+'), head .. ' ' .. KEYS[i])
        -- The waiter now first looks again when the turn runs out, should `head` not claim it.
        local next = redis.call('ZRANGE', q, 0, 0)[1]
        if next then
          redis.call('PUBLISH', ARGV[4] .. string.match(next, '^[^.]+'), next .. ' ' .. KEYS[i] .. ' ' .. grace)
        end
      else
        redis.call('DEL', KEYS[i])
      end
    end
  end
end
return released
