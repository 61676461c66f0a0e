-- Store targets (Store.put_targets): a replay rewrites the same values, and the time of each
-- target's first wave (a replay keeps the first: deadlines and statistics count from it).
-- batch: msgpack array: now, then (target_id, encoded target) pairs.
-- Returns those first-wave times, in the order of the targets.
local targets, first = unpack(KEYS)
local batch = unpack(ARGV)
local A = cmsgpack.unpack(batch)
local now = A[1]
local firsts = {}
for i = 2, #A, 2 do
  redis.call('HSET', targets, A[i], A[i + 1])
  if redis.call('HSETNX', first, A[i], now) == 1 then
    table.insert(firsts, now)
  else
    table.insert(firsts, redis.call('HGET', first, A[i]))
  end
end
return firsts
