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
-- ARGV[6]   the waiter's member id, '<instance>.<prefix>' (a release may hand it
--           the lock itself: '<prefix>.g') or '<instance>.<prefix>.t' (waits for
--           several resources or without fencing: a release hands it a turn);
--           '' for a caller that does not wait: it takes a free lock only when
--           nobody is queued for it
-- ARGV[7]   the waiter's ticket (the highest a node gave it), 0 before it has one
-- ARGV[8]   lease of a queue entry in ms
-- ARGV[9]   turn grace in ms (how long a turn handed to a waiter is reserved)
-- ARGV[10]  notice channel prefix (the member's process id is appended)
-- ARGV[11]  fence seed proposal in µs (the client's wall clock plus a margin); used
--           only when above the server clock by at most 1 s
-- ARGV[12]  fence counter retention in ms
--
-- Returns {1, fence_1, ..., fence_n} on success (fences only with fencing on),
--         {2, pttl, fence} when the key holds this waiter's handed-over lock
--         ('<prefix>.g', one resource): pttl its remaining ms, fence its counter,
--         {0, pttl, ticket, rank, turn, fence} when refused: pttl the longest remaining
--         ttl in ms of another holder's key (-1 when none; for a caller that does
--         not wait, turns count as holders), ticket and rank (0 = first) of the
--         waiter in the queues (0 and -1 when not queued), turn the longest
--         remaining ms of another waiter's turn or handed-over lock (0 when
--         none; those do not count as holders for a waiter), fence the counter
--         of the first resource (0 unless the waiter can be handed the lock);
--         {0, -1, 0, -1, 0} without any change when a key holds a later round
--         of this acquisition (this request is stale).
local n = tonumber(ARGV[4])
local prefix = ARGV[2]
local member = ARGV[6]
local mark = false
if member ~= '' then mark = '~turn~' .. member end
local grace = tonumber(ARGV[9])
local channel = ARGV[10]
local now = false
-- This waiter can be handed the lock itself (see the header).
local handable = member ~= '' and n == 1 and string.sub(member, -2) ~= '.t'
local granted = prefix .. '.g'

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

-- Puts this waiter at its ticket (the highest the nodes gave it) in queue i
-- where it is queued lower, as every refused round does; with `back`, also
-- back in the queue where its entry is gone (a grant of its failed round took
-- it out, or its lease ran out), with a fresh lease.
local function place(i, back)
  local q = KEYS[2 * n + i]
  local ticket = tonumber(ARGV[7])
  local mine = redis.call('ZSCORE', q, member)
  if mine then
    if ticket > tonumber(mine) then redis.call('ZADD', q, ticket, member) end
  elseif back and ticket > 0 then
    local e, lease = KEYS[3 * n + i], tonumber(ARGV[8])
    redis.call('ZADD', q, ticket, member)
    redis.call('ZADD', e, server_ms() + lease, member)
    redis.call('PEXPIRE', q, lease)
    redis.call('PEXPIRE', e, lease)
  end
end

-- Advances resource i's fence counter; a missing one is seeded (see below).
local function bump(i)
  local f = redis.call('INCR', KEYS[n + i])
  if f == 1 then
    -- Missing (never used, expired or lost): seed above every token issued
    -- before, from server time, and from the client's proposal when it is
    -- close, so that healthy nodes seed the same value.
    local t = redis.call('TIME')
    local us = tonumber(t[1]) * 1000000 + tonumber(t[2])
    local proposal = tonumber(ARGV[11])
    f = us
    if proposal > us and proposal <= us + 1000000 then f = proposal end
    redis.call('SET', KEYS[n + i], string.format('%.0f', f), 'PX', ARGV[12])
  else
    redis.call('PEXPIRE', KEYS[n + i], ARGV[12])
  end
  return f
end

-- Hands free key i to `head`, first in its queue: the lock itself for a waiter
-- that can take it ('<prefix>.g', fence advanced), else a turn; reserved for
-- the grace either way. Tells `head`, and the waiter now first in line when to
-- look again should `head` not take it (dead or paused waiters cost one grace).
-- Returns the fence handed over (0 for a turn).
local function hand(i, head, tell)
  local q = KEYS[2 * n + i]
  -- The head keeps its place until it takes the lock or leaves, so every node
  -- keeps handing to the same waiter; only its lease shrinks to the grace: a
  -- head that died or stalled drops out then, a live one renews it.
  redis.call('ZADD', KEYS[3 * n + i], 'LT', server_ms() + tonumber(grace), head)
  local to = channel .. string.match(head, '^[^.]+')
  local f = 0
  if string.sub(head, -2) == '.t' then
    redis.call('SET', KEYS[i], '~turn~' .. head, 'PX', grace)
    if tell then redis.call('PUBLISH', to, head .. ' ' .. KEYS[i]) end
  else
    redis.call('SET', KEYS[i], string.match(head, '^[^.]+%.(.+)$') .. '.g', 'PX', grace)
    f = bump(i)
    if tell then
      redis.call('PUBLISH', to, head .. ' ' .. KEYS[i] .. ' g ' .. string.format('%.0f', f) .. ' ' .. grace)
    end
  end
  local next = redis.call('ZRANGE', q, 1, 1)[1]
  if next then
    redis.call('PUBLISH', channel .. string.match(next, '^[^.]+'), next .. ' ' .. KEYS[i] .. ' ' .. grace)
  end
  return f
