-- Apply a registry change (RegistryBook.apply): compare-and-set on the version it was
-- prepared on, so two people applying at once cannot overwrite each other; writes the
-- records, bumps the version and appends who, when and what to the history stream.
-- Returns {1, new version} or {0, the current version}.
local current, data, history = unpack(KEYS)
local expected, blob, sha, base, at, by, source, year, summary, diff, keep = unpack(ARGV)
local have = redis.call('HGET', current, 'version') or '0'
if have ~= expected then return {0, have} end
local v = tostring(tonumber(have) + 1)
redis.call('SET', data, blob)
redis.call('HSET', current, 'version', v, 'sha', sha, 'base', base, 'at', at, 'by', by,
           'source', source, 'year', year)
redis.call('XADD', history, 'MAXLEN', '~', keep, '*', 'version', v, 'at', at, 'by', by,
           'source', source, 'summary', summary, 'diff', diff)
return {1, v}
