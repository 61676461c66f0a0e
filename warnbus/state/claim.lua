-- Claim deliveries for sending (Store.claim): one call per campaign and chunk.
-- batch: msgpack array of strings (see `pack_args`): now, lease_s, then (delivery_id, kind,
-- target_id) triples.
-- Returns a flat list of (code, attempt_number): code 1 send, 2 resend after an expired lease
-- (a worker died mid-send: counted as a possible duplicate), 0 skip (done), 3 cancelled
-- (campaign over, or the person needs no more calls), 4 in flight under another worker's
-- lease (leave the entry pending: if that worker is dead, a later reclaim resends it).
local meta, dstate, stopped = unpack(KEYS)
local batch = unpack(ARGV)
local A = cmsgpack.unpack(batch)
local now = tonumber(A[1])
local lease = tonumber(A[2])
local cstate = redis.call('HGET', meta, MF.STATE)
local expires = tonumber(redis.call('HGET', meta, MF.EXPIRES_AT) or '')
local any_stopped = redis.call('SCARD', stopped) > 0  -- none in a first wave: skip the lookups
local out = {}
for i = 3, #A, 3 do
  local id, kind, target = A[i], A[i + 1], A[i + 2]
  local st = redis.call('HGET', dstate, id)
  local state, n, until_ = DS.QUEUED, 0, 0
  if st then
    local p = split(st, '|')
    state, n, until_ = p[1], tonumber(p[2]) or 0, tonumber(p[3]) or 0
  end
  local code = 0
  if DS_CLAIMABLE[state] then
    code = 1
  elseif state == DS.SENDING then
    if until_ < now then code = 2 else code = 4 end
  end
  if code == 1 or code == 2 then
    local over = (cstate ~= CS.ACTIVE) or (expires and now >= expires)
    local stop = false
    if DK_CALLS[kind] then
      stop = over or (any_stopped and redis.call('SISMEMBER', stopped, target) == 1)
    elseif DK_WHILE_ACTIVE[kind] then
      stop = over
    end
    if stop then
      redis.call('HSET', dstate, id, DS.CANCELLED .. '|' .. n .. '|0')
      code = 3
    else
      if code == 2 then redis.call('HINCRBY', meta, MF.DUPLICATES, 1) end
      n = n + 1
      redis.call('HSET', dstate, id, DS.SENDING .. '|' .. n .. '|' .. (now + lease))
    end
  end
  table.insert(out, code)
  table.insert(out, n)
end
return out