end


-- This round's number: a leftover of a later round of this acquisition means
-- this request was overtaken on its way (a cluster redirect can resend it after
-- newer ones); it is stale and changes nothing.
local round = tonumber(string.sub(ARGV[1], #prefix + 2))

local taken = false
local holder_ttl = -1
local turn_ttl = 0
for i = 1, n do
  local v = redis.call('GET', KEYS[i])
  if v and round and string.sub(v, 1, #prefix + 1) == prefix .. '.' then
    local r = tonumber(string.sub(v, #prefix + 2))
    if r and r > round then return {0, -1, 0, -1, 0} end
  end
  if handable and v == granted then
    -- The waiter already holds the lock it was handed: report it. Only its
    -- lease is renewed, to the grace: a head that keeps asking stays first in
    -- line (when the handover runs out, the node hands it to the same waiter
    -- again, as the others do), one that stops asking drops out. Its ticket
    -- rises to the one the other nodes gave it, as a refused round's does:
    -- when the handover runs out, the node hands it to the waiter the others
    -- put first.
    local e = KEYS[3 * n + i]
    local lease = redis.call('ZSCORE', e, member)
    if lease and tonumber(lease) < server_ms() + grace then
      redis.call('ZADD', e, server_ms() + grace, member)
    end
    place(i, false)
    return {2, redis.call('PTTL', KEYS[i]), tonumber(redis.call('GET', KEYS[n + i])) or 0}
  end
  if v and v ~= mark and string.sub(v, 1, #prefix) ~= prefix then
    taken = true
    local pttl = redis.call('PTTL', KEYS[i])
    -- A key at its expiry instant still exists (Redis expires it once past):
    -- it is in the way for one more millisecond, not for none.
    if pttl == 0 then pttl = 1 end
    if member ~= '' and (string.sub(v, 1, 6) == '~turn~' or string.sub(v, -2) == '.g') then
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
    -- A waiter with a ticket counts as queued even where its entry is gone:
    -- it is put back below, and takes a free key the way the other nodes hand
    -- it on (as handed over), so that its grants can add up to a quorum.
    if redis.call('EXISTS', q) == 1 or (member ~= '' and tonumber(ARGV[7]) > 0) then
      queued[i] = true
      if member == '' then
        taken = true
      elseif not redis.call('GET', KEYS[i]) then
        purge(i)
        -- A waiter with a ticket goes in its place before a free key is handed
        -- on: a waiter queued behind it must not be served first, nor one ahead
        -- of it last.
        place(i, true)
        local head = redis.call('ZRANGE', q, 0, 0)[1]
        if head and head ~= member then
          -- A free key with someone queued ahead: it goes to the head.
          hand(i, head, true)
          taken = true
          if grace > turn_ttl then turn_ttl = grace end
        elseif head and handable then
          -- First in line at a free key: take it as handed over, like the others
          -- the releases hand it on, so every node holds the same value.
          return {2, grace, hand(i, member, false)}
        end
      end
    end
  end
end

if taken then
  if member == '' then return {0, holder_ttl, 0, -1, 0} end
  -- Queue (or refresh) this waiter with one ticket on every resource. A new
  -- waiter (no proposal yet) goes behind every ticket queued here; a waiter
  -- that has a ticket keeps it, also where its entry was lost or handed over.
  local proposal = tonumber(ARGV[7])
  local ticket = proposal
  for i = 1, n do
    local q = KEYS[2 * n + i]
    purge(i)
    local mine = redis.call('ZSCORE', q, member)
    if mine then
      if tonumber(mine) > ticket then ticket = tonumber(mine) end
    elseif proposal == 0 then
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
  local fence = 0
  if handable then fence = tonumber(redis.call('GET', KEYS[n + 1])) or 0 end
  return {0, holder_ttl, ticket, rank, turn_ttl, fence}
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
  for i = 1, n do reply[#reply + 1] = bump(i) end
end
return reply
