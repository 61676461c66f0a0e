"""A campaign's deliveries in Redis: claims, attempts, the sends not made, provider reports.

Part of the Store (`store.py`, which extends `Deliveries`): the one owner of a campaign's
keys. Each transition is one Lua script beside this module; a chunk of sends costs one claim
and one record per campaign.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Collection, Mapping, Sequence
from enum import StrEnum
from typing import Any

import msgspec

from warnbus.domain.models import (
    Attempt,
    Delivery,
    DeliveryKind,
    Level,
    Outcome,
    TargetKind,
    delivery_id_for,
)
from warnbus.domain.states import (
    CampaignState,
    DeliveryReport,
    DeliveryState,
    GridState,
)
from warnbus.state import keys, scripts
from warnbus.state.client import RedisClient
from warnbus.state.replies import text_of
from warnbus.state.scripts import pack_args

CLAIM = scripts.load(__file__, "claim")
RECORD = scripts.load(__file__, "record")
UNSENT = scripts.load(__file__, "unsent")
STATUS = scripts.load(__file__, "status")

#: Each enum member's value as a plain str, looked up per delivery (an enum's `.value` is a
#: property call; and `pack_args` takes its fast path only when every item is a plain str).
_VALUE: dict[StrEnum, str] = {
    m: str(m.value) for e in (DeliveryKind, Level, TargetKind, Outcome, DeliveryState,
                              DeliveryReport, CampaignState, GridState) for m in e}


class SendRecord(msgspec.Struct, frozen=True, gc=False):
    """The outcome of one send to store: the attempt and where the delivery goes next.

    Untracked by the cyclic collector, like the records it holds (see models.py)."""

    delivery: Delivery
    attempt: Attempt
    next_state: DeliveryState  # one of DeliveryState.RECORDED


#: What `dinfo` keeps of a delivery, in order ("tried" is missing where older versions wrote it).
INFO_FIELDS = ("target_id", "channel", "step", "kind", "alert_id", "level", "target_kind",
               "tried")


class Claimed(msgspec.Struct, frozen=True):
    """A delivery as its claims left it: how many provider calls were started for it."""

    delivery_id: str
    state: DeliveryState
    attempts: int  # claims that handed it to a send (a refused one was given back)
    lease_until: float  # while sending: when its lease runs out
    info: dict[str, str]  # INFO_FIELDS


class Deliveries:
    """The deliveries' part of the Store."""

    def __init__(self, redis: RedisClient) -> None:
        # redis-py's reply types are unions of every RESP shape; we decode replies ourselves.
        self._redis: Any = redis
        self._claim = CLAIM.bind(redis)
        self._record = RECORD.bind(redis)
        self._unsent = UNSENT.bind(redis)
        self._status = STATUS.bind(redis)

    async def claim(
        self, batches: Mapping[str, Sequence[Delivery]], now: float, lease_s: float,
        holder: str = "", gone: Collection[str] = (),
    ) -> dict[str, list[tuple[int, int]]]:
        """Claim deliveries for sending: one Lua call per campaign, concurrently. Each claim
        keeps its `holder` ("consumer#turn"); one held by a name in `gone` (a dead process's
        consumer name: any of its turns; or one failed turn) is expired at once instead of
        after its lease."""
        calls = []
        head = [str(now), str(lease_s), holder.replace("|", "/"), str(len(gone)),
                *(g.replace("|", "/") for g in gone)]
        for cid, batch in batches.items():
            ck = keys.campaign(cid)
            fallbacks = [d for d in batch if d.tried]
            args: list[str] = [*head, str(len(fallbacks))]
            for d in fallbacks:  # the twin: the step's delivery on the fallback's channel
                args += (d.id, delivery_id_for(cid, d.alert_id, d.target_id, d.channel, d.step),
                         f"{d.channel}|{d.step}")
            for d in batch:
                kind = _VALUE[d.kind]
                args += (d.id, kind, d.target_id,
                         f"{d.target_id}|{d.channel}|{d.step}|{kind}|{d.alert_id}|"
                         f"{_VALUE[d.level]}|{_VALUE[d.target_kind]}|{','.join(d.tried)}")
            calls.append(self._claim(ck, batch=pack_args(args)))
        replies = await _all(calls)
        out: dict[str, list[tuple[int, int]]] = {}
        for cid, flat in zip(batches, replies, strict=True):
            out[cid] = [(int(flat[i]), int(flat[i + 1])) for i in range(0, len(flat), 2)]
        return out

    async def record(self, outcomes: Sequence[SendRecord], now: float) -> None:
        """Store attempts and the deliveries' next states: one Lua call per campaign."""
        by_c: dict[str, list[SendRecord]] = {}
        for o in outcomes:
            by_c.setdefault(o.delivery.campaign_id, []).append(o)
        calls = []
        for cid, items in by_c.items():
            ck = keys.campaign(cid)
            args: list[str] = [str(now)]
            for o in items:
                a, d = o.attempt, o.delivery
                detail = a.error or a.provider_id or ""
                args += (d.id, d.target_id, d.channel, str(d.step), _VALUE[d.kind], str(a.n),
                         _VALUE[a.outcome], _VALUE[o.next_state], detail)
            calls.append(self._record(ck, batch=pack_args(args)))
        await _all(calls)

    async def unsent(self, items: Sequence[tuple[Delivery, int | None, bool, str]], now: float
                     ) -> list[bool]:
        """Deliveries whose provider call was not made (refused by its breaker): (delivery,
        the attempt number its claim gave or None, give up, why). A claimed one goes back to
        retry, one given up is dead (audited, no attempt); each only while it is as the
        caller left it (unsent.lua). Whether each applied, in order."""
        by_c: dict[str, list[int]] = {}
        for i, (d, _n, _g, _why) in enumerate(items):
            by_c.setdefault(d.campaign_id, []).append(i)
        out = [False] * len(items)
        for cid, idx in by_c.items():
            args: list[str] = [str(now)]
            for i in idx:
                d, n, give_up, why = items[i]
                args += (d.id, "" if n is None else str(n), "1" if give_up else "0",
                         d.target_id, d.channel, str(d.step), _VALUE[d.kind], why)
            got = await self._unsent(keys.campaign(cid), batch=pack_args(args))
            for i, ok in zip(idx, got, strict=True):
                out[i] = bool(int(ok))
        return out

    async def status(
        self, campaign_id: str, delivery_id: str, target_id: str, report: DeliveryReport,
        detail: str, now: float,
    ) -> int:
        """Apply a provider's report on a delivery: 1 applied, 2 it changed nothing (out of
        order), 0 no such delivery."""
        ck = keys.campaign(campaign_id)
        return int(await self._status(ck, now=now, delivery_id=delivery_id, target_id=target_id,
                                      report=_VALUE[report], detail=detail))

    async def sent_delivery(self, campaign_id: str, delivery_id: str,
                            now: float) -> Delivery | None:
        """What a delivery sent, as its `dinfo` keeps it: a Delivery without its address and
        text (`created_at` = `now`), for a provider's later report that re-plans it."""
        raw = text_of(await self._redis.hget(keys.campaign(campaign_id).dinfo, delivery_id))
        if not raw:
            return None
        info = dict(zip(INFO_FIELDS, raw.split("|"), strict=False))
        return Delivery(
            id=delivery_id, campaign_id=campaign_id, alert_id=info["alert_id"],
            target_id=info["target_id"], target_kind=TargetKind(info["target_kind"]),
            channel=info["channel"], step=int(info["step"]), kind=DeliveryKind(info["kind"]),
            level=Level(info["level"]), address="", text="", created_at=now,
            tried=tuple(filter(None, info.get("tried", "").split(","))))

    async def claimed(self, campaign_id: str) -> list[Claimed]:
        """Every delivery of a campaign that was claimed for sending, with what it sends."""
        ck = keys.campaign(campaign_id)
        pipe = self._redis.pipeline(transaction=False)
        pipe.hgetall(ck.dstate)
        pipe.hgetall(ck.dinfo)
        states, infos = await pipe.execute()
        out = []
        for k, v in infos.items():
            st = text_of(states.get(k, b"")).split("|")
            if len(st) < 3:
                continue
            out.append(Claimed(text_of(k), DeliveryState(st[0]), int(st[1] or 0), float(st[2] or 0),
                               dict(zip(INFO_FIELDS, text_of(v).split("|"), strict=False))))
        return out

    async def delivery_states(self, campaign_id: str) -> dict[str, DeliveryState]:
        raw = await self._redis.hgetall(keys.campaign(campaign_id).dstate)
        return {text_of(k): DeliveryState(text_of(v).split("|")[0]) for k, v in raw.items()}



async def _all(calls: Sequence[Awaitable[Any]]) -> list[Any]:
    """Await Redis calls: one at once (the usual case: a chunk of one campaign) or together.

    Script calls are not pipelined: a pipeline with scripts asks SCRIPT EXISTS every time."""
    if len(calls) == 1:
        return [await calls[0]]
    return list(await asyncio.gather(*calls))
