-- fleetbreaker RedisStore: compare-and-set of one circuit's record, atomically.
--
-- KEYS[1]  the circuit's key; its value is the string "<epoch> <payload>"
-- ARGV[1]  the epoch the caller expects, in decimal, or "" for "no live record"
-- ARGV[2]  the new epoch      ARGV[3]  the new payload
-- ARGV[4]  milliseconds until the new record expires (<= 0: it is born expired, so delete)
-- Returns 1 if it wrote, 0 if the stored epoch is not the expected one.
--
-- A value without a "<digits> " head, or of another Redis type, is someone else's: it reads as
-- no live record (""), so only a create replaces it. One key only: safe on Redis Cluster.

local value = redis.pcall('GET', KEYS[1])  -- pcall: a hash or list here is an error reply
local stored = ''
if type(value) == 'string' then
  stored = string.match(value, '^0*(%d+) ') or ''  -- compared as text: epochs exceed 2^53
end
if stored ~= ARGV[1] then
  return 0
end
if tonumber(ARGV[4]) > 0 then
  redis.call('SET', KEYS[1], ARGV[2] .. ' ' .. ARGV[3], 'PX', ARGV[4])
else
  redis.call('DEL', KEYS[1])
end
return 1
