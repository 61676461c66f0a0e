-- Acknowledge entries of a stream and delete them (their outcome is stored): one call, where
-- a pipeline of XACK and XDEL cost the client about as much as a claim.
-- group: the consumer group; then ARGV[2..]: entry ids (at most a few thousand: Lua's unpack).
local stream = unpack(KEYS)
local group = unpack(ARGV, 1, 1)
local ids = {unpack(ARGV, 2)}
redis.call('XACK', stream, group, unpack(ids))
return redis.call('XDEL', stream, unpack(ids))
