-- fleetbreaker RedisStore: a conditional write of one circuit's record, atomically.
--
-- KEYS[1]  the circuit's key; its value is the string "<epoch> <payload>"
-- ARGV[1]  "at": write only if the stored epoch is ARGV[2] (in decimal, without leading zeros)
--          "over": write only if there is no value, or the value is still the one read before:
--          ARGV[2] is its SHA-1, or "(another type)" for a value of another Redis type
-- ARGV[3]  the new epoch      ARGV[4]  the new payload
-- ARGV[5]  milliseconds until the new record expires (<= 0: it is born expired, so delete)
-- Returns 1 if it wrote, 0 if not.
--
-- The Python side decides what reads as absent; this script only checks that the value is the
-- one it decided on. Epochs are compared as text: leading zeros are dropped, as the reader
-- drops them. One key only: safe on Redis Cluster.

local value = redis.pcall('GET', KEYS[1])  -- pcall: a hash or list here is an error reply
local ok
if ARGV[1] == 'at' then
  -- Two linear matches (one pattern '^0*(%d+) ' would backtrack quadratically on long digits).
  local head = type(value) == 'string' and string.match(value, '^(%d+) ')
  ok = head and string.match(head, '^0*(%d+)$') == ARGV[2]
elseif not value then  -- no key
  ok = true
elseif type(value) == 'string' then
  ok = redis.sha1hex(value) == ARGV[2]
else
  ok = ARGV[2] == '(another type)'
end
if not ok then
  return 0
end
if tonumber(ARGV[5]) > 0 then
  redis.call('SET', KEYS[1], ARGV[3] .. ' ' .. ARGV[4], 'PX', ARGV[5])
else
  redis.call('DEL', KEYS[1])
end
return 1
