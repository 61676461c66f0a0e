-- Move due timers to the due stream (Timers.promote), at most `limit`. Returns how many.
-- Due by Redis's clock (TIME), whatever the clock of the process that asks: the engine's
-- time is at + (Redis's time - redis_at) * factor (runtime.clock.Frame: 0, 0, 1 on the real
-- clock; a scaled clock for the demo; factor 0, a fixed time, for a test's manual clock).
local timers, due = unpack(KEYS)
local at, redis_at, factor, limit = unpack(ARGV)
local t = redis.call('TIME')
local now = tonumber(at) + (tonumber(t[1]) + tonumber(t[2]) / 1000000 - tonumber(redis_at))
  * tonumber(factor)
local members = redis.call('ZRANGEBYSCORE', timers, '-inf', string.format('%.6f', now),
  'LIMIT', 0, tonumber(limit))
for _, m in ipairs(members) do
  redis.call('XADD', due, '*', 'm', m)
  redis.call('ZREM', timers, m)
end
return #members
