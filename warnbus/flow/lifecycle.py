"""Carry a campaign through its life: start, update, cancel (the planner role).

`CampaignLifecycle.handle` runs in a worker for each item `intake.accept` left in the inbox:
it matches, plans and queues, idempotently, so a crash anywhere makes the next worker redo
the same work harmlessly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

import msgspec
import structlog

from warnbus.domain.models import (
    Alert,
    Delivery,
    DeliveryKind,
    Level,
    MsgType,
    Person,
    Role,
    Target,
    TargetKind,
)
from warnbus.domain.states import CampaignState, GridState
from warnbus.domain.steps import Step
from warnbus.flow.changes import (
    UpdatePlan,
    by_policy,
    message_meta,
    persons_of,
    plan_cancel,
    plan_context,
    plan_update,
    reach_count,
)
from warnbus.flow.escalation import (
    Deadline,
    Expiry,
    deadline_for,
    encode_timer,
    playout_checks,
)
from warnbus.flow.matching import match_alert
from warnbus.flow.planner import PlanContext, plan_areas, plan_persons
from warnbus.flow.ports import LevelPolicyLike
from warnbus.runtime.context import Context
from warnbus.runtime.tasks import Bounded

log = structlog.get_logger("warnbus.flow.lifecycle")
PLAN_CHUNK = 1000  # targets planned and queued per step of a first wave
PLAN_AHEAD = 2  # chunks whose writes may be in flight while the next one is planned


class CampaignLifecycle:
    """The planner role: reads the inbox and runs the campaign lifecycle."""

    plan_chunk = PLAN_CHUNK

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

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
        return plan_context(self.ctx, cid, alert, level, ack_url=self._ack_url(cid))

    def _ack_url(self, cid: str) -> Callable[[str], str | None]:
        return lambda pid: self.ctx.ack_url(cid, pid)

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
        if policy.ack_deadline_s:
            # Retried until the first deadline (the first redial), when that step takes over.
            first = deadline_for(policy, Step.first_wave(), 0.0, 0.0)
            pctx = replace(pctx, until=pctx.now + first)
        n = 0
        for ch in policy.device_channels:
            area_wave = plan_areas(pctx, villages, ch, kind)
            await ctx.lanes.enqueue(area_wave)
            await ctx.timers.schedule(playout_checks(area_wave, policy.speaker_deadline_s,
                                                     pctx.now))
            n += len(area_wave)
        writes = Bounded(PLAN_AHEAD)
        chunk = self.plan_chunk
        try:
            for i in range(0, len(targets), chunk):
                part = targets[i : i + chunk]
                persons = persons_of(ctx, part)
                deliveries = plan_persons(pctx, persons, policy.channels, Step.first_wave(), kind)
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
            cid, [(g, t.id) for t in part if t.kind is TargetKind.PERSON for g in t.grids], now
        )
        await ctx.lanes.enqueue(deliveries)
        await self._first_deadlines(cid, policy, [p.id for p in persons], firsts, now)

    async def _first_deadlines(self, cid: str, policy: LevelPolicyLike, persons: Sequence[str],
                               firsts: Mapping[str, float], now: float) -> None:
        """The first wave's deadlines: each person's first wave plus a fixed offset."""
        if policy.ack_deadline_s:
            offset = deadline_for(policy, Step.first_wave(), 0.0, now)
            step = int(Step.first_wave())  # once, not per person: a province has 74,000
            await self.ctx.timers.schedule([
                (encode_timer(Deadline(cid, p, step)), firsts.get(p, now) + offset)
                for p in persons])

    async def _waves(
        self, cid: str, alert: Alert, level: Level, targets: Sequence[Target],
        villages: Sequence[str], kind: DeliveryKind,
    ) -> int:
        """First waves: persons holding a grid (and the areas) on the level's policy, the
        people of sites only on the sites' policy (rules/sites.toml)."""
        site_only = [t for t in targets if t.role is Role.SITE]
        rest = [t for t in targets if t.role is not Role.SITE]
        n = await self._first_wave(cid, alert, level, self.ctx.rules.policy_for(level), rest,
                                   villages, kind)
        if site_only:
            n += await self._first_wave(cid, alert, level, self.ctx.rules.site_policy_for(level),
                                        site_only, (), kind)
        return n

    async def _start(self, cid: str, alert: Alert) -> None:
        ctx = self.ctx
        level = ctx.rules.level_of(alert)
        policy = ctx.rules.policy_for(level)
        match = await match_alert(ctx, alert)
        targets = ctx.rules.targets(ctx.registry.data, match.grids, match.devices,
                                    drill=alert.is_drill, sites=match.sites,
                                    hazards=match.hazards)
        now = ctx.clock.now()
        expires = alert.expires_at()
        info = alert.primary_info()
        msg = message_meta(alert, level, match.villages,
                           reach_count(targets, () if alert.is_drill else match.villages, policy))
        await ctx.store.start(cid, msg, root=alert.alert_id, sender=alert.sender,
                              event=info.event if info else "", drill=alert.is_drill, now=now)
        # Drills (演练) go to drill participants only, never to the public loudspeakers.
        areas = () if alert.is_drill else match.villages
        n = await self._waves(cid, alert, level, targets, areas, DeliveryKind.WARNING)
        if expires:
            await ctx.timers.schedule([(encode_timer(Expiry(cid)), expires.timestamp())])
        log.info("campaign started", level=level.value, grids=len(match.grids),
                 sites=len(match.sites), targets=len(targets), deliveries=n)

    async def _update(self, cid: str, alert: Alert) -> None:
        ctx = self.ctx
        meta = await ctx.store.meta(cid)
        if meta is None or meta.state is not CampaignState.ACTIVE:
            log.warning("update of a campaign that is over",
                        state=meta.state.value if meta else None)
            return
        plan = await plan_update(ctx, cid, alert, meta, ack_url=self._ack_url(cid))
        # Queued before the state moves on: the plan compares with the message it updates
        # and the grids still open, so an Update handled again after a crash finds its
        # deliveries queued already (the same ids: sent once) rather than a state with
        # nothing left to announce.
        await ctx.lanes.enqueue(plan.deliveries)
        now = ctx.clock.now()
        await ctx.timers.schedule(playout_checks(plan.deliveries, plan.policy.speaker_deadline_s,
                                                 now))
        await ctx.store.close_grids(cid, plan.dropped_grids, GridState.DROPPED,
                                    plan.dropped_people, now)
        if plan.reopened:
            # Their deadlines first: handled again after the grids reopened, the Update
            # finds these persons still in the area (no first wave, no deadline of theirs).
            returning = {pid for _, pid in plan.reopened}
            first = Step.first_wave()
            await ctx.timers.schedule([
                (encode_timer(Deadline(cid, t.id, int(first))),
                 deadline_for(plan.policy_of(t), first, now, now))
                for t in plan.added if t.id in returning and plan.policy_of(t).ack_deadline_s])
            await ctx.store.reopen_grids(cid, plan.reopened, now)
        await ctx.store.carry(cid, plan.message)
        n = await self._waves(cid, alert, plan.level, plan.added, (), DeliveryKind.WARNING)
        await self._grow_kept(cid, plan, now)
        expires = alert.expires_at()
        if expires:
            await ctx.timers.schedule([(encode_timer(Expiry(cid)), expires.timestamp())])
        log.info("campaign updated", added=len(plan.added), dropped=len(plan.dropped_people),
                 reopened=len(plan.reopened),
                 dropped_grids=len(plan.dropped_grids), lifted=plan.lifted_people,
                 lifted_villages=plan.lifted_villages, deliveries=n + len(plan.deliveries))

    async def _grow_kept(self, cid: str, plan: UpdatePlan, now: float) -> None:
        """Grids an Update adds to people it keeps: set up (confirmed at once for someone who
        confirmed), on the others' timeline (their first deadline; one past fires now)."""
        ctx = self.ctx
        old = await ctx.store.targets(cid)
        acked = await ctx.store.acks(cid)
        grown: list[tuple[Target, list[str]]] = []
        for t in plan.kept:
            known = old[t.id]
            new = [g for g in t.grids if g not in known.grids]
            if new and t.kind is TargetKind.PERSON:
                grown.append((msgspec.structs.replace(known, grids=(*known.grids, *new)), new))
        if not grown:
            return
        firsts = await ctx.store.put_targets(cid, [t for t, _new in grown], now)
        await ctx.store.init_grids(cid, [(g, t.id) for t, new in grown for g in new], now)
        waiting = [t for t, _new in grown if t.id not in acked]
        for policy, group in by_policy(waiting, plan.policy, plan.site_policy):
            await self._first_deadlines(cid, policy, [t.id for t in group], firsts, now)
        log.info("update adds grids to people it keeps", people=len(grown),
                 grids=sum(len(new) for _t, new in grown))

    async def _cancel(self, cid: str, alert: Alert) -> None:
        ctx = self.ctx
        now = ctx.clock.now()
        # One 解除 per thread: a later Cancel (another identifier, or a sender resending)
        # joins the thread but notifies nobody again; the same Cancel replayed after a
        # crash carries on where it stopped (the delivery ids are deterministic).
        first = await ctx.store.cancelled_by(cid, alert.alert_id)
        if first != alert.alert_id:
            log.info("cancel of a thread already cancelled: no notice again", cancelled_by=first)
            return
        await ctx.store.finish(cid, CampaignState.CANCELLED, now)
        meta = await ctx.store.meta(cid)
        if meta is None:
            log.error("cancel of a campaign that has no state", campaign_id=cid)
            return
        grids = await ctx.store.grids(cid)
        await ctx.store.close_grids(cid, list(grids), GridState.CANCELLED, [], now)
        deliveries = await plan_cancel(ctx, cid, alert, meta, ack_url=self._ack_url(cid))
        await ctx.lanes.enqueue(deliveries)
        log.info("campaign cancelled", notices=len(deliveries))
