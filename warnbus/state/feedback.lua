-- Record one report after the ack (FeedbackBook.record): append it to the person's history,
-- update their latest counts (a JSON FeedbackState) and audit it.
-- kind: a FeedbackKind; count: the people moved (EVACUATED; '' otherwise); text, photo: a
-- HAZARD's words and link; via: an AckVia; by: who entered it for the person ('' if they did).
-- event: the provider's (or form's) id of the report ('' if none): a report of the person
-- with an event already kept is not kept again (a resent or replayed request changes nothing).
-- Returns {code, state}: 1 recorded (state: the campaign's, a report after the end is kept
-- too), 2 recorded before under the same event (nothing written), 0 no such campaign,
-- -1 not a target, -2 the person has not confirmed (a report comes after the ack: the
-- caller confirms first where the report itself shows receipt),
-- -3 the person has made `most` reports in this campaign already (nothing kept: a bound on
-- what one person's link or number can append).
local meta, acks, holds, feedback, fbhist, fbseen, audit = unpack(KEYS)
local person, kind, count, text, photo, via, by, now, most, event = unpack(ARGV)
if redis.call('EXISTS', meta) == 0 then return {0, ''} end
if redis.call('HEXISTS', holds, person) == 0 then return {-1, ''} end
if redis.call('HEXISTS', acks, person) == 0 then return {-2, ''} end
-- Per person: an id one person's request carries never stands for another's report.
local seen = person .. '|' .. event
if event ~= '' and redis.call('HEXISTS', fbseen, seen) == 1 then
  return {2, redis.call('HGET', meta, MF.STATE) or ''}
end
local raw = redis.call('HGET', feedback, person)
local st = {}
if raw then st = cjson.decode(raw) end
if (st.n or 0) >= tonumber(most) then return {-3, ''} end
local t = tonumber(now)
st.n = (st.n or 0) + 1
st.last = t
if kind == FK.ARRIVED then
  if not st.arrived then st.arrived = t end
elseif kind == FK.EVACUATED then
  st.evacuated = tonumber(count)
elseif kind == FK.HAZARD then
  st.hazards = (st.hazards or 0) + 1
  st.hazard_text = text
  st.hazard_photo = photo
elseif kind == FK.ZERO then
  st.zero = t
else
  return redis.error_reply('feedback: unknown kind ' .. kind)
end
redis.call('HSET', feedback, person, cjson.encode(st))
local entry = redis.call('XADD', fbhist, '*', 'tg', person, 'k', kind, 'n', count, 'x', text,
  'p', photo, 'via', via, 'by', by, 'at', now)
if event ~= '' then redis.call('HSET', fbseen, seen, entry) end
redis.call('XADD', audit, '*', 'ev', EV.FEEDBACK, 'at', now, 'tg', person, 'via', via,
  'by', by, 'k', kind, 'n', count)
return {1, redis.call('HGET', meta, MF.STATE) or ''}
