-- A token bucket shared by every process (per provider account or number, RateLimiter and
-- SharedLimit): takes up to `want` tokens at `rate` per second, `burst` at most; returns how
-- many were granted now (0..want) and, in ms, how long until the next one.
-- Uses the server's clock so processes on different hosts agree.
local bucket = unpack(KEYS)
local rate, burst, want = unpack(ARGV)
rate, burst, want = tonumber(rate), tonumber(burst), tonumber(want)
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local b = redis.call('HMGET', bucket, 'tokens', 'ts')
local tokens, ts = tonumber(b[1]) or burst, tonumber(b[2]) or now
tokens = math.min(burst, tokens + (now - ts) * rate)
local got = math.min(want, math.floor(tokens))
tokens = tokens - got
redis.call('HSET', bucket, 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', bucket, math.ceil(1000 * burst / rate) + 1000)
local wait = 0
if got < want then wait = math.ceil(1000 * (1 - (tokens - math.floor(tokens))) / rate) end
return {got, wait}
