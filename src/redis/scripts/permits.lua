-- Permits: a counting semaphore (kind 's', `limit` numbered slots, each slot a
-- lock of its own) and a read-write lock (kind 'r' readers, kind 'w' the
-- writer), with the fair queue of the lock (acquire.lua): one queue of waiters
-- ordered by ticket, and room that frees up handed to the first waiters in
-- order as turns that only they may claim.
--
-- A permit is a field of the hold hash: the slot number ('0'..limit-1) for a
-- semaphore, 'w' for the writer, 'r' .. member for a reader. Its value is the
-- holder's value, or '~turn~<member>' while reserved for a waiter's turn. Each
-- field expires on this node's clock (the expiry sorted set, server ms).
-- Per node: a slot has one value at a time; a writer is granted only when the
-- hash is empty; a reader only when there is no writer field.
--
-- KEYS[1]  hold hash (field -> value)
-- KEYS[2]  expiry sorted set (field -> expiry, server ms)
-- KEYS[3]  waiter queue (member -> ticket)
-- KEYS[4]  waiter leases (member -> lease end, server ms)
-- KEYS[5]  fence counter
-- ARGV[1]  operation: 'acquire', 'release', 'extend' or 'sync'
-- ARGV[2]  kind: 's', 'r' or 'w'
-- ARGV[3]  limit (slots of a semaphore; ignored otherwise)
-- ARGV[4]  value (release: the holder's value or '~turn~<member>' to give back a turn)
-- ARGV[5]  field ('' for a semaphore's acquire: any slot, ARGV[16] preferred;
--          '' for release: every field holding the value)
-- ARGV[6]  member: the acquisition's id; its kind is its last character
-- ARGV[7]  ttl ms (acquire, extend); token (sync)
-- ARGV[8]  grace ms: how long a turn stays reserved
-- ARGV[9]  notice channel prefix (the member's process id is appended)
-- acquire only:
-- ARGV[10] value prefix of this acquisition (leftovers of its earlier rounds)
-- ARGV[11] '1' when the caller waits (queues when refused), '0' when it does not
-- ARGV[12] ticket proposal
-- ARGV[13] lease of a queue entry, ms
-- ARGV[14] '1' when fencing is on
-- ARGV[15] fence seed proposal, µs (used only when above server time by at most 1 s)
-- ARGV[16] preferred slot of a semaphore, or ''
-- ARGV[17] fence counter retention, ms (sync: ARGV[10])
-- release only:
-- ARGV[10] a member leaving the queue, or ''
-- ARGV[11] a member whose turn is restored on the released field instead, or ''
-- ARGV[12] undoing a waiter's failed round: its ticket, to queue it again
--          where its value is released (the grant had taken it out), or '0'
-- ARGV[13] lease of that queue entry, ms
--
-- Returns: acquire {1, field, fence (0 without fencing)} when granted,
--          {0, pttl, ticket, rank} when refused (pttl: ms until the nearest
--          permit in the way expires, -1 when none; ticket 0 and rank -1 when
--          not queued; {0, -1, 0, -1} without any change when a field holds a
--          later round of this acquisition: the request is stale); release:
--          the number of fields released; extend: 1 when
--          the field held the value and now lives at least ttl ms, else 0;
--          sync: 1 when the field still holds the value (the counter is raised
--          to the token either way).
local hold, exp, q, e, fk = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local op, kind, limit = ARGV[1], ARGV[2], tonumber(ARGV[3])
local value, field, member = ARGV[4], ARGV[5], ARGV[6]
local grace = tonumber(ARGV[8])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])

local function keep_key(key, ms)
  if redis.call('PTTL', key) < ms then redis.call('PEXPIRE', key, ms) end
end

-- Permits and turns whose time ran out on this node's clock are gone; so are
-- waiters whose lease ran out.
local dead = redis.call('ZRANGEBYSCORE', exp, '-inf', now, 'LIMIT', 0, 256)
if #dead > 0 then
  redis.call('HDEL', hold, unpack(dead))
  redis.call('ZREM', exp, unpack(dead))
end
dead = redis.call('ZRANGEBYSCORE', e, '-inf', now, 'LIMIT', 0, 64)
if #dead > 0 then
  redis.call('ZREM', q, unpack(dead))
  redis.call('ZREM', e, unpack(dead))
end

