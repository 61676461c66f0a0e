-- Check and take one send to a number under its provider account's per-number limits
-- (NumberLimitBook.take): the record is a ZSET of the sends admitted (member: the delivery
-- that took it; score: when), per account and number, shared by every process.
-- now: the engine's clock; day_start/day_end: the Beijing day holding now; night_start/
-- night_end: the night holding now (0 0 by day); per_day/per_night: counts (0: none); keep:
-- seconds a send stays in the record. Then (count, seconds) pairs: the sliding windows.
-- A delivery that takes again (a retry, a resend after a crash) is counted once: its own
-- send is left out of the check, and kept as it was when it is refused.
-- Returns {1} when admitted (and taken), {0, which, free_at} when refused: which is the
-- window's position (1..), 'day' or 'night'; free_at when that limit admits a send again.
local record = unpack(KEYS)
local now, member, day_start, day_end, night_start, night_end, per_day, per_night, keep = unpack(ARGV, 1, 9)
now, keep = tonumber(now), tonumber(keep)
per_day, per_night = tonumber(per_day), tonumber(per_night)
redis.call('ZREMRANGEBYSCORE', record, '-inf', '(' .. (now - keep))
local own = redis.call('ZSCORE', record, member)
if own then redis.call('ZREM', record, member) end
local function refuse(which, free_at)
  if own then redis.call('ZADD', record, own, member) end
  return {0, which, tostring(free_at)}
end
local w = 0
for i = 10, #ARGV, 2 do
  w = w + 1
  local count, seconds = tonumber(ARGV[i]), tonumber(ARGV[i + 1])
  local within = redis.call('ZRANGEBYSCORE', record, '(' .. (now - seconds), '+inf', 'WITHSCORES')
  local k = #within / 2
  if k >= count then
    -- Admitted again once k - count + 1 of them have left the window.
    return refuse(tostring(w), tonumber(within[2 * (k - count + 1)]) + seconds)
  end
end
if per_night > 0 and tonumber(night_start) > 0 then
  if redis.call('ZCOUNT', record, night_start, '+inf') >= per_night then
    return refuse('night', night_end)
  end
end
if per_day > 0 and redis.call('ZCOUNT', record, day_start, '+inf') >= per_day then
  return refuse('day', day_end)
end
redis.call('ZADD', record, now, member)
redis.call('PEXPIRE', record, math.ceil(keep * 1000))
return {1}
