-- Set up the grids not yet known, each calling its primary officer (Store.init_grids);
-- idempotent. now: when (the grid's since); batch: msgpack array of (grid_id, primary_person)
-- pairs; everyone: the member of `stopped` that says a duty officer stopped the campaign's
-- calling (keys.STOPPED_ALL).
-- A grid whose primary officer has already confirmed in this campaign (a grid an Update adds
-- to someone who confirmed the first message) starts confirmed by them: nobody would call
-- them for it, and nothing else would close it. After a stop (停止叫应) a grid an Update adds
-- starts stopped and its officer is not called (`stopped`): the board said nobody would be.
-- Returns how many grids were new.
local meta, grids, holds, acks, stopped = unpack(KEYS)
local now, batch, everyone = unpack(ARGV)
local halted = redis.call('SISMEMBER', stopped, everyone) == 1
local added = 0
local A = cmsgpack.unpack(batch)
local any_acks = redis.call('HLEN', acks) > 0  -- none in a first wave: skip the lookups
for i = 1, #A, 2 do
  local g, person = A[i], A[i + 1]
  local state = GS.CALLING
  if any_acks and redis.call('HEXISTS', acks, person) == 1 then
    state = confirmed_state(0)
  elseif halted then
    state = GS.STOPPED
  end
  if redis.call('HSETNX', grids, g, state .. '|0|' .. person .. '|' .. now) == 1 then
    redis.call('HINCRBY', meta, GRID_COUNT .. state, 1)
    added = added + 1
    if state == GS.STOPPED then redis.call('SADD', stopped, person) end
  end
  holds_add(holds, person, g, 0)
end
return added
