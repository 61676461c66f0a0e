-- Append entries to a lane (Lanes.enqueue). batch: msgpack array of entries, each an encoded
-- batch of deliveries. One call appends many entries: a pipeline of one XADD each costs the
-- client a command to pack and a reply to parse each.
local lane = unpack(KEYS)
local batch = unpack(ARGV)
local A = cmsgpack.unpack(batch)
for i = 1, #A do
  redis.call('XADD', lane, '*', 'b', A[i])
end
return #A