-- The field a waiter of kind k could be granted now, or false.
local function room(k, m, hint)
  if k == 'w' then
    if redis.call('HLEN', hold) == 0 then return 'w' end
  elseif k == 'r' then
    if redis.call('HEXISTS', hold, 'w') == 0 then return 'r' .. m end
  elseif redis.call('HLEN', hold) < limit then
    if hint ~= '' and tonumber(hint) < limit and redis.call('HEXISTS', hold, hint) == 0 then
      return hint
    end
    for i = 0, limit - 1 do
      if redis.call('HEXISTS', hold, tostring(i)) == 0 then return tostring(i) end
    end
  end
  return false
end

-- Hands room to the waiters queued ahead of `me`, first come first served,
-- stopping at the first one there is no room for (so a queued writer holds
-- back the readers behind it); the first gets slot `hint` when it is free (a
-- slot just released goes on as it is, so the nodes hand it to the same
-- waiter). Returns the first waiter left in the queue.
local function serve(me, hint)
  while true do
    local head = redis.call('ZRANGE', q, 0, 0)[1]
    if not head or head == me then return head end
    local f = room(string.sub(head, -1), head, hint)
    hint = ''
    if not f then return head end
    redis.call('HSET', hold, f, '~turn~' .. head)
    redis.call('ZADD', exp, now + grace, f)
    keep_key(hold, grace)
    keep_key(exp, grace)
    redis.call('ZREM', q, head)
    redis.call('ZREM', e, head)
    redis.call('PUBLISH', ARGV[9] .. string.match(head, '^[^.]+'), head .. ' ' .. hold)
  end
end

-- Raises the fence counter to at least `to`, seeding a missing counter above
-- every token issued before (docs/safety.md §6); returns the counter.
local function fence(step, to, proposal, retention)
  local cur = redis.call('GET', fk)
  local f
  if cur then
    f = tonumber(cur) + step
  else
    f = now_us
    if proposal > now_us and proposal <= now_us + 1000000 then f = proposal end
  end
  if f < to then f = to end
  redis.call('SET', fk, string.format('%.0f', f), 'PX', retention)
  return f
end

if op == 'extend' then
  if redis.call('HGET', hold, field) ~= value then return 0 end
  local ttl = tonumber(ARGV[7])
  if tonumber(redis.call('ZSCORE', exp, field)) < now + ttl then
    redis.call('ZADD', exp, now + ttl, field)
  end
  keep_key(hold, ttl)
  keep_key(exp, ttl)
  return 1
end

if op == 'sync' then
  fence(0, tonumber(ARGV[7]), 0, ARGV[10])
  if redis.call('HGET', hold, field) == value then return 1 end
  return 0
end

