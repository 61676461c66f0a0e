"""The Lua scripts: every state transition is one atomic compare-and-set inside Redis.

Each script touches the keys of one campaign (one hash tag) or the timer keys (another), so all
of them run on a Redis Cluster. State strings:

- delivery state (`dstate`): "state|attempts|lease_until";
- grid state (`grids`): "state|level|holder" where level is the index in the chain
  (0 primary, 1 backup, 2 village head, ...) and holder the person being called now;
- target state (`tstate`): sent < delivered < acked (only moves forward), or failed;
- counters live in the campaign's `meta` hash: t_sent, t_delivered, t_acked, t_failed,
  g_<gridstate>, attempts, duplicates.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

_pack = msgspec.msgpack.Encoder()


def pack_args(args: Sequence[str | bytes]) -> bytes:
    """The arguments of a bulk script as one msgpack array (`cmsgpack.unpack` in the script).

    A call with thousands of arguments costs the client one pack per argument (pure Python
    in redis-py's asyncio connection); one msgpack blob costs far less. Every item is packed
    as a msgpack string, which the script sees exactly as it would an ARGV value: Redis's
    cmsgpack does not read the msgpack `bin` type that msgspec writes for bytes.
    """
    if all(type(a) is str for a in args):
        return _pack.encode(args)
    parts = [_header(len(args), 0x90, 16, 0xDC, 0xDD)]
    for a in args:
        b = a.encode() if isinstance(a, str) else a
        parts.append(_str_header(len(b)))
        parts.append(b)
    return b"".join(parts)


def _header(n: int, fix: int, fix_limit: int, b16: int, b32: int) -> bytes:
    if n < fix_limit:
        return bytes((fix | n,))
    if n < 0x10000:
        return bytes((b16,)) + n.to_bytes(2, "big")
    return bytes((b32,)) + n.to_bytes(4, "big")


def _str_header(n: int) -> bytes:
    if n < 32:
        return bytes((0xA0 | n,))
    if n < 0x100:
        return bytes((0xD9, n))
    return _header(n, 0, 0, 0xDA, 0xDB)

# Shared Lua helpers, prepended to scripts that need them.
_HELPERS = r"""
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
local CLOSED = {confirmed=true, taken_over=true, unreached=true, dropped=true, cancelled=true}
local TRANK = {sent=1, delivered=2, acked=3}
local function grid_set(meta, grids, g, old_state, state, level, holder)
  redis.call('HSET', grids, g, state .. '|' .. level .. '|' .. holder)
  if old_state then redis.call('HINCRBY', meta, 'g_' .. old_state, -1) end
  redis.call('HINCRBY', meta, 'g_' .. state, 1)
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
local function target_forward(meta, tstate, target, new, acc)
  local cur = redis.call('HGET', tstate, target)
  local cr = 0
  if cur then cr = TRANK[cur] or 0 end
  if TRANK[new] > cr then
    local own = acc or {}
    redis.call('HSET', tstate, target, new)
    if cur and TRANK[cur] then count(own, 't_' .. cur, -1) end
    if cur == 'failed' then count(own, 't_failed', -1) end
    count(own, 't_' .. new, 1)
    if not acc then flush_counts(meta, own) end
  end
end
"""

# KEYS: meta, dstate, stopped
# ARGV[1]: msgpack array of strings (see `pack_args`): now, lease_s, then (delivery_id, kind,
# target_id) triples
# Returns a flat list of (code, attempt_number): code 1 send, 2 resend after an expired lease
# (a worker died mid-send: counted as a possible duplicate), 0 skip (done), 3 cancelled
# (campaign over, or the person needs no more calls), 4 in flight under another worker's
# lease (leave the entry pending: if that worker is dead, a later reclaim resends it).
CLAIM = (
    _HELPERS
    + r"""
local A = cmsgpack.unpack(ARGV[1])
local now = tonumber(A[1])
local lease = tonumber(A[2])
local cstate = redis.call('HGET', KEYS[1], 'state')
local expires = tonumber(redis.call('HGET', KEYS[1], 'expires_at') or '')
local any_stopped = redis.call('SCARD', KEYS[3]) > 0  -- none in a first wave: skip the lookups
local out = {}
for i = 3, #A, 3 do
  local id, kind, target = A[i], A[i + 1], A[i + 2]
  local st = redis.call('HGET', KEYS[2], id)
  local state, n, until_ = 'queued', 0, 0
  if st then
    local p = split(st, '|')
    state, n, until_ = p[1], tonumber(p[2]) or 0, tonumber(p[3]) or 0
  end
  local code = 0
  if state == 'queued' or state == 'retry' then
    code = 1
  elseif state == 'sending' then
    if until_ < now then code = 2 else code = 4 end
  end
  if code == 1 or code == 2 then
    local over = (cstate ~= 'active') or (expires and now >= expires)
    local stop = false
    if kind == 'warning' or kind == 'redial' or kind == 'escalation' then
      stop = over or (any_stopped and redis.call('SISMEMBER', KEYS[3], target) == 1)
    elseif kind == 'update' or kind == 'notice' then
      stop = over
    end
    if stop then
      redis.call('HSET', KEYS[2], id, 'cancelled|' .. n .. '|0')
      code = 3
    else
      if code == 2 then redis.call('HINCRBY', KEYS[1], 'duplicates', 1) end
      n = n + 1
      redis.call('HSET', KEYS[2], id, 'sending|' .. n .. '|' .. (now + lease))
    end
  end
  table.insert(out, code)
  table.insert(out, n)
end
return out
"""
)

# KEYS: meta, dstate, tstate, audit, dinfo, accepted
# ARGV[1]: msgpack array of strings: now, then 10-tuples (delivery_id, target_id, channel,
#       step, kind, n, outcome,
#       next_state, detail, info) where next_state is sent|delivered|retry|failed|dead, detail
#       is the provider id or the error text, and info what a later status callback needs to
#       re-plan the delivery on another channel ("alert_id|level|target_kind").
# `accepted` keeps when a provider first accepted something for a target through a channel
# ("target|channel" -> time): a reply naming no campaign counts only where it had.
RECORD = (
    _HELPERS
    + r"""
local A = cmsgpack.unpack(ARGV[1])
local now = A[1]
local acc = {}
for i = 2, #A, 10 do
  local id, target, channel, step, kind = A[i], A[i+1], A[i+2], A[i+3], A[i+4]
  local n, outcome, nxt, detail = A[i+5], A[i+6], A[i+7], A[i+8]
  redis.call('HSET', KEYS[2], id, nxt .. '|' .. n .. '|0')
  if n == '1' then
    redis.call('HSET', KEYS[5], id, target .. '|' .. channel .. '|' .. step .. '|' .. kind .. '|' .. A[i+9])
  end
  count(acc, 'attempts', 1)
  if nxt == 'sent' or nxt == 'delivered' then
    target_forward(KEYS[1], KEYS[3], target, nxt, acc)
    redis.call('HSETNX', KEYS[6], target .. '|' .. channel, now)
  elseif nxt == 'failed' or nxt == 'dead' then
    if not redis.call('HGET', KEYS[3], target) then
      redis.call('HSET', KEYS[3], target, 'failed')
      count(acc, 't_failed', 1)
    end
  end
  -- The attempt's fields in one (see `warnbus.state.store.audit_row`): each field of a stream
  -- entry costs Redis time and memory, and this runs once per send.
  redis.call('XADD', KEYS[4], '*', 'ev', 'attempt', 'at', now, 'a', id .. '|' .. target .. '|'
    .. channel .. '|' .. step .. '|' .. kind .. '|' .. n .. '|' .. outcome .. '|' .. nxt,
    'x', detail)
end
flush_counts(KEYS[1], acc)
return 1
"""
)

# KEYS: meta, dstate, tstate, audit
# ARGV: now, delivery_id, target_id, status (delivered|failed), detail
# A provider's status callback. Out-of-order callbacks never move a delivery backwards.
STATUS = (
    _HELPERS
    + r"""
local st = redis.call('HGET', KEYS[2], ARGV[2])
if not st then return 0 end
local p = split(st, '|')
local state, n = p[1], p[2]
local status = ARGV[4]
if status == 'device-failed' then
  -- only the audit below: the area command stands, the speaker did not play
elseif status == 'delivered' and string.sub(ARGV[3], 1, 4) == 'dev:' then
  -- a speaker's playout report: the speaker's own state (no target counters), and the
  -- area command counts as delivered from the first report on
  redis.call('HSET', KEYS[3], ARGV[3], 'delivered')
  if state == 'sent' or state == 'sending' then
    redis.call('HSET', KEYS[2], ARGV[2], 'delivered|' .. n .. '|0')
  end
elseif status == 'delivered' then
  if state ~= 'sent' and state ~= 'sending' then return 2 end
  redis.call('HSET', KEYS[2], ARGV[2], 'delivered|' .. n .. '|0')
  target_forward(KEYS[1], KEYS[3], ARGV[3], 'delivered')
elseif status == 'failed' then
  if state == 'delivered' or state == 'failed' or state == 'dead' then return 2 end
  redis.call('HSET', KEYS[2], ARGV[2], 'failed|' .. n .. '|0')
end
redis.call('XADD', KEYS[4], '*', 'ev', 'status', 'at', ARGV[1], 'd', ARGV[2], 'tg', ARGV[3],
  's', status, 'x', ARGV[5])
return 1
"""
)

# KEYS: meta, acks, holds, grids, stopped, tstate, audit, first, dstate, accepted, late
# ARGV: person_id, ack_blob, now, via, delivery_id, by, reply_via ('' for a confirmation that
# names its campaign; for a reply that names none, the channel it came through)
# Returns {code, extra}: code 1 recorded, 2 duplicate (already confirmed), 0 no such
# campaign, -1 not a target, -2 (a reply) nothing reached the person through `reply_via` in
# this campaign before the reply arrived, 3 late (the campaign has ended: cancelled, expired,
# or past its expiry; nothing changes but the audit entry of the first late confirmation).
# extra: with 1 the time of the person's first wave ('' if unknown), for the ack latency
# metric without another round trip; with 3 the campaign's state.
# A confirmation through a delivery (a key pressed in its call, its card's button) also
# shows that the delivery arrived: it moves to delivered here, duplicate or not, rather than
# by a second script call from the channel; not in an ended campaign.
ACK = (
    _HELPERS
    + r"""
if redis.call('EXISTS', KEYS[1]) == 0 then return {0, ''} end
local now, via, reply_via = ARGV[3], ARGV[4], ARGV[7]
local cstate = redis.call('HGET', KEYS[1], 'state')
local expires = tonumber(redis.call('HGET', KEYS[1], 'expires_at') or '')
local over = (cstate ~= 'active') or (expires ~= nil and tonumber(now) >= expires)
local person = ARGV[1]
if ARGV[5] ~= '' and not over then
  local st = redis.call('HGET', KEYS[9], ARGV[5])
  if st then
    local p = split(st, '|')
    if p[1] == 'sent' or p[1] == 'sending' then
      redis.call('HSET', KEYS[9], ARGV[5], 'delivered|' .. p[2] .. '|0')
      redis.call('XADD', KEYS[7], '*', 'ev', 'status', 'at', now, 'd', ARGV[5], 'tg', person,
        's', 'delivered', 'x', 'confirmed by ' .. via)
    end
  end
end
local held = redis.call('HGET', KEYS[3], person)
if not held then return {-1, ''} end
if reply_via ~= '' then
  local at = tonumber(redis.call('HGET', KEYS[10], person .. '|' .. reply_via) or '')
  if at == nil or at > tonumber(now) then return {-2, ''} end
end
if redis.call('HEXISTS', KEYS[2], person) == 1 then return {2, ''} end
if over then
  if redis.call('HSETNX', KEYS[11], person, now) == 1 then
    redis.call('XADD', KEYS[7], '*', 'ev', 'late', 'at', now, 'tg', person, 'via', via,
      'd', ARGV[5], 'by', ARGV[6], 's', cstate or '')
  end
  return {3, cstate or ''}
end
redis.call('HSET', KEYS[2], person, ARGV[2])
redis.call('SADD', KEYS[5], person)
target_forward(KEYS[1], KEYS[6], person, 'acked')
if held ~= '' then
  for _, item in ipairs(split(held, ',')) do
    local gl = split(item, ':')
    local g, mylevel = gl[1], tonumber(gl[2])
    local gs = redis.call('HGET', KEYS[4], g)
    if gs then
      local p = split(gs, '|')
      -- a late confirmation takes a grid off the 未叫醒 list too
      if (not CLOSED[p[1]]) or p[1] == 'unreached' then
        local new = 'taken_over'
        if mylevel <= 1 then new = 'confirmed' end
        grid_set(KEYS[1], KEYS[4], g, p[1], new, p[2], person)
      end
    end
  end
end
redis.call('XADD', KEYS[7], '*', 'ev', 'ack', 'at', now, 'tg', person, 'via', via,
  'd', ARGV[5], 'by', ARGV[6])
return {1, redis.call('HGET', KEYS[8], person) or ''}
"""
)

# KEYS: one lane stream. ARGV[1]: msgpack array of entries, each an encoded batch of
# deliveries. One call appends many entries: a pipeline of one XADD each costs the client a
# command to pack and a reply to parse each.
ENQUEUE = r"""
local A = cmsgpack.unpack(ARGV[1])
for i = 1, #A do
  redis.call('XADD', KEYS[1], '*', 'b', A[i])
end
return #A
"""

# KEYS: one stream. ARGV: the consumer group, then entry ids (at most a few thousand: Lua's
# unpack). Acknowledges the entries and deletes them (their outcome is stored): one call,
# where a pipeline of XACK and XDEL cost the client about as much as a claim.
DONE = r"""
local ids = {unpack(ARGV, 2)}
redis.call('XACK', KEYS[1], ARGV[1], unpack(ids))
return redis.call('XDEL', KEYS[1], unpack(ids))
"""

# KEYS: targets, first. ARGV[1]: msgpack array: now, then (target_id, encoded target) pairs.
# Stores targets (a replay rewrites the same values) and the time of each target's first
# wave (a replay keeps the first: deadlines and statistics count from it). Returns those
# first-wave times, in the order of the targets.
PUT_TARGETS = r"""
local A = cmsgpack.unpack(ARGV[1])
local now = A[1]
local firsts = {}
for i = 2, #A, 2 do
  redis.call('HSET', KEYS[1], A[i], A[i + 1])
  if redis.call('HSETNX', KEYS[2], A[i], now) == 1 then
    table.insert(firsts, now)
  else
    table.insert(firsts, redis.call('HGET', KEYS[2], A[i]))
  end
end
return firsts
"""

# KEYS: meta, grids, holds
# ARGV[1]: msgpack array of (grid_id, primary_person) pairs. Sets up grids not yet known
# (idempotent).
INIT_GRIDS = (
    _HELPERS
    + r"""
local added = 0
local A = cmsgpack.unpack(ARGV[1])
for i = 1, #A, 2 do
  local g, person = A[i], A[i + 1]
  if redis.call('HSETNX', KEYS[2], g, 'calling|0|' .. person) == 1 then
    redis.call('HINCRBY', KEYS[1], 'g_calling', 1)
    added = added + 1
  end
  holds_add(KEYS[3], person, g, 0)
end
return added
"""
)

# KEYS: meta, grids, stopped, audit
# ARGV: now, new_state (dropped|cancelled), then grid ids; also person ids to stop after '--'.
CLOSE_GRIDS = (
    _HELPERS
    + r"""
local now, new = ARGV[1], ARGV[2]
local i = 3
local closed = 0
while i <= #ARGV and ARGV[i] ~= '--' do
  local g = ARGV[i]
  local gs = redis.call('HGET', KEYS[2], g)
  if gs then
    local p = split(gs, '|')
    if not CLOSED[p[1]] then
      grid_set(KEYS[1], KEYS[2], g, p[1], new, p[2], p[3])
      closed = closed + 1
    end
  end
  i = i + 1
end
i = i + 1
while i <= #ARGV do
  redis.call('SADD', KEYS[3], ARGV[i])
  i = i + 1
end
redis.call('XADD', KEYS[4], '*', 'ev', 'grids', 'at', now, 's', new, 'n', closed)
return closed
"""
)

# KEYS: meta, grids, holds, audit
# ARGV: now, from_holder, then (grid, from_level, to_level, new_holder) quads; new_holder ''
# means the chain is exhausted (the grid goes on the 未叫醒 list). Returns 1/0 per grid.
ADVANCE = (
    _HELPERS
    + r"""
local now, from = ARGV[1], ARGV[2]
local out = {}
for i = 3, #ARGV, 4 do
  local g, fl, tl, to = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local ok = 0
  local gs = redis.call('HGET', KEYS[2], g)
  if gs then
    local p = split(gs, '|')
    if p[1] == 'escalated' and p[2] == tl and p[3] == to then
      ok = 1  -- already moved by an earlier, interrupted run: let its follow-up be redone
    elseif (not CLOSED[p[1]]) and p[2] == fl and p[3] == from then
      if to == '' then
        grid_set(KEYS[1], KEYS[2], g, p[1], 'unreached', fl, from)
      else
        grid_set(KEYS[1], KEYS[2], g, p[1], 'escalated', tl, to)
        holds_add(KEYS[3], to, g, tl)
      end
      redis.call('XADD', KEYS[4], '*', 'ev', 'escalate', 'at', now, 'g', g, 'from', from,
        'to', to, 'lv', tl)
      ok = 1
    end
  end
  table.insert(out, ok)
end
return out
"""
)

# KEYS: meta. ARGV: new_state (cancelled|expired), now. Only an active campaign moves.
FINISH = r"""
if redis.call('HGET', KEYS[1], 'state') ~= 'active' then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'ended_at', ARGV[2])
return 1
"""

# KEYS: timers zset. ARGV[1]: msgpack array of strings: (member, due) pairs. ZADD NX, a
# hundred pairs per call: a member already scheduled keeps its due time. One blob instead of
# a ZADD with two arguments per timer, which redis-py packs one by one in Python (a
# province's first wave schedules 74,000 deadlines).
SCHEDULE = r"""
local A = cmsgpack.unpack(ARGV[1])
local added = 0
for i = 1, #A, 200 do
  local args = {}
  for j = i, math.min(i + 199, #A), 2 do
    table.insert(args, A[j + 1])
    table.insert(args, A[j])
  end
  added = added + redis.call('ZADD', KEYS[1], 'NX', unpack(args))
end
return added
"""

# KEYS: timers zset, due stream. ARGV: now, limit. Moves due timers to the due stream.
PROMOTE = r"""
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, m in ipairs(due) do
  redis.call('XADD', KEYS[2], '*', 'm', m)
  redis.call('ZREM', KEYS[1], m)
end
return #due
"""

# KEYS: bucket hash. ARGV: rate (tokens/s), burst, wanted.
# A token bucket shared by every process (per provider account or number): returns how many
# tokens were granted now (0..wanted) and, in ms, how long until the next one.
# Uses the server's clock so processes on different hosts agree.
TAKE_TOKENS = r"""
local rate, burst, want = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens, ts = tonumber(b[1]) or burst, tonumber(b[2]) or now
tokens = math.min(burst, tokens + (now - ts) * rate)
local got = math.min(want, math.floor(tokens))
tokens = tokens - got
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(1000 * burst / rate) + 1000)
local wait = 0
if got < want then wait = math.ceil(1000 * (1 - (tokens - math.floor(tokens))) / rate) end
return {got, wait}
"""
