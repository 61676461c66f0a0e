-- Move grids to the next person of their chain (Store.advance).
-- from_holder: the person whose deadline passed; then ARGV[3..]: (grid, from_level,
-- to_level, new_holder) quads; new_holder '' means the chain is exhausted (the grid goes on
-- the 未叫醒 list). Returns 1/0 per grid.
local meta, grids, holds, audit = unpack(KEYS)
local now, from_holder = unpack(ARGV, 1, 2)
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
      if to == '' then
        grid_set(meta, grids, g, p[1], GS.UNREACHED, fl, from_holder)
      else
        grid_set(meta, grids, g, p[1], GS.ESCALATED, tl, to)
        holds_add(holds, to, g, tl)
      end
      redis.call('XADD', audit, '*', 'ev', EV.ESCALATE, 'at', now, 'g', g, 'from', from_holder,
        'to', to, 'lv', tl)
      ok = 1
    end
  end
  table.insert(out, ok)
end
return out
