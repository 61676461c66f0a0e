-- Move due timers to the due stream (Timers.promote), at most `limit`. Returns how many.
local timers, due = unpack(KEYS)
local now, limit = unpack(ARGV)
local members = redis.call('ZRANGEBYSCORE', timers, '-inf', now, 'LIMIT', 0, tonumber(limit))
for _, m in ipairs(members) do
  redis.call('XADD', due, '*', 'm', m)
  redis.call('ZREM', timers, m)
end
return #members
