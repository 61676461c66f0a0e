-- A provider's report on a delivery (Store.status). Out-of-order reports never move a
-- delivery backwards. report: a DeliveryReport.
-- Returns 1 applied, 2 it changed nothing (out of order), 0 no such delivery.
local meta, dstate, tstate, audit = unpack(KEYS)
local now, delivery_id, target_id, report, detail = unpack(ARGV)
if not DR_ALL[report] then return redis.error_reply('not a delivery report: ' .. report) end
local st = redis.call('HGET', dstate, delivery_id)
if not st then return 0 end
local p = split(st, '|')
local state, n = p[1], p[2]
if report == DR.DEVICE_FAILED then
  -- only the audit below: the area command stands, the speaker did not play
elseif report == DR.NO_ANSWER or report == DR.ANSWERED or report == DR.READ then
  -- only the audit below, for the record: the deadline drives the redial
elseif report == DR.DELIVERED and string.sub(target_id, 1, #DEVICE_PREFIX) == DEVICE_PREFIX then
  -- a speaker's playout report: the speaker's own state (no target counters), and the
  -- area command counts as delivered from the first report on
  redis.call('HSET', tstate, target_id, TS.DELIVERED)
  if DS_AWAITING_REPORT[state] then
    redis.call('HSET', dstate, delivery_id, DS.DELIVERED .. '|' .. n .. '|0')
  end
elseif report == DR.DELIVERED then
  if not DS_AWAITING_REPORT[state] then return 2 end
  redis.call('HSET', dstate, delivery_id, DS.DELIVERED .. '|' .. n .. '|0')
  target_forward(meta, tstate, target_id, TS.DELIVERED)
elseif report == DR.FAILED then
  if DS_SETTLED[state] then return 2 end
  redis.call('HSET', dstate, delivery_id, DS.FAILED .. '|' .. n .. '|0')
end
redis.call('XADD', audit, '*', 'ev', EV.STATUS, 'at', now, 'd', delivery_id, 'tg', target_id,
  's', report, 'x', detail)
return 1
