-- A person's report is due now (FeedbackBook.overdue): unless they reported meanwhile, mark
-- it overdue, told to `to` (the next person, '' if nobody), and audit that once.
-- Returns 1 marked now, 2 marked before (a replay of the timer: its notice is sent again,
-- which the notice's deterministic delivery id makes harmless), 0 they had reported.
local feedback, audit = unpack(KEYS)
local person, to, now = unpack(ARGV)
local raw = redis.call('HGET', feedback, person)
local st = {}
if raw then st = cjson.decode(raw) end
if (st.n or 0) > 0 then return 0 end
if st.overdue then return 2 end
st.overdue = tonumber(now)
st.overdue_to = to
redis.call('HSET', feedback, person, cjson.encode(st))
redis.call('XADD', audit, '*', 'ev', EV.FEEDBACK_OVERDUE, 'at', now, 'tg', person, 'to', to)
return 1
