-- Claim deliveries for sending (Store.claim): one call per campaign and chunk.
-- batch: msgpack array of strings (see `pack_args`): now, lease_s, the holder (the claiming
-- process's consumer name and its turn, "consumer#turn", kept in the claim:
-- "sending|n|lease_until|holder"), the number G of holders gone, then G names: a consumer
-- whose heartbeat stopped (every turn of it), or one turn that failed (its batch is taken
-- again by the same turn): their claims count as expired at once, not after the lease; the
-- number of fallbacks F, then F triples (delivery_id, twin_id, "channel|step") of the fallback deliveries of
-- the chunk, then (delivery_id, kind, target_id, info) of every delivery, where info is
-- what a delivery sends ("target|channel|step|kind|alert_id|level|target_kind|tried"), kept
-- in `dinfo` at its first claim: a claimed delivery is the record's row of an attempt whose
-- outcome is not known until it is recorded (a worker that dies after the provider's accept
-- leaves it so: `warnbus record` shows it, `flow.record`), and a provider's report may need
-- it to re-plan the delivery on another channel.
-- A fallback's twin is the delivery the policy planned at its step on its channel: when the
-- twin has reached the person, or is under way (being sent, waiting to retry), the fallback
-- is not sent, and the audit says so (EV.FALLBACK); otherwise it is sent in the twin's place
-- (a twin not yet claimed is marked cancelled with this fallback as its carrier, whose state
-- then stands for the twin's: the channel sends the step's message once).
-- Returns a flat list of (code, attempt_number): code 1 send, 2 resend after an expired lease
-- or a gone holder (a worker died mid-send: counted as a possible duplicate), 0 skip (done),
-- 3 cancelled (campaign over, the person needs no more calls, or a fallback not needed), 4 in
-- flight under another worker's lease (leave the entry pending: if that worker is dead, a
-- later reclaim resends it).
local meta, dstate, stopped, audit, dinfo = unpack(KEYS)
local batch = unpack(ARGV)
local A = cmsgpack.unpack(batch)
local now = tonumber(A[1])
local lease = tonumber(A[2])
local holder = A[3]
local gone = {}
local at = 5 + tonumber(A[4])
for i = 5, at - 1 do
  gone[A[i]] = true
end
-- A claim's holder is gone when its turn is, or its process ("consumer" of "consumer#turn").
local function holder_gone(by)
  if not by or by == '' then return false end
  if gone[by] then return true end
  local process = string.match(by, '^(.*)#')
  return process ~= nil and gone[process] == true
end
local twins = {}
local first = at + 1 + 3 * tonumber(A[at])
for i = at + 1, first - 1, 3 do
  twins[A[i]] = {A[i + 1], A[i + 2]}
end
local cstate = redis.call('HGET', meta, MF.STATE)
local expires = tonumber(redis.call('HGET', meta, MF.EXPIRES_AT) or '')
local any_stopped = redis.call('SCARD', stopped) > 0  -- none in a first wave: skip the lookups
local out = {}
for i = first, #A, 4 do
  local id, kind, target = A[i], A[i + 1], A[i + 2]
  local st = redis.call('HGET', dstate, id)
  local state, n, until_, by = DS.QUEUED, 0, 0, nil
  if st then
    local p = split(st, '|')
    state, n, until_, by = p[1], tonumber(p[2]) or 0, tonumber(p[3]) or 0, p[4]
  end
  local code = 0
  if DS_CLAIMABLE[state] then
    code = 1
  elseif state == DS.SENDING then
    if until_ < now or holder_gone(by) then code = 2 else code = 4 end
  end
  if code == 1 or code == 2 then
    local over = (cstate ~= CS.ACTIVE) or (expires and now >= expires)
    local stop = false
    if DK_CALLS[kind] then
      stop = over or (any_stopped and redis.call('SISMEMBER', stopped, target) == 1)
    elseif DK_WHILE_ACTIVE[kind] then
      stop = over
    end
    local twin = twins[id]
    if twin and not stop then
      local ts = redis.call('HGET', dstate, twin[1])
      local tstate = DS.QUEUED
      if ts then
        local tp = split(ts, '|')
        tstate = tp[1]
        -- (the 4th field is a cancelled twin's carrier; a claim's is its holder)
        if tstate == DS.CANCELLED and tp[4] and tp[4] ~= id then  -- another fallback took the
          -- twin's place: it counts
          tstate = split(redis.call('HGET', dstate, tp[4]) or DS.QUEUED, '|')[1]
        end
      end
      if DS_REACHED[tstate] or tstate == DS.SENDING or tstate == DS.RETRY then
        local chst = split(twin[2], '|')
        redis.call('XADD', audit, '*', 'ev', EV.FALLBACK, 'at', now, 'd', id, 'tg', target,
          'ch', chst[1], 'st', chst[2], 'k', kind, 'twin', twin[1], 's', tstate)
        stop = true
      elseif not ts then  -- "cancelled|0|0|<carrier>": this fallback sends in its place
        redis.call('HSET', dstate, twin[1], DS.CANCELLED .. '|0|0|' .. id)
      end
    end
    if stop then
      redis.call('HSET', dstate, id, DS.CANCELLED .. '|' .. n .. '|0')
      code = 3
    else
      if code == 2 then redis.call('HINCRBY', meta, MF.DUPLICATES, 1) end
      if n == 0 then redis.call('HSET', dinfo, id, A[i + 3]) end
      n = n + 1
      redis.call('HSET', dstate, id, DS.SENDING .. '|' .. n .. '|' .. (now + lease) .. '|' .. holder)
    end
  end
  table.insert(out, code)
  table.insert(out, n)
end
return out
