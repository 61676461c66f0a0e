-- Record the result of a door-to-door visit of a grid (ConsoleBook.record_door): kept as the
-- grid's latest result (the console hash's `field`) and audited. A grid still open, on the
-- 未叫醒 list, stopped or taken over closes as VISITED (GridState.VISITABLE); one its officer
-- confirmed, dropped by an Update or lifted keeps its state (the result is kept all the same).
-- Returns 0 no such grid in the campaign, 1 the grid closed now, 2 it kept its state.
local meta, grids, audit, console = unpack(KEYS)
local grid, field, result, now, outcome, note, by, via = unpack(ARGV)
local gs = redis.call('HGET', grids, grid)
if not gs then return 0 end
redis.call('HSET', console, field, result)
local p = split(gs, '|')
local code = 2
if GS_VISITABLE[p[1]] then
  grid_set(meta, grids, grid, p[1], GS.VISITED, p[2], p[3], now)
  code = 1
end
redis.call('XADD', audit, '*', 'ev', EV.DOOR, 'at', now, 'g', grid, 'r', outcome, 'x', note,
  'by', by, 'via', via)
return code
