-- Fenced call: run one command on a guarded key only if the caller's fencing
-- token is at least the highest token this resource has seen, then remember
-- the token. Check, write and remember happen atomically.
--
-- KEYS[1]   the guarded key
-- KEYS[2]   the resource's highest-token key (same hash slot as KEYS[1])
-- ARGV[1]   the caller's token, a non-negative integer below 2^53
-- ARGV[2]   the command, such as SET, DEL or HSET; it must touch only KEYS[1];
--           empty to only record the token (a claim before a read-modify-write)
-- ARGV[3..] the command's arguments after the key
--
-- Returns {1, token, reply} when the command ran (the highest is now the token),
--         {0, highest} when a higher token was already seen; nothing is written.
-- Tokens are returned as decimal strings: integer replies near 2^53 lose
-- precision in some clients' parsers, strings never do.
local token = tonumber(ARGV[1])
local stored = redis.call('GET', KEYS[2])
local highest = -1
if stored then
  highest = tonumber(stored)
  if not highest then
    return redis.error_reply('ERR highest-token key ' .. KEYS[2] .. ' does not hold a number')
  end
end
if highest > token then return {0, stored} end
-- The command runs first: if it fails, the script stops before the token is
-- remembered: a command that fails never moves the high-water mark.
local reply = false
if ARGV[2] ~= '' then reply = redis.call(ARGV[2], KEYS[1], unpack(ARGV, 3)) end
if highest < token then redis.call('SET', KEYS[2], ARGV[1]) end
return {1, ARGV[1], reply}
