"""Campaign state in Redis: the owner of a campaign's keys and of its Lua transitions.

Every read and write of a campaign's keys goes through the Store: its own methods (meta,
targets, grids, acks, audit, each transition one Lua script beside this module; the
deliveries' claims, records and reports in `deliveries.py`, whose class it extends),
`Store.messages` (accepted messages and their indexes, `messages.py`), `Store.console`
(what the console adds to a campaign, `consolebook.py`), `Store.board` (what the
console's board reads, `boardreads.py`) and `Store.feedback` (reports after the ack,
`feedbackbook.py`). tests/engine/test_one_owner.py
checks that no module outside `warnbus/state/` touches them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import msgspec

from warnbus.domain.meta import (
    CampaignMeta,
    MessageMeta,
    decode_meta,
    encode_fields,
    message_fields,
)
from warnbus.domain.models import (
    Ack,
    Alert,
    Level,
    Target,
)
from warnbus.domain.states import (
    CampaignState,
    GridState,
    GridView,
    TargetState,
)
from warnbus.state import keys, scripts
from warnbus.state.audit import audit_row
from warnbus.state.boardreads import BoardReads, grid_view
from warnbus.state.client import RedisClient
from warnbus.state.consolebook import ConsoleBook
from warnbus.state.deliveries import (
    _VALUE,
    Deliveries,
    SendRecord,  # the record of one send
)
from warnbus.state.feedbackbook import FeedbackBook
from warnbus.state.messages import Messages
from warnbus.state.replies import text_of
from warnbus.state.scripts import pack_args

# The scripts of the campaign state, each in its .lua file beside this module.
ACK = scripts.load(__file__, "ack")
PUT_TARGETS = scripts.load(__file__, "put_targets")
INIT_GRIDS = scripts.load(__file__, "init_grids")
CLOSE_GRIDS = scripts.load(__file__, "close_grids")
REOPEN_GRIDS = scripts.load(__file__, "reopen_grids")
ADVANCE = scripts.load(__file__, "advance")
SETTLE_GRIDS = scripts.load(__file__, "settle_grids")
FINISH = scripts.load(__file__, "finish")

_enc = msgspec.msgpack.Encoder()
_dec_target = msgspec.msgpack.Decoder(Target)
_dec_ack = msgspec.msgpack.Decoder(Ack)
_json_alert = msgspec.json.Decoder(Alert)
#: How long an ended campaign stays in `keys.ENDED` (replies to it are late, not lost).
ENDED_KEPT_S = 7 * 86400.0


#: What `Store.advance` did to each grid.
NOT_MOVED, MOVED, CLOSED_AT_ONCE = 0, 1, 2



class AckReply(NamedTuple):
    """What the ack script answered (`Store.ack`)."""

    code: int
    extra: str
    level: Level | None  # the campaign's, with a new confirmation only
    held: tuple[str, ...]  # the grids and sites the person answers for, likewise

class Store(Deliveries):
    def __init__(self, redis: RedisClient) -> None:
        super().__init__(redis)  # self._redis, and the deliveries' scripts (deliveries.py)
        self.messages = Messages(redis)
        self.console = ConsoleBook(redis)
        self.board = BoardReads(redis)
        self.feedback = FeedbackBook(redis)
        self._ack = ACK.bind(redis)
        self._init_grids = INIT_GRIDS.bind(redis)
        self._close_grids = CLOSE_GRIDS.bind(redis)
        self._reopen_grids = REOPEN_GRIDS.bind(redis)
        self._advance = ADVANCE.bind(redis)
        self._settle_grids = SETTLE_GRIDS.bind(redis)
        self._finish = FINISH.bind(redis)
        self._put_targets = PUT_TARGETS.bind(redis)

    # ----------------------------------------------------------------- alerts and meta

    async def campaign_of(self, alert_id: str) -> str | None:
        v = await self._redis.get(keys.alert_index(alert_id))
        return text_of(v) or None

    async def alert(self, campaign_id: str, alert_id: str) -> Alert | None:
        blob = await self._redis.hget(keys.campaign(campaign_id).alerts, alert_id)
        return _json_alert.decode(blob) if blob else None

    async def thread_alerts(self, campaign_id: str) -> list[Alert]:
        """Every message accepted in a campaign's thread (Alert, Updates, Cancel)."""
        blobs = await self._redis.hvals(keys.campaign(campaign_id).alerts)
        return [_json_alert.decode(b) for b in blobs]

    async def reach(self, campaign_id: str) -> set[str]:
        """What the thread's messages reached (see keys.CampaignKeys.reach)."""
        return {text_of(m) for m in await self._redis.smembers(keys.campaign(campaign_id).reach)}

    async def meta(self, campaign_id: str) -> CampaignMeta | None:
        """What the campaign's meta says (None: no such campaign). CampaignStateError when it
        does not read, e.g. a started campaign without its level."""
        raw = await self._redis.hgetall(keys.campaign(campaign_id).meta)
        if not raw:
            return None
        return decode_meta(campaign_id, {text_of(k): text_of(v) for k, v in raw.items()})

    async def start(self, campaign_id: str, msg: MessageMeta, *, root: str, sender: str,
                    event: str, drill: bool, now: float) -> None:
        """Start a campaign: active, with its level, root, times and first message, and list
        it among the active ones. A replay keeps what the first run wrote of the start
        (`t0`, ...) and writes the message's content again."""
        first = {"state": CampaignState.ACTIVE, "level": msg.level, "root": root,
                 "sender": sender, "created_at": now, "t0": now, "drill": drill,
                 "expires_at": msg.expires_at, "event": event, "villages": msg.villages}
        k = keys.campaign(campaign_id).meta
        pipe = self._redis.pipeline(transaction=False)
        for name, value in encode_fields(first).items():
            pipe.hsetnx(k, name, value)
        pipe.hset(k, mapping=encode_fields({"latest": msg.latest, "headline": msg.headline,
                                            "area": msg.area, "targets": msg.targets}))
        await pipe.execute()
        await self.activate(campaign_id, now)

    async def carry(self, campaign_id: str, msg: MessageMeta) -> None:
        """An Update: the campaign carries `msg`'s content, level, expiry and reach now."""
        await self._redis.hset(keys.campaign(campaign_id).meta, mapping=message_fields(msg))

    async def cancelled_by(self, campaign_id: str, alert_id: str) -> str:
        """Keep `alert_id` as the Cancel that ended the thread unless one did before; the
        alert id of the one that did."""
        k = keys.campaign(campaign_id).meta
        pipe = self._redis.pipeline(transaction=False)
        for name, value in encode_fields({"cancelled_by": alert_id}).items():
            pipe.hsetnx(k, name, value)
            pipe.hget(k, name)
        _first, got = await pipe.execute()
        return text_of(got)

    # ----------------------------------------------------------------- targets and grids

    async def put_targets(self, campaign_id: str, targets: Sequence[Target], now: float,
                          chunk: int = 2000) -> dict[str, float]:
        """Store targets; return each one's first-wave time (`now`, or an earlier one kept)."""
        ck = keys.campaign(campaign_id)
        firsts: dict[str, float] = {}
        for i in range(0, len(targets), chunk):
            part = targets[i : i + chunk]
            args: list[str | bytes] = [str(now)]
            for t in part:
                args += [t.id, _enc.encode(t)]
            got = await self._put_targets(ck, batch=pack_args(args))
            firsts.update(zip((t.id for t in part), map(float, got), strict=True))
        return firsts

    async def targets(self, campaign_id: str) -> dict[str, Target]:
        raw = await self._redis.hgetall(keys.campaign(campaign_id).targets)
        return {text_of(k): _dec_target.decode(v) for k, v in raw.items()}

    async def target(self, campaign_id: str, target_id: str) -> Target | None:
        blob = await self._redis.hget(keys.campaign(campaign_id).targets, target_id)
        return _dec_target.decode(blob) if blob else None

    async def holders(self, campaign_id: str) -> list[str]:
        """Everyone who answers for a grid of the campaign (primaries and chain people)."""
        return sorted(text_of(p) for p in await self._redis.hkeys(keys.campaign(campaign_id).holds))

    async def first_wave_at(self, campaign_id: str, person_id: str) -> float | None:
        v = await self._redis.hget(keys.campaign(campaign_id).first, person_id)
        return float(v) if v else None

    async def init_grids(self, campaign_id: str, grid_primary: Sequence[tuple[str, str]],
                         now: float) -> int:
        """Set up the grids not yet known, each calling its primary (confirmed at once when
        the primary has confirmed already); return how many were new."""
        ck = keys.campaign(campaign_id)
        args: list[str] = [x for pair in grid_primary for x in pair]
        added = 0
        for i in range(0, len(args), 2000):
            added += int(await self._init_grids(ck, now=now,
                                                batch=pack_args(args[i : i + 2000]),
                                                everyone=keys.STOPPED_ALL))
        return added

    async def close_grids(
        self, campaign_id: str, grids: Sequence[str], state: GridState, stop: Sequence[str],
        now: float,
    ) -> int:
        ck = keys.campaign(campaign_id)
        return int(await self._close_grids(ck, *grids, "--", *stop, now=now,
                                           new_state=_VALUE[state]))

    async def reopen_grids(
        self, campaign_id: str, pairs: Sequence[tuple[str, str]], now: float
    ) -> int:
        """Grids dropped by an Update that a later one puts back: (grid, primary) pairs call
        their primary again from the start (`reopen_grids.lua`); how many reopened now."""
        if not pairs:
            return 0
        ck = keys.campaign(campaign_id)
        return int(await self._reopen_grids(ck, *(x for pair in pairs for x in pair), now=now,
                                            everyone=keys.STOPPED_ALL))

    async def grids(self, campaign_id: str) -> dict[str, GridView]:
        raw = await self._redis.hgetall(keys.campaign(campaign_id).grids)
        return {text_of(k): grid_view(text_of(k), text_of(v)) for k, v in raw.items()}

    async def held(self, campaign_id: str, person_id: str) -> list[GridView]:
        """The grids a person answers for in this campaign, with where each stands."""
        ck = keys.campaign(campaign_id)
        held = text_of(await self._redis.hget(ck.holds, person_id))
        ids = [item.split(":")[0] for item in held.split(",") if item]
        if not ids:
            return []
        values = await self._redis.hmget(ck.grids, ids)
        return [grid_view(g, text_of(v)) for g, v in zip(ids, values, strict=True) if v]

    async def advance(
        self, campaign_id: str, from_holder: str, quads: Sequence[tuple[str, int, int, str]],
        now: float,
    ) -> list[int]:
        """Move grids on from `from_holder`: (grid, from_level, to_level, new_holder or "")
        each. Per grid: NOT_MOVED, MOVED (call the new holder), or CLOSED_AT_ONCE (the new
        holder had confirmed already: the grid is theirs, confirmed; see advance.lua)."""
        if not quads:
            return []
        ck = keys.campaign(campaign_id)
        res = await self._advance(ck, *(x for quad in quads for x in quad), now=now,
                                  from_holder=from_holder)
        return [int(x) for x in res]

    async def settle_grids(self, campaign_id: str, grids: Sequence[str], now: float) -> list[str]:
        """Close the open grids of `grids` whose holder has confirmed, as that confirmation
        closes a grid; return those closed."""
        if not grids:
            return []
        return [text_of(g) for g in await self._settle_grids(keys.campaign(campaign_id), *grids,
                                                       now=now)]

    async def finish(self, campaign_id: str, state: CampaignState, now: float) -> bool:
        """End an active campaign (`state`: one of CampaignState.ENDED); False if it was not
        active. It leaves the active campaigns and joins the ended ones either way."""
        ck = keys.campaign(campaign_id)
        moved = bool(int(await self._finish(ck, new_state=_VALUE[state], now=now)))
        # After the state moved (a crash in between leaves a stale index entry, which
        # the ack script of a reply filters out by the campaign's state).
        pipe = self._redis.pipeline(transaction=False)
        pipe.zrem(keys.ACTIVE, campaign_id)
        pipe.zadd(keys.ENDED, {campaign_id: now}, nx=True)
        pipe.zremrangebyscore(keys.ENDED, "-inf", now - ENDED_KEPT_S)
        await pipe.execute()
        return moved

    async def activate(self, campaign_id: str, now: float) -> None:
        """List a started campaign among the active ones (see `active_campaigns`)."""
        await self._redis.zadd(keys.ACTIVE, {campaign_id: now}, nx=True)

    async def target_states(self, campaign_id: str) -> dict[str, TargetState]:
        raw = await self._redis.hgetall(keys.campaign(campaign_id).tstate)
        return {text_of(k): TargetState(text_of(v)) for k, v in raw.items()}

    async def target_states_of(self, campaign_id: str, target_ids: Sequence[str]
                               ) -> list[TargetState | None]:
        """The states of some targets, in their order (None: nothing happened to it yet)."""
        if not target_ids:
            return []
        raw = await self._redis.hmget(keys.campaign(campaign_id).tstate, list(target_ids))
        return [TargetState(text_of(v)) if v else None for v in raw]

    # ----------------------------------------------------------------- acks

    async def ack(self, ack: Ack, *, reply_via: str = "") -> AckReply:
        """Record a confirmation: (code, extra, level, held) as `ack.lua` returns them: 1 new
        (extra: the time of the person's first wave, or ""; level: the campaign's; held: the
        grids and sites the person answers for), 2
        duplicate, 0 no such campaign, -1 not a target, -2 a reply through `reply_via` (a
        channel) while nothing had reached the person through it in this campaign, 3 late:
        the campaign has ended (extra: its state), or an Update dropped every grid the person
        answers for (extra: GridState.DROPPED), nothing changes but the audit. A confirmation
        through a delivery (`ack.delivery_id`) marks that delivery delivered too, while the
        campaign runs."""
        ck = keys.campaign(ack.campaign_id)
        reply = await self._ack(
            ck, person=ack.person_id, ack_blob=_enc.encode(ack), now=ack.at,
            via=ack.via.value, delivery_id=ack.delivery_id or "", by=ack.by or "",
            reply_via=reply_via)
        level = text_of(reply[2]) if len(reply) > 2 else ""
        held = text_of(reply[3]) if len(reply) > 3 else ""
        return AckReply(int(reply[0]), text_of(reply[1]), Level(level) if level else None,
                        tuple(item.split(":")[0] for item in held.split(",") if item))

    async def acks(self, campaign_id: str) -> dict[str, Ack]:
        raw = await self._redis.hgetall(keys.campaign(campaign_id).acks)
        return {text_of(k): _dec_ack.decode(v) for k, v in raw.items()}

    async def is_acked(self, campaign_id: str, person_id: str) -> bool:
        return bool(await self._redis.hexists(keys.campaign(campaign_id).acks, person_id))

    async def ended_campaigns(self, since: float) -> list[str]:
        """Campaigns that ended (cancelled, expired) at `since` or later, newest first; a
        reply to one of them is recorded as late."""
        return [text_of(c) for c in await self._redis.zrevrangebyscore(keys.ENDED, "+inf", since)]

    async def reply_handled(self, channel: str, reply_id: str) -> bool:
        """Whether an inbound reply (by its provider message id) was handled: a resend or a
        replay of it confirms nothing new."""
        return bool(await self._redis.exists(keys.reply(channel, reply_id)))

    async def reply_done(self, channel: str, reply_id: str, ttl_s: float) -> None:
        """Mark an inbound reply handled for `ttl_s`: only once its confirmations are
        written, so that a reply never counts as handled while it is not."""
        await self._redis.set(keys.reply(channel, reply_id), "1", px=int(ttl_s * 1000))

    async def active_campaigns(self) -> list[str]:
        """Campaigns started and not yet ended (a handful at a time, even in a flood season).

        An SMS reply carries no campaign: it confirms the sender in each of these where they
        are a target (the ack script checks that, and that the campaign is still active)."""
        return [text_of(c) for c in await self._redis.zrange(keys.ACTIVE, 0, -1)]

    # ----------------------------------------------------------------- audit

    async def audit(self, campaign_id: str) -> list[dict[str, str]]:
        """The whole append-only audit stream of a campaign, oldest first."""
        out: list[dict[str, str]] = []
        last = ""
        while True:
            rows = await self.audit_after(campaign_id, last, 5000)
            if not rows:
                return out
            out += rows
            last = rows[-1]["id"]

    async def audit_after(self, campaign_id: str, last: str, count: int) -> list[dict[str, str]]:
        """Up to `count` audit events after the entry id `last` ("" from the start)."""
        lo = "(" + last if last else "-"
        batch = await self._redis.xrange(keys.campaign(campaign_id).audit, min=lo, count=count)
        return [audit_row(text_of(entry_id), fields) for entry_id, fields in batch]


__all__ = ["SendRecord", "Store"]
