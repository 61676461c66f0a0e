-- Reopen grids an Update had dropped that a later Update puts back in the area
-- (Store.reopen_grids): each calls its primary officer again from the start, the officer is
-- no longer stopped, and their first wave counts from now (their deadlines, redials and
-- escalation start again; a confirmation is in time again, not late as for a dropped area).
-- Then ARGV[3..]: (grid_id, primary person) pairs. Idempotent: a grid not dropped is left
-- as it is. A primary who has confirmed in this campaign meanwhile has the grid back
-- confirmed, as init_grids does: their deadline would find them confirmed and leave the
-- grid calling with nothing to move it. Once a duty officer stopped the campaign's calling
-- (`everyone` in `stopped`, keys.STOPPED_ALL) a grid put back stays uncalled: it becomes
-- STOPPED and its officer stays stopped. Returns how many grids were reopened now.
local meta, grids, stopped, first, audit, acks = unpack(KEYS)
local now, everyone = unpack(ARGV, 1, 2)
local halted = redis.call('SISMEMBER', stopped, everyone) == 1
local reopened = 0
for i = 3, #ARGV - 1, 2 do
  local g, person = ARGV[i], ARGV[i + 1]
  local gs = redis.call('HGET', grids, g)
  if gs and split(gs, '|')[1] == GS.DROPPED then
    local state = GS.CALLING
    if redis.call('HEXISTS', acks, person) == 1 then
      state = confirmed_state(0)
    elseif halted then
      state = GS.STOPPED
    end
    grid_set(meta, grids, g, GS.DROPPED, state, 0, person, now)
    if not halted then
      redis.call('SREM', stopped, person)
      redis.call('HSET', first, person, now)
    end
    reopened = reopened + 1
  end
end
if reopened > 0 then
  local shown = GS.CALLING
  if halted then shown = GS.STOPPED end
  redis.call('XADD', audit, '*', 'ev', EV.GRIDS, 'at', now, 's', shown, 'n', reopened)
end
return reopened
