-- Helpers shared by the scripts of the store: prepended to each script that calls one of
-- them (warnbus.state.scripts). The state constants (GS, TS, TRANK ...) are generated from
-- warnbus.domain.states.
local function split(s, sep)
  local out = {}
  local from = 1
  while true do
    local i = string.find(s, sep, from, true)
    if not i then table.insert(out, string.sub(s, from)); break end
    table.insert(out, string.sub(s, from, i - 1))
    from = i + 1
  end
  return out
end
-- A grid's new "state|level|holder|since" (since: when it got there), and the grid counters
-- of the campaign's meta.
local function grid_set(meta, grids, g, old_state, state, level, holder, now)
  redis.call('HSET', grids, g, state .. '|' .. level .. '|' .. holder .. '|' .. now)
  if old_state then redis.call('HINCRBY', meta, GRID_COUNT .. old_state, -1) end
  redis.call('HINCRBY', meta, GRID_COUNT .. state, 1)
end
-- The closed state of a grid confirmed by the person of its chain at `level`: confirmed by its
-- primary or backup officer, taken over (door to door) by anyone above them.
local function confirmed_state(level)
  if tonumber(level) <= 1 then return GS.CONFIRMED end
  return GS.TAKEN_OVER
end
local function holds_add(holds, person, g, level)
  local cur = redis.call('HGET', holds, person)
  local item = g .. ':' .. level
  if not cur or cur == '' then
    redis.call('HSET', holds, person, item)
  elseif not string.find(',' .. cur .. ',', ',' .. item .. ',', 1, true) then
    redis.call('HSET', holds, person, cur .. ',' .. item)
  end
end
-- Counter changes of a bulk script, written once at its end (one HINCRBY per counter, not
-- several per item).
local function count(acc, field, by)
  acc[field] = (acc[field] or 0) + by
end
local function flush_counts(meta, acc)
  for field, by in pairs(acc) do
    if by ~= 0 then redis.call('HINCRBY', meta, field, by) end
  end
end
-- A target moves only forward (TargetState.FORWARD; FAILED is before all), with its
-- counters; `acc` collects the counter changes of a bulk script (nil: written now).
local function target_forward(meta, tstate, target, new, acc)
  local cur = redis.call('HGET', tstate, target)
  local cr = 0
  if cur then cr = TRANK[cur] or 0 end
  if TRANK[new] > cr then
    local own = acc or {}
    redis.call('HSET', tstate, target, new)
    if cur then count(own, TARGET_COUNT .. cur, -1) end
    count(own, TARGET_COUNT .. new, 1)
    if not acc then flush_counts(meta, own) end
  end
end
