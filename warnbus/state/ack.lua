-- Record a person's confirmation (Store.ack).
-- via: an AckVia; delivery_id: the delivery it came through ('' if none); by: the console
-- user who entered it ('' if none); reply_via: '' for a confirmation that names its
-- campaign; for a reply that names none, the channel it came through.
-- Returns {code, extra}: code 1 recorded, 2 duplicate (already confirmed), 0 no such
-- campaign, -1 not a target, -2 (a reply) nothing reached the person through `reply_via` in
-- this campaign before the reply arrived, 3 late (the campaign has ended: cancelled, expired,
-- or past its expiry; or an Update dropped every grid the person answers for, whose 解除 they
-- were sent; nothing changes but the audit entry of the first late confirmation, whether or
-- not the person had confirmed before).
-- extra: with 1 the time of the person's first wave ('' if unknown), for the ack latency
-- metric without another round trip, then the campaign's level and the person's holds (for
-- the report deadline the confirmation starts, and the policy row it is read from: reading
-- them again cost more than the rest of a confirmation); with 3 the campaign's state, or GS.DROPPED for a
-- person whose area was dropped from a running campaign.
-- A confirmation through a delivery (a key pressed in its call, its card's button) also
-- shows that the delivery arrived: it moves to delivered here, duplicate or not, rather than
-- by a second script call from the channel; not in an ended campaign.
local meta, acks, holds, grids, stopped, tstate, audit, first, dstate, accepted, late = unpack(KEYS)
local person, ack_blob, now, via, delivery_id, by, reply_via = unpack(ARGV)
if redis.call('EXISTS', meta) == 0 then return {0, ''} end
local cstate = redis.call('HGET', meta, MF.STATE)
local expires = tonumber(redis.call('HGET', meta, MF.EXPIRES_AT) or '')
local over = (cstate ~= CS.ACTIVE) or (expires ~= nil and tonumber(now) >= expires)
if delivery_id ~= '' and not over then
  local st = redis.call('HGET', dstate, delivery_id)
  if st then
    local p = split(st, '|')
    if DS_AWAITING_REPORT[p[1]] then
      redis.call('HSET', dstate, delivery_id, DS.DELIVERED .. '|' .. p[2] .. '|0')
      redis.call('XADD', audit, '*', 'ev', EV.STATUS, 'at', now, 'd', delivery_id, 'tg', person,
        's', DR.DELIVERED, 'x', 'confirmed by ' .. via)
    end
  end
end
local held = redis.call('HGET', holds, person)
if not held then return {-1, ''} end
if reply_via ~= '' then
  local at = tonumber(redis.call('HGET', accepted, person .. '|' .. reply_via) or '')
  if at == nil or at > tonumber(now) then return {-2, ''} end
end
-- For a person every grid of whom an Update dropped, the warning was lifted as for everyone
-- after a Cancel: what they confirm now (a call or card of before) is late, not in time.
local ended = cstate or ''
if not over and held ~= '' then
  over = true
  for _, item in ipairs(split(held, ',')) do
    local gs = redis.call('HGET', grids, split(item, ':')[1])
    if not gs or split(gs, '|')[1] ~= GS.DROPPED then over = false; break end
  end
  if over then ended = GS.DROPPED end
end
-- After the end every confirmation is late, also from a person who had confirmed in time:
-- the first one is audited (a 解除 the policy asked to confirm is confirmed this way).
if over then
  if redis.call('HSETNX', late, person, now) == 1 then
    redis.call('XADD', audit, '*', 'ev', EV.LATE, 'at', now, 'tg', person, 'via', via,
      'd', delivery_id, 'by', by, 's', ended)
  end
  return {3, ended}
end
if redis.call('HEXISTS', acks, person) == 1 then return {2, ''} end
redis.call('HSET', acks, person, ack_blob)
redis.call('SADD', stopped, person)
target_forward(meta, tstate, person, TS.ACKED)
if held ~= '' then
  for _, item in ipairs(split(held, ',')) do
    local gl = split(item, ':')
    local g, mylevel = gl[1], tonumber(gl[2])
    local gs = redis.call('HGET', grids, g)
    if gs then
      local p = split(gs, '|')
      -- a late confirmation takes a grid off the 未叫醒 list too, and one after the calling
      -- was stopped closes its grid as confirmed (GridState.CONFIRMABLE)
      if GS_CONFIRMABLE[p[1]] then
        grid_set(meta, grids, g, p[1], confirmed_state(mylevel), p[2], person, now)
      end
    end
  end
end
redis.call('XADD', audit, '*', 'ev', EV.ACK, 'at', now, 'tg', person, 'via', via,
  'd', delivery_id, 'by', by)
return {1, redis.call('HGET', first, person) or '', redis.call('HGET', meta, MF.LEVEL) or '',
  held}
