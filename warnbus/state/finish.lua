-- End a campaign (Store.finish): only an active one moves. new_state: one of
-- CampaignState.ENDED. Returns 1 moved, 0 it was not active.
local meta = unpack(KEYS)
local new_state, now = unpack(ARGV)
if not CS_ENDED[new_state] then return redis.error_reply('not an ended state: ' .. new_state) end
if redis.call('HGET', meta, MF.STATE) ~= CS.ACTIVE then return 0 end
redis.call('HSET', meta, MF.STATE, new_state, MF.ENDED_AT, now)
return 1
