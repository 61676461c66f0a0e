-- Deliveries whose provider call was not made: the breaker of their provider refused them
-- (Store.unsent). A refusal is not an attempt: nothing is counted and no attempt is audited.
-- batch: msgpack array of strings: now, then 8-tuples (delivery_id, n, give_up, target_id,
-- channel, step, kind, reason) where n is the attempt number the claim gave ('' when it was
-- not claimed) and give_up '1' when its retries have run out (its deadline passed): it is
-- then dead (the fallback channel takes over), with an audit entry (EV.GAVE_UP) and the
-- target failed if nothing else reached it; else a claimed one goes back to retry.
-- Each applies only to a delivery still as the caller left it: claimed by it (sending with
-- that attempt number), or not claimed and claimable.
-- Returns 1/0 per delivery: applied, or not (done, or taken by another worker meanwhile).
local meta, dstate, tstate, audit = unpack(KEYS)
local batch = unpack(ARGV)
local A = cmsgpack.unpack(batch)
local now = A[1]
local out = {}
for i = 2, #A, 8 do
  local id, n, give_up, target = A[i], A[i + 1], A[i + 2], A[i + 3]
  local st = redis.call('HGET', dstate, id)
  local state, had = DS.QUEUED, 0
  if st then
    local p = split(st, '|')
    state, had = p[1], tonumber(p[2]) or 0
  end
  local prev = nil
  if n ~= '' then
    if state == DS.SENDING and had == tonumber(n) then prev = had - 1 end
  elseif DS_CLAIMABLE[state] then
    prev = had
  end
  if prev == nil then
    table.insert(out, 0)
  elseif give_up == '1' then
    redis.call('HSET', dstate, id, DS.DEAD .. '|' .. prev .. '|0')
    if not redis.call('HGET', tstate, target) then
      redis.call('HSET', tstate, target, TS.FAILED)
      redis.call('HINCRBY', meta, TARGET_COUNT .. TS.FAILED, 1)
    end
    redis.call('XADD', audit, '*', 'ev', EV.GAVE_UP, 'at', now, 'd', id, 'tg', target,
      'ch', A[i + 4], 'st', A[i + 5], 'k', A[i + 6], 'n', prev, 'x', A[i + 7])
    table.insert(out, 1)
  else
    if n ~= '' then redis.call('HSET', dstate, id, DS.RETRY .. '|' .. prev .. '|0') end
    table.insert(out, 1)
  end
end
return out
