-- Set up the grids not yet known, each calling its primary officer (Store.init_grids);
-- idempotent. batch: msgpack array of (grid_id, primary_person) pairs; everyone: the member
-- of `stopped` that says a duty officer stopped the campaign's calling (keys.STOPPED_ALL).
-- After that stop (停止叫应) a grid an Update adds starts stopped and its officer is not
-- called (`stopped`): the board said nobody would be any more.
-- Returns how many grids were new.
local meta, grids, holds, stopped = unpack(KEYS)
local batch, everyone = unpack(ARGV)
local halted = redis.call('SISMEMBER', stopped, everyone) == 1
local state = GS.CALLING
if halted then state = GS.STOPPED end
local added = 0
local A = cmsgpack.unpack(batch)
for i = 1, #A, 2 do
  local g, person = A[i], A[i + 1]
  if redis.call('HSETNX', grids, g, state .. '|0|' .. person) == 1 then
    redis.call('HINCRBY', meta, GRID_COUNT .. state, 1)
    added = added + 1
    if halted then redis.call('SADD', stopped, person) end
  end
  holds_add(holds, person, g, 0)
end
return added
