-- Stop the calling of a campaign (ConsoleBook.stop_calls, 停止叫应): every open grid closes as
-- STOPPED, everyone who answers for a grid of it is called no more (`stopped`), and the stop
-- is kept once (the console hash's `field`) and audited with who stopped it and why.
-- Returns how many grids closed now; -1 the calling had been stopped before, -2 no such
-- campaign or it is not active (ended: nothing is called any more anyway).
local meta, grids, holds, stopped, audit, console = unpack(KEYS)
local now, field, order, by, reason, everyone = unpack(ARGV)
if redis.call('HGET', meta, MF.STATE) ~= CS.ACTIVE then return -2 end
if redis.call('HSETNX', console, field, order) == 0 then return -1 end
local flat = redis.call('HGETALL', grids)
local acc = {}
local closed = 0
for i = 1, #flat, 2 do
  local p = split(flat[i + 1], '|')
  if not GS_CLOSED[p[1]] then
    redis.call('HSET', grids, flat[i], GS.STOPPED .. '|' .. p[2] .. '|' .. p[3] .. '|' .. now)
    count(acc, GRID_COUNT .. p[1], -1)
    count(acc, GRID_COUNT .. GS.STOPPED, 1)
    closed = closed + 1
  end
end
flush_counts(meta, acc)
local people = redis.call('hkeys', holds)  -- lower case: the loader reserves the word KEYS
redis.call('SADD', stopped, everyone)  -- and whoever an Update adds (init_grids.lua)
for i = 1, #people, 1000 do
  redis.call('SADD', stopped, unpack(people, i, math.min(i + 999, #people)))
end
redis.call('XADD', audit, '*', 'ev', EV.STOP, 'at', now, 'by', by, 'x', reason, 'n', closed)
return closed
