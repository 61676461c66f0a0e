"""The timer role: promote due timers, then act on each: escalate, retry, expire.

Escalation decisions come from the pure `escalation.decide`; their deliveries are planned by
the planner and queued on the lanes, the same path as the first wave.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Sequence
from dataclasses import replace

import structlog

from warnbus.domain.duty import DutyBook
from warnbus.domain.models import (
    CHAIN_ORDER,
    DeliveryKind,
    Role,
    Target,
    TargetKind,
)
from warnbus.domain.states import CampaignState, TargetState
from warnbus.domain.steps import Step
from warnbus.domain.targets import device_id
from warnbus.flow.chains import Chains, decide_held
from warnbus.flow.durable import outage
from warnbus.flow.escalation import (
    Deadline,
    Expiry,
    FeedbackDue,
    Retry,
    SpeakerCheck,
    deadline_for,
    decode_timer,
    encode_timer,
)
from warnbus.flow.feedback import feedback_due
from warnbus.flow.planner import PlanContext, area_text, plan_persons
from warnbus.flow.ports import LevelPolicyLike
from warnbus.flow.repair import check_grids
from warnbus.registry import Registry
from warnbus.runtime.context import Context
from warnbus.state.queue import TimerEntry
from warnbus.state.store import CLOSED_AT_ONCE, MOVED

log = structlog.get_logger("warnbus.timers")


def _chains(reg: Registry, policy: LevelPolicyLike, site_policy: LevelPolicyLike, at: float,
            book: DutyBook) -> Chains:
    """The grids' and sites' chains with whoever is on duty at `at`. A grid or site removed
    from the registry while a campaign holds it has nobody left to call, so its 叫应 goes on
    the 未叫醒 list (people act on it) instead of failing (a removed site reads as a grid)."""
    def grid_chain(grid_id: str) -> tuple[str | None, ...]:
        if grid_id not in reg.data.grids:
            return (None,) * len(CHAIN_ORDER)
        return reg.chain(grid_id, at=at, duty=book)
    return Chains(policy, site_policy, grid_chain,
                  lambda s: reg.site_chain(s, at=at, duty=book), reg.is_site)


class Ticker:
    def __init__(self, ctx: Context, consumer: str) -> None:
        self.ctx = ctx
        self.consumer = consumer
        self._grids_checked = -math.inf  # time.monotonic() of the last grid check
        # A tick failed (Redis went away): what it had read waits in this consumer's pending
        # list, unhandled, until the next tick handles it.
        self._unhandled = False

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.tick(block_ms=int(self.ctx.settings.engine.tick_s * 1000))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("timer loop error")
                await asyncio.sleep(1.0)

    async def tick(self, block_ms: int = 0) -> int:
        """Promote what is due now and handle every due timer; return how many. After a
        failed tick, first what it had read (its redials and escalations), once: else they
        waited for the sweep's lease, half a minute after Redis came back."""
        try:
            return await self._tick(block_ms)
        except BaseException:
            self._unhandled = True
            raise

    async def _tick(self, block_ms: int) -> int:
        ctx = self.ctx
        n = 0
        if self._unhandled:
            after = b"0"
            while entries := await ctx.timers.read_due(self.consumer, 200, 0, after=after):
                await self.handle(entries)
                n += len(entries)
                after = entries[-1].entry_id  # one that failed again is left to the sweep
            self._unhandled = False
        while await ctx.timers.promote(ctx.clock.frame()) >= 1000:
            pass
        entries = await ctx.timers.read_due(self.consumer, 200, block_ms)
        await self.handle(entries)
        return n + len(entries)

    async def sweep(self) -> int:
        """Take over due timers of a dead process; now and then, check the open grids."""
        cfg = self.ctx.settings.engine
        idle_ms = int(cfg.lease_s * 1000 / cfg.clock_factor)
        entries = await self.ctx.timers.reclaim(self.consumer, max(idle_ms, 1000))
        await self.handle(entries)
        if time.monotonic() - self._grids_checked >= cfg.grid_check_s:
            self._grids_checked = time.monotonic()
            await check_grids(self.ctx)
        return len(entries)

    async def handle(self, entries: Sequence[TimerEntry]) -> None:
        """Handle each timer and acknowledge those handled. Redis away stops the batch
        (nothing acknowledged: handled again, idempotently); any other failure, an error
        Redis answers a script with included, is one timer's: logged and left pending for
        the sweep, the others go on (it would fail the same way again at once)."""
        handled: list[TimerEntry] = []
        for e in entries:
            try:
                await self._handle_one(e)
            except Exception as err:
                if outage(err):
                    raise
                log.exception("timer failed; left for the sweep", entry=e.entry_id)
                continue
            handled.append(e)
        await self.ctx.timers.done(handled)

    async def _handle_one(self, e: TimerEntry) -> None:
        item = decode_timer(e.member)
        if isinstance(item, Deadline):
            await self.deadline(item)
        elif isinstance(item, Retry):
            await self.ctx.lanes.enqueue([item.delivery])
        elif isinstance(item, SpeakerCheck):
            await self.speakers(item)
        elif isinstance(item, FeedbackDue):
            await feedback_due(self.ctx, item)
        elif isinstance(item, Expiry) and await self.ctx.store.finish(
            item.campaign_id, CampaignState.EXPIRED, self.ctx.clock.now()
        ):
            log.info("campaign expired", campaign_id=item.campaign_id)

    async def deadline(self, timer: Deadline) -> None:
        ctx = self.ctx
        cid, pid = timer.campaign_id, timer.person_id
        meta = await ctx.store.meta(cid)
        if meta is None:
            log.error("deadline of a campaign that has no state", campaign_id=cid)
            return
        now = ctx.clock.now()
        active = not meta.over(now)
        level = meta.require_level()
        held = await ctx.store.held(cid, pid)
        reg = ctx.registry  # one view: a registry change may be applied while this runs
        acked = await ctx.store.is_acked(cid, pid)
        # Who is on duty is asked now, at the moment of this step (rosters, console changes);
        # a confirmed call or an ended campaign goes along no chain (no read).
        book = await ctx.duty_book() if active and not acked else reg.duty
        chains = _chains(reg, ctx.rules.policy_for(level), ctx.rules.site_policy_for(level),
                         now, book)
        decision = decide_held(timer, acked=acked, active=active, held=held, chains=chains)
        # The policy of this person's own deadline: the grids' when they answer for a grid.
        policy = chains.policy_of([g.grid_id for g in held if g.holder == pid and g.level == 0])
        if decision.redial is not None and reg.data.persons.get(pid) is None:
            # Removed from the registry while being called: no number to redial, so their
            # grids move up the chain now instead of waiting for redials that cannot be made.
            last = Deadline.at(cid, pid, Step.of(policy.redials))  # its last redial (0: none)
            decision = decide_held(last, acked=acked, active=active, held=held, chains=chains)
        if decision.redial is None and not decision.advances:
            return
        alert = await ctx.alert(cid, meta.latest_alert_id)
        if alert is None:
            log.error("campaign without its alert", campaign_id=cid)
            return
        pctx = PlanContext(
            campaign_id=cid, alert=alert, info=alert.primary_info(), level=level,
            area=meta.area or area_text(alert), now=now, renderer=ctx.rules.renderer,
            channels=ctx.channels, ack_url=lambda p: ctx.ack_url(cid, p),
        )
        if decision.redial is not None:
            step = Step.redial(decision.redial)
            t0 = await ctx.store.first_wave_at(cid, pid) or meta.t0 or now
            due = deadline_for(policy, step, t0, now)
            # Retried until the next step's deadline, when that step takes over.
            deliveries = plan_persons(replace(pctx, until=due), [reg.data.persons[pid]],
                                      policy.redial_channels, step, DeliveryKind.REDIAL,
                                      extra={pid: {"redial": str(decision.redial)}})
            await ctx.lanes.enqueue(deliveries)
            await ctx.timers.schedule([(encode_timer(Deadline.at(cid, pid, step)), due)])
            log.info("redial", person=pid, redial=decision.redial, deliveries=len(deliveries))
            return
        quads = [(a.grid_id, a.from_level, a.to_level, a.new_holder or "")
                 for a in decision.advances]
        done = await ctx.store.advance(cid, pid, quads, now)
        moved: dict[tuple[str, int], list[str]] = {}
        unreached = closed = 0
        for a, code in zip(decision.advances, done, strict=True):
            if code == CLOSED_AT_ONCE:
                closed += 1  # the new holder had confirmed already: nothing to send
            elif code != MOVED:
                continue
            elif a.new_holder is None:
                unreached += 1
            else:
                moved.setdefault((a.new_holder, a.to_level), []).append(a.grid_id)
        for (holder, lv), grids in moved.items():
            chained = reg.data.persons.get(holder)
            if chained is None:
                continue
            step = Step.chain(lv)
            policy = chains.policy_of(grids)
            names = "、".join(reg.name_of(g) for g in grids[:10]) + (
                f"等{len(grids)}个网格" if len(grids) > 10 else "")
            # A chain person may already answer for other grids of this campaign: keep them.
            known = await ctx.store.target(cid, holder)
            answers_for = tuple(dict.fromkeys((*(known.grids if known else ()), *grids)))
            await ctx.store.put_targets(cid, [Target(holder, TargetKind.PERSON, chained.region,
                                                     chains.role_at(grids[0], lv), answers_for)],
                                        now)
            due = deadline_for(policy, step, now, now)
            deliveries = plan_persons(replace(pctx, until=due), [chained],
                                      policy.escalation_channels, step, DeliveryKind.ESCALATION,
                                      extra={holder: {"grids": names}})
            await ctx.lanes.enqueue(deliveries)
            await ctx.timers.schedule([(encode_timer(Deadline.at(cid, holder, step)), due)])
        log.info("escalated", person=pid, moved=sum(len(g) for g in moved.values()),
                 unreached=unreached, closed_by_confirmed=closed)

    async def speakers(self, check: SpeakerCheck) -> None:
        """Speakers of an area that did not report playout in time: notify their officers."""
        ctx = self.ctx
        cid = check.campaign_id
        meta = await ctx.store.meta(cid)
        if meta is None or meta.state is not CampaignState.ACTIVE:
            return
        reg = ctx.registry
        devices = [reg.data.devices[d] for d in reg.devices_of_village(check.village)]
        if not devices:
            return
        states = await ctx.store.target_states_of(cid, [device_id(d.id) for d in devices])
        silent = [d for d, st in zip(devices, states, strict=True)
                  if st is not TargetState.DELIVERED]
        if not silent:
            return
        heads = [p.id for p in reg.persons_by_role(Role.VILLAGE_HEAD) if p.region == check.village]
        by_officer: dict[str, list[str]] = {}
        for d in silent:
            grid = reg.data.grids.get(d.grid) if d.grid else None
            officer = grid.primary if grid else (heads[0] if heads else None)
            if officer:
                by_officer.setdefault(officer, []).append(d.name or d.id)
        alert = await ctx.alert(cid, check.alert_id)
        level = meta.require_level()
        if alert is None or not by_officer:
            return
        policy = ctx.rules.policy_for(level)
        pctx = PlanContext(
            campaign_id=cid, alert=alert, info=alert.primary_info(), level=level,
            area=meta.area or area_text(alert), now=ctx.clock.now(),
            renderer=ctx.rules.renderer, channels=ctx.channels,
        )
        persons = [p for p in (ctx.person(pid) for pid in by_officer) if p is not None]
        extra = {pid: {"speakers": "、".join(names)} for pid, names in by_officer.items()}
        deliveries = plan_persons(pctx, persons, policy.cancel_channels, Step.NOTICE,
                                  DeliveryKind.NOTICE, extra=extra)
        await ctx.lanes.enqueue(deliveries)
        log.warning("speakers did not confirm playout", campaign_id=cid, village=check.village,
                    silent=[d.id for d in silent], notified=len(persons))
