"""Accept an alert (dedup, thread, persist) and carry its campaign: start, update, cancel.

`accept` runs in the API process and returns once the alert and its work item are written
to Redis (the 202 promise). `Intake.handle` runs in a worker: it matches, plans and queues,
idempotently, so a crash anywhere makes the next worker redo the same work harmlessly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import msgspec
import structlog

from warnbus import keys, metrics
from warnbus.context import Context
from warnbus.errors import AuthError, IngestError
from warnbus.escalation import Deadline, Expiry, deadline_for, encode_timer
from warnbus.ingest.checks import OutsideRegistryError
from warnbus.models import (
    Alert,
    Area,
    CampaignState,
    Delivery,
    DeliveryKind,
    GridState,
    Info,
    Level,
    MsgType,
    Person,
    Target,
    TargetKind,
    alert_id_for,
)
from warnbus.planner import PlanContext, area_text, plan_areas, plan_persons
from warnbus.ports import LevelPolicyLike, MatchLike
from warnbus.queue import ensure_group
from warnbus.tasks import Bounded

log = structlog.get_logger("warnbus.intake")
PLAN_CHUNK = 1000  # targets planned and queued per step of a first wave
PLAN_AHEAD = 2  # chunks whose writes may be in flight while the next one is planned
_json = msgspec.json.Encoder()


@dataclass(frozen=True)
class AcceptWarning:
    """Something the sender of an accepted alert should fix (the 202 body's `warnings`)."""

    code: str  # area_outside_registry
    field: str  # the CAP path, e.g. info[0].area[2]
    message: str


@dataclass(frozen=True)
class Accepted:
    alert_id: str
    campaign_id: str
    targets: int
    created: bool  # False: the same alert was already accepted
    warnings: tuple[AcceptWarning, ...] = ()


@dataclass(frozen=True)
class Scope:
    """What a credential may publish: region code prefixes and CAP categories (empty = all)."""

    regions: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()


def campaign_id_for(alert: Alert) -> str:
    return "cp_" + alert_id_for(alert.sender, alert.identifier)[3:]


async def accept(ctx: Context, alert: Alert, scope: Scope = Scope()) -> Accepted:
    """Dedup, thread and persist an alert; return once it is durably queued for planning."""
    store = ctx.store
    aid = alert.alert_id
    known = await store.campaign_of(aid)
    if known:
        metrics.ALERTS.labels(alert.msg_type.value, "duplicate").inc()
        meta = await store.meta(known)
        return Accepted(aid, known, int(meta.get("targets", "0") or 0), created=False)
    if alert.msg_type in (MsgType.ACK, MsgType.ERROR):
        raise IngestError(
            "invalid", f"msgType {alert.msg_type.value} messages are not disseminated", "msgType"
        )
    _check_categories(alert, scope)
    expires = alert.expires_at()
    if alert.msg_type is not MsgType.CANCEL and expires and expires.timestamp() <= ctx.clock.now():
        # Accepting it would send nothing (the campaign would be over at once): say so.
        raise IngestError("invalid", f"the alert expired at {expires.isoformat()}, before it "
                          "was received", "info.expires")
    if alert.msg_type is MsgType.ALERT:
        cid = campaign_id_for(alert)
    else:
        cid = await _thread_of(ctx, alert)
    warnings: tuple[AcceptWarning, ...] = ()
    if alert.msg_type is MsgType.CANCEL:
        n_targets = len(await store.targets(cid))
    else:
        match = ctx.rules.match(alert)
        _check_regions(ctx, match.grids, scope)
        warnings = _check_registry(ctx, alert, match)
        n_targets = len(match.grids) and ctx.rules.count_targets(
            ctx.registry.data, match.grids, match.devices, drill=alert.is_drill)
    ck = keys.campaign(cid)
    pipe = ctx.redis.pipeline(transaction=False)
    pipe.hsetnx(ck.alerts, aid, _json.encode(alert))
    pipe.zadd(keys.CAMPAIGNS, {cid: ctx.clock.now()}, nx=True)
    if alert.msg_type is MsgType.ALERT:
        pipe.hsetnx(ck.meta, "targets", n_targets)
    pipe.xadd(keys.INBOX, {"a": aid, "c": cid})
    pipe.set(keys.alert_index(aid), cid, nx=True)
    pipe.zadd(keys.MESSAGES, {aid: ctx.clock.now()}, nx=True)
    await pipe.execute()
    metrics.ALERTS.labels(alert.msg_type.value, "accepted").inc()
    log.info("alert accepted", alert_id=aid, campaign_id=cid, msg_type=alert.msg_type.value,
             targets=n_targets)
    if warnings:
        log.warning("alert areas outside the registry", alert_id=aid, campaign_id=cid,
                    areas=[w.field for w in warnings],
                    detail="; ".join(w.message for w in warnings[:_LISTED]))
    return Accepted(aid, cid, n_targets, created=True, warnings=warnings)


def _check_categories(alert: Alert, scope: Scope) -> None:
    if not scope.categories:
        return
    allowed = set(scope.categories)
    for i, info in enumerate(alert.infos):
        for c in info.categories:
            if c.value not in allowed:
                raise AuthError(
                    f"info[{i}].category: this token may not publish category {c.value}",
                    forbidden=True,
                )


_LISTED = 10  # areas named in one message; the rest are counted


def _check_registry(ctx: Context, alert: Alert, match: MatchLike) -> tuple[AcceptWarning, ...]:
    """Refuse an Alert or Update none of whose areas holds a grid of the registry; warn of
    the areas that hold none when others do.

    An alert for other regions (a province feed's alert for another county) would reach
    nobody: accepting it with 0 targets hides the mistake of a wrong code. Refused (422
    `outside_registry`), the sender learns at once, and a feed poller records it as not ours.
    One mistyped area among good ones must not delay the warning to the others: accepted,
    with a warning naming it. "Holds a grid" is geography only: an area whose grids the
    hazard's tags exclude (地质灾害 → hazard points) is inside the registry.
    """
    areas = [(f"info[{i}].area[{j}]", info, area)
             for i, info in enumerate(alert.infos) for j, area in enumerate(info.areas)]
    if not areas:
        metrics.ALERTS.labels(alert.msg_type.value, "outside_registry").inc()
        raise OutsideRegistryError(
            "the alert names no area (no <area> in any <info>), so no grid of the registry "
            "lies in it; list the areas it warns", "info")
    if match.grids and len({area for _, _, area in areas}) == 1:
        return ()  # one area (in every language), and it matched
    inside: dict[Area, bool] = {}
    for _, info, area in areas:
        if area not in inside:
            inside[area] = bool(_where(ctx, alert, info, area).grids)
    outside = [(path, area) for path, _, area in areas if not inside[area]]
    if not outside:
        return ()
    if len(outside) == len(areas) and not match.grids and not match.devices:
        listed = "; ".join(f"{path} {_describe(area)}" for path, area in outside[:_LISTED])
        more = len(outside) - _LISTED
        tail = ""
        if alert.msg_type is MsgType.UPDATE:
            tail = ("; the campaign it updates carries on with its earlier areas (send a "
                    "Cancel to end it)")
        metrics.ALERTS.labels(alert.msg_type.value, "outside_registry").inc()
        log.info("alert outside the registry", alert_id=alert.alert_id,
                 msg_type=alert.msg_type.value, areas=len(outside))
        raise OutsideRegistryError(
            f"no grid of the registry lies in any area of this alert: {listed}"
            + (f"; and {more} more area(s)" if more > 0 else "")
            + f". This engine serves {_coverage(ctx)}{tail}", "info.area")
    return tuple(
        AcceptWarning("area_outside_registry", path,
                      f"{path}: no grid of the registry lies in this area: {_describe(area)}; "
                      "the alert goes to the grids of its other areas")
        for path, area in outside)


def _where(ctx: Context, alert: Alert, info: Info, area: Area) -> MatchLike:
    """The grids one area covers, whatever the hazard: matched as an info of no known hazard
    (no event, no event code), which carries no tag filter."""
    probe = msgspec.structs.replace(info, event="", event_codes=(), areas=(area,))
    return ctx.rules.match(msgspec.structs.replace(alert, infos=(probe,)))


def _describe(area: Area) -> str:
    """An area as a sender would recognise it: its codes or shapes, then its areaDesc."""
    parts = []
    if area.geocodes:
        values = [v for _, v in area.geocodes[:5]]
        more = ", …" if len(area.geocodes) > 5 else ""
        parts.append(f"geocode{'s' if len(area.geocodes) > 1 else ''} {', '.join(values)}{more}")
    for ring in area.polygons[:2]:
        lats, lons = [p[0] for p in ring], [p[1] for p in ring]
        parts.append(f"polygon lat {min(lats):g}..{max(lats):g}, lon {min(lons):g}..{max(lons):g}")
    for c in area.circles[:2]:
        parts.append(f"circle {c.lat:g},{c.lon:g} {c.radius_km:g} km")
    if not parts:
        parts.append("no polygon, circle or geocode")
    desc = " ".join(area.desc.split())
    desc = desc if len(desc) <= 40 else desc[:39] + "…"
    return f"{', '.join(parts)} ({desc})" if desc else ", ".join(parts)


def _coverage(ctx: Context) -> str:
    regions = ctx.registry.data.regions
    tops = sorted((r for r in regions.values() if r.parent is None or r.parent not in regions),
                  key=lambda r: r.code)
    if not tops:
        return "no region (the registry is empty)"
    named = ", ".join(f"{r.code} {r.name}" for r in tops[:3])
    return named + (f" and {len(tops) - 3} more regions" if len(tops) > 3 else "")


def _check_regions(ctx: Context, grids: Sequence[str], scope: Scope) -> None:
    if not scope.regions:
        return
    grid_map = ctx.registry.data.grids
    for g in grids:
        village = grid_map[g].village
        if not any(village.startswith(p) for p in scope.regions):
            raise AuthError(
                f"area: grid {g} ({village}) is outside this token's regions "
                f"{', '.join(scope.regions)}",
                forbidden=True,
            )


async def _thread_of(ctx: Context, alert: Alert) -> str:
    for ref in alert.references:
        cid = await ctx.store.campaign_of(alert_id_for(ref.sender, ref.identifier))
        if cid:
            if ref.sender != alert.sender:
                raise IngestError(
                    "invalid",
                    f"{alert.msg_type.value} of an alert of another sender ({ref.sender})",
                    "references",
                )
            return cid
    raise IngestError(
        "unknown_reference",
        "no earlier alert of this thread is known: "
        + " ".join(f"{r.sender},{r.identifier}" for r in alert.references),
        "references",
    )


# --------------------------------------------------------------------------- worker side


def _reach(targets: Sequence[Target], villages: Sequence[str], policy: LevelPolicyLike) -> int:
    """What the campaign sends to: persons, plus one area per village for loudspeakers."""
    persons = sum(1 for t in targets if t.kind is TargetKind.PERSON)
    return persons + (len(villages) if policy.device_channels else 0)


class Intake:
    """The planner role: reads the inbox and runs the campaign lifecycle."""

    plan_chunk = PLAN_CHUNK

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def setup(self) -> None:
        await ensure_group(self.ctx.redis, keys.INBOX)

    async def handle(self, campaign_id: str, alert_id: str) -> None:
        alert = await self.ctx.alert(campaign_id, alert_id)
        if alert is None:
            log.error("inbox item without alert", alert_id=alert_id, campaign_id=campaign_id)
            return
        structlog.contextvars.bind_contextvars(alert_id=alert_id, campaign_id=campaign_id)
        try:
            if alert.msg_type is MsgType.ALERT:
                await self._start(campaign_id, alert)
            elif alert.msg_type is MsgType.UPDATE:
                await self._update(campaign_id, alert)
            elif alert.msg_type is MsgType.CANCEL:
                await self._cancel(campaign_id, alert)
        finally:
            structlog.contextvars.unbind_contextvars("alert_id", "campaign_id")

    def _plan_ctx(self, cid: str, alert: Alert, level: Level) -> PlanContext:
        return PlanContext(
            campaign_id=cid,
            alert=alert,
            info=alert.primary_info(),
            level=level,
            area=area_text(alert),
            now=self.ctx.clock.now(),
            renderer=self.ctx.rules.renderer,
            ack_url=lambda pid: self.ctx.ack_url(cid, pid),
        )

    def _persons(self, targets: Sequence[Target]) -> list[Person]:
        out = []
        for t in targets:
            p = self.ctx.person(t.id) if t.kind is TargetKind.PERSON else None
            if p is not None:
                out.append(p)
        return out

    async def _first_wave(
        self, cid: str, alert: Alert, level: Level, policy: LevelPolicyLike,
        targets: Sequence[Target], villages: Sequence[str], kind: DeliveryKind,
    ) -> int:
        """Plan and queue a first wave `plan_chunk` targets at a time: dispatch starts after the
        first chunk, and the deliveries of a province never sit in memory all together.

        A chunk's writes to Redis run while the next chunk is planned (at most
        `PLAN_AHEAD` chunks in flight): planning waiting on each chunk's writes left the
        worker's core and Redis idle in turns. Every step is idempotent, so a worker that
        dies halfway leaves a replay to finish it. Loudspeaker areas go first: one command
        per village reaches a whole village."""
        ctx = self.ctx
        pctx = self._plan_ctx(cid, alert, level)
        n = 0
        for ch in policy.device_channels:
            area_wave = plan_areas(pctx, villages, ch, kind)
            await ctx.lanes.enqueue(area_wave)
            n += len(area_wave)
        writes = Bounded(PLAN_AHEAD)
        chunk = self.plan_chunk
        try:
            for i in range(0, len(targets), chunk):
                part = targets[i : i + chunk]
                persons = self._persons(part)
                deliveries = plan_persons(pctx, persons, policy.channels, 0, kind)
                n += len(deliveries)
                await writes.submit(self._queue_chunk(cid, policy, part, persons, deliveries))
            await writes.join()
        finally:
            writes.cancel()
        return n

    async def _queue_chunk(
        self, cid: str, policy: LevelPolicyLike, part: Sequence[Target], persons: Sequence[Person],
        deliveries: Sequence[Delivery],
    ) -> None:
        """Store one chunk's targets and grids, then queue its deliveries and deadlines."""
        ctx = self.ctx
        now = ctx.clock.now()
        # Targets and grids are stored before their deliveries are queued: a claim and
        # its record find the campaign state they move.
        firsts = await ctx.store.put_targets(cid, part, now)
        await ctx.store.init_grids(
            cid, [(g, t.id) for t in part if t.kind is TargetKind.PERSON for g in t.grids]
        )
        await ctx.lanes.enqueue(deliveries)
        if policy.ack_deadline_s:
            # Step 0's deadline is the person's first wave plus a fixed offset.
            offset = deadline_for(policy, 0, 0.0, now)
            await ctx.timers.schedule([
                (encode_timer(Deadline(cid, p.id, 0)), firsts.get(p.id, now) + offset)
                for p in persons
            ])

    async def _start(self, cid: str, alert: Alert) -> None:
        ctx = self.ctx
        level = ctx.rules.level_of(alert)
        policy = ctx.rules.policy_for(level)
        match = ctx.rules.match(alert)
        targets = ctx.rules.targets(ctx.registry.data, match.grids, match.devices,
                                    drill=alert.is_drill)
        now = ctx.clock.now()
        expires = alert.expires_at()
        info = alert.primary_info()
        await ctx.store.init_meta(cid, {
            "state": CampaignState.ACTIVE.value, "level": level.value, "root": alert.alert_id,
            "sender": alert.sender, "created_at": now, "t0": now, "drill": int(alert.is_drill),
            "expires_at": expires.timestamp() if expires else "",
            "event": info.event if info else "", "villages": ",".join(match.villages),
        })
        await ctx.store.set_meta(cid, {
            "latest": alert.alert_id, "headline": (info.headline or "") if info else "",
            "area": area_text(alert),
            "targets": _reach(targets, () if alert.is_drill else match.villages, policy),
        })
        await ctx.store.activate(cid, now)
        # Drills (演练) go to drill participants only, never to the public loudspeakers.
        areas = () if alert.is_drill else match.villages
        n = await self._first_wave(cid, alert, level, policy, targets, areas,
                                   DeliveryKind.WARNING)
        if expires:
            await ctx.timers.schedule([(encode_timer(Expiry(cid)), expires.timestamp())])
        log.info("campaign started", level=level.value, grids=len(match.grids),
                 targets=len(targets), deliveries=n)

    async def _update(self, cid: str, alert: Alert) -> None:
        ctx = self.ctx
        meta = await ctx.store.meta(cid)
        if meta.get("state") != CampaignState.ACTIVE.value:
            log.warning("update of a campaign that is over", state=meta.get("state"))
            return
        level = ctx.rules.level_of(alert)
        policy = ctx.rules.policy_for(level)
        match = ctx.rules.match(alert)
        new_targets = ctx.rules.targets(ctx.registry.data, match.grids, match.devices,
                                        drill=alert.is_drill)
        old = await ctx.store.targets(cid)
        grids_now = set(match.grids)
        old_grids = {g for t in old.values() for g in t.grids if t.role is not None and t.kind is
                     TargetKind.PERSON and t.role.value == "primary"}
        dropped_grids = sorted(old_grids - grids_now)
        keep_ids = {t.id for t in new_targets}
        dropped_people = [t.id for t in old.values()
                          if t.kind is TargetKind.PERSON and t.id not in keep_ids
                          and t.role is not None and t.role.value == "primary"]
        now = ctx.clock.now()
        await ctx.store.close_grids(cid, dropped_grids, GridState.DROPPED, dropped_people, now)
        expires = alert.expires_at()
        info = alert.primary_info()
        await ctx.store.set_meta(cid, {
            "latest": alert.alert_id, "level": level.value,
            "headline": (info.headline or "") if info else "", "area": area_text(alert),
            "expires_at": expires.timestamp() if expires else "",
            "villages": ",".join(match.villages),
            "targets": _reach(new_targets, match.villages, policy),
        })
        added = [t for t in new_targets if t.id not in old]
        kept = [t for t in new_targets if t.id in old]
        n = await self._first_wave(cid, alert, level, policy, added, (), DeliveryKind.WARNING)
        # Everyone still in the area gets the new content; those who confirmed already get it
        # on the notice channels only (they need not confirm again).
        pctx = self._plan_ctx(cid, alert, level)
        acks = await ctx.store.acks(cid)
        calling = self._persons([t for t in kept if t.id not in acks])
        confirmed = self._persons([t for t in kept if t.id in acks])
        deliveries = plan_persons(pctx, calling, policy.channels, 0, DeliveryKind.UPDATE)
        deliveries += plan_persons(pctx, confirmed, policy.cancel_channels, 0, DeliveryKind.UPDATE)
        for ch in policy.device_channels:
            if not alert.is_drill:
                deliveries += plan_areas(pctx, match.villages, ch, DeliveryKind.UPDATE)
        await ctx.lanes.enqueue(deliveries)
        if expires:
            await ctx.timers.schedule([(encode_timer(Expiry(cid)), expires.timestamp())])
        log.info("campaign updated", added=len(added), dropped=len(dropped_people),
                 dropped_grids=len(dropped_grids), deliveries=n + len(deliveries))

    async def _cancel(self, cid: str, alert: Alert) -> None:
        ctx = self.ctx
        now = ctx.clock.now()
        await ctx.store.finish(cid, CampaignState.CANCELLED.value, now)
        meta = await ctx.store.meta(cid)
        grids = await ctx.store.grids(cid)
        await ctx.store.close_grids(cid, list(grids), GridState.CANCELLED, [], now)
        await ctx.store.set_meta(cid, {"cancelled_by": alert.alert_id})
        level = Level(meta.get("level") or "blue")
        policy = ctx.rules.policy_for(level)
        # The 解除 notice goes to everyone who was reached (a message accepted or confirmed).
        states = await ctx.store.target_states(cid)
        reached = [pid for pid, st in states.items() if st in ("sent", "delivered", "acked")]
        pctx = self._plan_ctx(cid, alert, level)
        deliveries = plan_persons(pctx, self._persons(
            [Target(pid, TargetKind.PERSON, "") for pid in reached]), policy.cancel_channels, 0,
            DeliveryKind.CANCEL)
        villages = [v for v in meta.get("villages", "").split(",") if v]
        reached_areas = [v for v in villages if states.get(f"area:{v}") in ("sent", "delivered")]
        for ch in policy.device_channels:
            deliveries += plan_areas(pctx, reached_areas, ch, DeliveryKind.CANCEL)
        await ctx.lanes.enqueue(deliveries)
        log.info("campaign cancelled", reached=len(reached), notices=len(deliveries))
