-- Add timers (Timers.schedule): ZADD NX, a hundred pairs per call: a member already scheduled
-- keeps its due time. batch: msgpack array of strings: (member, due) pairs. One blob instead
-- of a ZADD with two arguments per timer, which redis-py packs one by one in Python (a
-- province's first wave schedules 74,000 deadlines).
local timers = unpack(KEYS)
local batch = unpack(ARGV)
local A = cmsgpack.unpack(batch)
local added = 0
for i = 1, #A, 200 do
  local args = {}
  for j = i, math.min(i + 199, #A), 2 do
    table.insert(args, A[j + 1])
    table.insert(args, A[j])
  end
  added = added + redis.call('ZADD', timers, 'NX', unpack(args))
end
return added
