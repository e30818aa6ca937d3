-- Acquire: take every lock key if each one is free, left over from this
-- acquisition's own earlier rounds, or reserved for this waiter's turn, and
-- advance the fence counters (phase 1). All-or-nothing: if any lock key holds
-- another holder's value or another waiter's turn, no lock key is written.
-- The waiter queue only ever adds refusals: a free key with waiters queued goes
-- to the first of them (a turn), and a caller that waits is queued.
--
-- KEYS[1..n]      lock keys, one per resource
-- KEYS[n+1..2n]   fence counter keys
-- KEYS[2n+1..3n]  waiter queue keys (sorted set: member -> ticket)
-- KEYS[3n+1..4n]  waiter lease keys (sorted set: member -> lease end, server ms)
-- ARGV[1]   this round's value
-- ARGV[2]   this acquisition's value prefix (leftovers of earlier rounds start with it)
-- ARGV[3]   ttl in ms
-- ARGV[4]   n, the number of resources
-- ARGV[5]   '1' when fencing is on, '0' otherwise
-- ARGV[6]   the waiter's member id; '' for a caller that does not wait: it takes
--           a free lock only when nobody is queued for it
-- ARGV[7]   the waiter's ticket proposal (the highest ticket it has seen for itself)
-- ARGV[8]   lease of a queue entry in ms
-- ARGV[9]   turn grace in ms (how long a turn handed to a waiter is reserved)
-- ARGV[10]  notice channel prefix (the member's process id is appended)
-- ARGV[11]  fence seed proposal in µs (the client's wall clock plus a margin); used
--           only when above the server clock by at most 1 s
-- ARGV[12]  fence counter retention in ms
--
-- Returns {1, fence_1, ..., fence_n} on success (fences only with fencing on),
--         {0, pttl, ticket, rank, turn} when refused: pttl the longest remaining
--         ttl in ms of another holder's key (-1 when none; for a caller that does
--         not wait, turns count as holders), ticket and rank (0 = first) of the
--         waiter in the queues (0 and -1 when not queued), turn the longest
--         remaining ms of another waiter's turn (0 when none).
local n = tonumber(ARGV[4])
local prefix = ARGV[2]
local member = ARGV[6]
local mark = false
if member ~= '' then mark = '~turn~' .. member end
local grace = tonumber(ARGV[9])
local now = false

local function server_ms()
  if not now then
    local t = redis.call('TIME')
    now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  return now
end

-- Drops queue entries whose lease ran out (their waiter stopped refreshing).
local function purge(i)
  local q, e = KEYS[2 * n + i], KEYS[3 * n + i]
  local dead = redis.call('ZRANGEBYSCORE', e, '-inf', server_ms(), 'LIMIT', 0, 16)
  if #dead > 0 then
    redis.call('ZREM', q, unpack(dead))
    redis.call('ZREM', e, unpack(dead))
  end
end

-- Tells `head` its turn has come, and the waiter now first in line when to
-- look again should `head` not claim it (dead or paused waiters cost one grace).
local function announce(channel, q, head, key, grace_ms)
  redis.call('PUBLISH', channel .. string.match(head, '^[^.]+'), head .. ' ' .. key)
  local next = redis.call('ZRANGE', q, 0, 0)[1]
  if next then
    redis.call('PUBLISH', channel .. string.match(next, '^[^.]+'), next .. ' ' .. key .. ' ' .. grace_ms)
  end
end

local taken = false
local holder_ttl = -1
local turn_ttl = 0
for i = 1, n do
  local v = redis.call('GET', KEYS[i])
  if v and v ~= mark and string.sub(v, 1, #prefix) ~= prefix then
    taken = true
    local pttl = redis.call('PTTL', KEYS[i])
    if member ~= '' and string.sub(v, 1, 6) == '~turn~' then
      if pttl > turn_ttl then turn_ttl = pttl end
    elseif pttl > holder_ttl then
      holder_ttl = pttl
    end
  end
end

local queued = {}
if not taken then
  for i = 1, n do
    local q = KEYS[2 * n + i]
    if redis.call('EXISTS', q) == 1 then
      queued[i] = true
      if member == '' then
        taken = true
      elseif not redis.call('GET', KEYS[i]) then
        purge(i)
        local head = redis.call('ZRANGE', q, 0, 0)[1]
        if head and head ~= member then
          -- A free key with someone queued ahead: it is the head's turn.
          redis.call('SET', KEYS[i], '~turn~' .. head, 'PX', grace)
          redis.call('ZREM', q, head)
          redis.call('ZREM', KEYS[3 * n + i], head)
          announce(ARGV[10], q, head, KEYS[i], grace)
          taken = true
          if grace > turn_ttl then turn_ttl = grace end
        end
      end
    end
  end
end

if taken then
  if member == '' then return {0, holder_ttl, 0, -1, 0} end
  -- Queue (or refresh) this waiter with one ticket on every resource: the
  -- proposal, raised past the tickets already queued where it is not yet.
  local ticket = tonumber(ARGV[7])
  for i = 1, n do
    local q = KEYS[2 * n + i]
    purge(i)
    local mine = redis.call('ZSCORE', q, member)
    if mine then
      if tonumber(mine) > ticket then ticket = tonumber(mine) end
    else
      local last = redis.call('ZRANGE', q, -1, -1, 'WITHSCORES')[2]
      if last and tonumber(last) + 1 > ticket then ticket = tonumber(last) + 1 end
    end
  end
  if ticket < 1 then ticket = 1 end
  local lease = tonumber(ARGV[8])
  local until_ms = server_ms() + lease
  local rank = 0
  for i = 1, n do
    local q, e = KEYS[2 * n + i], KEYS[3 * n + i]
    redis.call('ZADD', q, ticket, member)
    redis.call('ZADD', e, until_ms, member)
    redis.call('PEXPIRE', q, lease)
    redis.call('PEXPIRE', e, lease)
    local r = redis.call('ZRANK', q, member)
    if r > rank then rank = r end
  end
  return {0, holder_ttl, ticket, rank, turn_ttl}
end

local reply = {1}
for i = 1, n do
  redis.call('SET', KEYS[i], ARGV[1], 'PX', ARGV[3])
  if queued[i] then
    redis.call('ZREM', KEYS[2 * n + i], member)
    redis.call('ZREM', KEYS[3 * n + i], member)
  end
end
if ARGV[5] == '1' then
  local retention = ARGV[12]
  local seed = false
  for i = 1, n do
    local f = redis.call('INCR', KEYS[n + i])
    if f == 1 then
      -- Missing (never used, expired or lost): seed above every token issued
      -- before, from server time, and from the client's proposal when it is
      -- close, so that healthy nodes seed the same value.
      if not seed then
        local t = redis.call('TIME')
        local us = tonumber(t[1]) * 1000000 + tonumber(t[2])
        local proposal = tonumber(ARGV[11])
        seed = us
        if proposal > us and proposal <= us + 1000000 then seed = proposal end
      end
      f = seed
      redis.call('SET', KEYS[n + i], string.format('%.0f', f), 'PX', retention)
    else
      redis.call('PEXPIRE', KEYS[n + i], retention)
    end
    reply[#reply + 1] = f
  end
end
return reply