if op == 'release' then
  local leaving, keep = ARGV[10], ARGV[11]
  if leaving ~= '' then
    redis.call('ZREM', q, leaving)
    redis.call('ZREM', e, leaving)
  end
  local fields = {}
  if field ~= '' then
    if redis.call('HGET', hold, field) == value then fields[1] = field end
  else
    local all = redis.call('HGETALL', hold)
    for i = 1, #all, 2 do
      if all[i + 1] == value then fields[#fields + 1] = all[i] end
    end
  end
  local requeue = tonumber(ARGV[12] or '0')
  if requeue > 0 and keep == '' and #fields > 0 then
    -- Back in its place, so that every node's queue orders the same waiters.
    local lease = tonumber(ARGV[13])
    redis.call('ZADD', q, requeue, member)
    redis.call('ZADD', e, now + lease, member)
    keep_key(q, lease)
    keep_key(e, lease)
  end
  for _, f in ipairs(fields) do
    if keep ~= '' then
      -- Undoing a waiter's failed claim keeps its turn.
      redis.call('HSET', hold, f, '~turn~' .. keep)
      redis.call('ZADD', exp, now + grace, f)
    else
      redis.call('HDEL', hold, f)
      redis.call('ZREM', exp, f)
    end
  end
  serve('', kind == 's' and fields[1] or '')
  return #fields
end

-- acquire
local prefix, waits = ARGV[10], ARGV[11] == '1'
local mark = '~turn~' .. member
local function ours(v)
  return v and (v == mark or string.sub(v, 1, #prefix) == prefix)
end

-- A leftover of a later round of this acquisition: this request was overtaken
-- on its way (a cluster redirect can resend it after newer ones). It is stale
-- and changes nothing; the later round's value stays.
local round = tonumber(string.sub(value, #prefix + 2))
local function later(v)
  if not round or string.sub(v, 1, #prefix + 1) ~= prefix .. '.' then return false end
  local r = tonumber(string.sub(v, #prefix + 2))
  return r ~= nil and r > round
end

-- Our turn, or a leftover of an earlier round of this acquisition.
local granted = false
if kind == 's' then
  local all = redis.call('HGETALL', hold)
  for i = 1, #all, 2 do
    if ours(all[i + 1]) then
      if later(all[i + 1]) then return {0, -1, 0, -1} end
      granted = all[i]
    end
  end
else
  local f = kind == 'w' and 'w' or 'r' .. member
  local v = redis.call('HGET', hold, f)
  if ours(v) then
    if later(v) then return {0, -1, 0, -1} end
    granted = f
  end
end

-- A waiter whose turns differ between nodes asks for the slot most nodes
-- gave it: it takes that slot here when it is free, or swaps turns with the
-- waiter it is reserved for; a slot someone holds is never touched.
local hint = ARGV[16]
local moved = ''
if granted and kind == 's' and hint ~= granted and hint ~= '' and tonumber(hint) < limit then
  local v = redis.call('HGET', hold, hint)
  if not v or string.sub(v, 1, 6) == '~turn~' then
    if v then
      redis.call('HSET', hold, granted, v)
      redis.call('ZADD', exp, redis.call('ZSCORE', exp, hint), granted)
    else
      redis.call('HDEL', hold, granted)
      redis.call('ZREM', exp, granted)
      moved = granted
    end
    granted = hint
  end
end

if not granted then
  local head = serve(member, '')
  -- A caller that does not wait defers to everyone queued; a waiter to those ahead of it.
  if not head or (head == member and waits) then granted = room(kind, member, hint) end
end

if not granted then
  local ticket, rank = 0, -1
  if waits then
    -- Queue (or refresh) this waiter: its proposal, raised past the tickets
    -- already queued here when it is not queued yet.
    ticket = tonumber(ARGV[12])
    local mine = redis.call('ZSCORE', q, member)
    if mine then
      if tonumber(mine) > ticket then ticket = tonumber(mine) end
    else
      local last = redis.call('ZRANGE', q, -1, -1, 'WITHSCORES')[2]
      if last and tonumber(last) + 1 > ticket then ticket = tonumber(last) + 1 end
    end
    if ticket < 1 then ticket = 1 end
    local lease = tonumber(ARGV[13])
    redis.call('ZADD', q, ticket, member)
    redis.call('ZADD', e, now + lease, member)
    redis.call('PEXPIRE', q, lease)
    redis.call('PEXPIRE', e, lease)
    rank = redis.call('ZRANK', q, member)
  end
  -- When to look again: when a permit in the way expires (its holder may have
  -- died); the first waiter also when a turn in the way runs out unclaimed.
  local nearest
  if kind == 'r' then
    nearest = redis.call('ZSCORE', exp, 'w')
  elseif kind == 'w' then
    nearest = redis.call('ZRANGE', exp, -1, -1, 'WITHSCORES')[2]
  elseif rank == 0 then
    nearest = redis.call('ZRANGE', exp, 0, 0, 'WITHSCORES')[2]
  else
    local all = redis.call('ZRANGE', exp, 0, -1, 'WITHSCORES')
    for i = 1, #all, 2 do
      local v = redis.call('HGET', hold, all[i])
      if v and string.sub(v, 1, 6) ~= '~turn~' then
        nearest = all[i + 1]
        break
      end
    end
  end
  local pttl = -1
  if nearest then pttl = tonumber(nearest) - now end
  return {0, pttl, ticket, rank}
end

local ttl = tonumber(ARGV[7])
redis.call('HSET', hold, granted, value)
redis.call('ZADD', exp, now + ttl, granted)
keep_key(hold, ttl)
keep_key(exp, ttl)
redis.call('ZREM', q, member)
redis.call('ZREM', e, member)
if moved ~= '' then serve('', moved) end
local f = 0
if ARGV[14] == '1' then f = fence(1, 0, tonumber(ARGV[15]), ARGV[17]) end
return {1, granted, f}
