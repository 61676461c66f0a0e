-- Store the attempts of sends and their deliveries' next states (Store.record): one call
-- per campaign and chunk.
-- batch: msgpack array of strings: now, then 9-tuples (delivery_id, target_id, channel,
-- step, kind, n, outcome, next_state, detail) where next_state is one of
-- DeliveryState.RECORDED and detail the provider id or the error text. (What the delivery
-- sends, `dinfo`, was kept by its first claim.)
-- `accepted` keeps when a provider first accepted something for a target through a channel
-- ("target|channel" -> time): a reply naming no campaign counts only where it had.
local meta, dstate, tstate, audit, accepted = unpack(KEYS)
local batch = unpack(ARGV)
local A = cmsgpack.unpack(batch)
local now = A[1]
for i = 9, #A, 9 do  -- checked before anything is written: a script is not rolled back
  if not DS_RECORDED[A[i]] then return redis.error_reply('not a recorded state: ' .. A[i]) end
end
local acc = {}
for i = 2, #A, 9 do
  local id, target, channel, step, kind = A[i], A[i+1], A[i+2], A[i+3], A[i+4]
  local n, outcome, nxt, detail = A[i+5], A[i+6], A[i+7], A[i+8]
  redis.call('HSET', dstate, id, nxt .. '|' .. n .. '|0')
  count(acc, MF.ATTEMPTS, 1)
  local reached = DS_TARGET[nxt]
  if reached then
    target_forward(meta, tstate, target, reached, acc)
    redis.call('HSETNX', accepted, target .. '|' .. channel, now)
  elseif DS_GAVE_UP[nxt] then
    if not redis.call('HGET', tstate, target) then
      redis.call('HSET', tstate, target, TS.FAILED)
      count(acc, TARGET_COUNT .. TS.FAILED, 1)
    end
  end
  -- The attempt's fields in one (see `warnbus.state.store.audit_row`): each field of a stream
  -- entry costs Redis time and memory, and this runs once per send.
  redis.call('XADD', audit, '*', 'ev', EV.ATTEMPT, 'at', now, 'a', id .. '|' .. target .. '|'
    .. channel .. '|' .. step .. '|' .. kind .. '|' .. n .. '|' .. outcome .. '|' .. nxt,
    'x', detail)
end
flush_counts(meta, acc)
return 1
