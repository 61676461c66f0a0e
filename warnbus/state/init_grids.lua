-- Set up the grids not yet known, each calling its primary officer (Store.init_grids);
-- idempotent. batch: msgpack array of (grid_id, primary_person) pairs.
-- Returns how many grids were new.
local meta, grids, holds = unpack(KEYS)
local batch = unpack(ARGV)
local added = 0
local A = cmsgpack.unpack(batch)
for i = 1, #A, 2 do
  local g, person = A[i], A[i + 1]
  if redis.call('HSETNX', grids, g, GS.CALLING .. '|0|' .. person) == 1 then
    redis.call('HINCRBY', meta, GRID_COUNT .. GS.CALLING, 1)
    added = added + 1
  end
  holds_add(holds, person, g, 0)
end
return added
