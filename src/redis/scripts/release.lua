-- Release: for every lock key that still holds our value, hand the lock on to
-- the first live waiter queued for it, or delete it when nobody waits. A waiter
-- that can take it ('<instance>.<prefix>') is handed the lock itself: the key
-- is set to '<prefix>.g' and its fence counter advanced; any other waiter
-- ('<instance>.<prefix>.t') is handed a turn, '~turn~<member>'. Either is
-- reserved for the grace only, and announced on the waiter's instance channel:
-- '<member> <key> g <fence> <grace>' or '<member> <key>'. The waiter now first
-- in line gets '<member> <key> <grace>': look again once the grace has passed.
-- Keys held by someone else, or already gone, are left alone.
--
-- KEYS[1..n]      lock keys
-- KEYS[n+1..2n]   fence counter keys
-- KEYS[2n+1..3n]  waiter queue keys
-- KEYS[3n+1..4n]  waiter lease keys
-- ARGV[1]   the holder's value (or a waiter's turn or handed-over value, to give it back)
-- ARGV[2]   a member to remove from the queues first (a waiter leaving, or the
--           holder's own entry left where its claim was refused); '' for none
-- ARGV[3]   grace in ms
-- ARGV[4]   notice channel prefix (the member's instance id is appended)
-- ARGV[5]   '' to hand on; or a value to put back instead (undoing a waiter's
--           failed claim keeps its turn)
-- ARGV[6]   fence seed proposal in µs, for a counter that is missing (see acquire.lua)
-- ARGV[7]   fence counter retention in ms
--
-- Returns the number of lock keys that held our value.
local n = #KEYS / 4
local leaving = ARGV[2]
local grace = ARGV[3]
local channel = ARGV[4]
local released = 0
local now = false

local function server_ms()
  if not now then
    local t = redis.call('TIME')
    now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  return now
end

local function bump(i)
  local f = redis.call('INCR', KEYS[n + i])
  if f == 1 then
    local t = redis.call('TIME')
    local us = tonumber(t[1]) * 1000000 + tonumber(t[2])
    local proposal = tonumber(ARGV[6])
    f = us
    if proposal > us and proposal <= us + 1000000 then f = proposal end
    redis.call('SET', KEYS[n + i], string.format('%.0f', f), 'PX', ARGV[7])
  else
    redis.call('PEXPIRE', KEYS[n + i], ARGV[7])
  end
  return f
end

local function hand(i, head)
  local q = KEYS[2 * n + i]
  -- The head keeps its place until it takes the lock or leaves, so every node
  -- keeps handing to the same waiter; only its lease shrinks to the grace: a
  -- head that died or stalled drops out then, a live one renews it.
  redis.call('ZADD', KEYS[3 * n + i], 'LT', server_ms() + tonumber(grace), head)
  local to = channel .. string.match(head, '^[^.]+')
  if string.sub(head, -2) == '.t' then
    redis.call('SET', KEYS[i], '~turn~' .. head, 'PX', grace)
    redis.call('PUBLISH', to, head .. ' ' .. KEYS[i])
  else
    redis.call('SET', KEYS[i], string.match(head, '^[^.]+%.(.+)$') .. '.g', 'PX', grace)
    local f = bump(i)
    redis.call('PUBLISH', to, head .. ' ' .. KEYS[i] .. ' g ' .. string.format('%.0f', f) .. ' ' .. grace)
  end
  local next = redis.call('ZRANGE', q, 1, 1)[1]
  if next then
    redis.call('PUBLISH', channel .. string.match(next, '^[^.]+'), next .. ' ' .. KEYS[i] .. ' ' .. grace)
  end
end

for i = 1, n do
  local q, e = KEYS[2 * n + i], KEYS[3 * n + i]
  local queued = redis.call('EXISTS', q) == 1
  if queued and leaving ~= '' then
    redis.call('ZREM', q, leaving)
    redis.call('ZREM', e, leaving)
  end
  if redis.call('GET', KEYS[i]) == ARGV[1] then
    released = released + 1
    if ARGV[5] ~= '' then
      redis.call('SET', KEYS[i], ARGV[5], 'PX', grace)
    else
      local head = false
      if queued then
        local dead = redis.call('ZRANGEBYSCORE', e, '-inf', server_ms(), 'LIMIT', 0, 16)
        if #dead > 0 then
          redis.call('ZREM', q, unpack(dead))
          redis.call('ZREM', e, unpack(dead))
        end
        head = redis.call('ZRANGE', q, 0, 0)[1]
      end
      if head then hand(i, head) else redis.call('DEL', KEYS[i]) end
    end
  end
end
return released
