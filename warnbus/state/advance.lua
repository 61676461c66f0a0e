-- Move grids to the next person of their chain (Store.advance).
-- from_holder: the person whose deadline passed; then ARGV[3..]: (grid, from_level,
-- to_level, new_holder) quads; new_holder '' means the chain is exhausted (the grid goes on
-- the 未叫醒 list).
-- A grid handed to someone who has already confirmed in this campaign (a village head who
-- holds several grids) closes at once, confirmed by them: their calls are stopped, so no
-- message would go out, and their deadline would find them confirmed and leave the grid open
-- with nothing left to move it.
-- A grid moved on past a person no message had reached (no provider accepted one: their
-- target state is missing or failed) says so: the audit entry carries nc=1 and the meta
-- counts it (MF.UNCONTACTED), for the record and the board.
-- Returns per grid: 0 not moved, 1 moved (call the new holder, set their deadline), 2 closed
-- at once (the new holder had confirmed: nothing to send).
local meta, grids, holds, acks, tstate, audit = unpack(KEYS)
local now, from_holder = unpack(ARGV, 1, 2)
local contacted = TRANK[redis.call('HGET', tstate, from_holder) or ''] ~= nil
local out = {}
for i = 3, #ARGV, 4 do
  local g, fl, tl, to = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local ok = 0
  local gs = redis.call('HGET', grids, g)
  if gs then
    local p = split(gs, '|')
    if p[1] == GS.ESCALATED and p[2] == tl and p[3] == to then
      ok = 1  -- already moved by an earlier, interrupted run: let its follow-up be redone
    elseif (not GS_CLOSED[p[1]]) and p[2] == fl and p[3] == from_holder then
      local closed = ''
      if to == '' then
        grid_set(meta, grids, g, p[1], GS.UNREACHED, fl, from_holder, now)
        ok = 1
      else
        holds_add(holds, to, g, tl)
        if redis.call('HEXISTS', acks, to) == 1 then
          closed = confirmed_state(tl)
          grid_set(meta, grids, g, p[1], closed, tl, to, now)
          ok = 2
        else
          grid_set(meta, grids, g, p[1], GS.ESCALATED, tl, to, now)
          ok = 1
        end
      end
      local entry = {'ev', EV.ESCALATE, 'at', now, 'g', g, 'from', from_holder, 'to', to,
        'lv', tl}
      if closed ~= '' then
        table.insert(entry, 's')
        table.insert(entry, closed)
      end
      if not contacted then
        table.insert(entry, 'nc')
        table.insert(entry, '1')
        redis.call('HINCRBY', meta, MF.UNCONTACTED, 1)
      end
      redis.call('XADD', audit, '*', unpack(entry))
    end
  end
  table.insert(out, ok)
end
return out
