-- Close open grids whose holder has already confirmed (Store.settle_grids): the sweeper's
-- repair of a grid left open with nothing to move it (see advance.lua for how that came
-- about before). ARGV[2..]: grid ids. Each closes as the holder's confirmation would have
-- closed it (confirmed, or taken over above the backup), with an audit entry.
-- Returns the grids closed.
local meta, grids, acks, audit = unpack(KEYS)
local now = unpack(ARGV, 1, 1)
local out = {}
for i = 2, #ARGV do
  local g = ARGV[i]
  local gs = redis.call('HGET', grids, g)
  if gs then
    local p = split(gs, '|')
    if (not GS_CLOSED[p[1]]) and p[3] ~= '' and redis.call('HEXISTS', acks, p[3]) == 1 then
      local closed = confirmed_state(p[2])
      grid_set(meta, grids, g, p[1], closed, p[2], p[3], now)
      redis.call('XADD', audit, '*', 'ev', EV.REPAIR, 'at', now, 'g', g, 'tg', p[3], 's', closed)
      table.insert(out, g)
    end
  end
end
return out
