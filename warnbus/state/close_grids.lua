-- Close open grids (Store.close_grids): dropped by an Update, or cancelled.
-- new_state: one of GridState.CLOSED; then ARGV[3..]: grid ids, '--', person ids to stop
-- calling. Returns how many grids were closed now.
local meta, grids, stopped, audit = unpack(KEYS)
local now, new_state = unpack(ARGV, 1, 2)
if not GS_CLOSED[new_state] then return redis.error_reply('not a closed state: ' .. new_state) end
local i = 3
local closed = 0
while i <= #ARGV and ARGV[i] ~= '--' do
  local g = ARGV[i]
  local gs = redis.call('HGET', grids, g)
  if gs then
    local p = split(gs, '|')
    if not GS_CLOSED[p[1]] then
      grid_set(meta, grids, g, p[1], new_state, p[2], p[3], now)
      closed = closed + 1
    end
  end
  i = i + 1
end
i = i + 1
while i <= #ARGV do
  redis.call('SADD', stopped, ARGV[i])
  i = i + 1
end
redis.call('XADD', audit, '*', 'ev', EV.GRIDS, 'at', now, 's', new_state, 'n', closed)
return closed
