"""Feedback after the ack: reports (到岗, 转移 N 人, 险情, 零报告), their deadlines and escalation.

A report comes after the person's confirmation. One that names its campaign (the ack page's
form, a key on the call, the WeCom card, the console) needs that confirmation; an SMS keyword
names none, and like an SMS "1" it goes to every active campaign where a message through
that channel had reached the sender: it confirms them there first (a report shows receipt as
well as "1" does), then is kept. The store keeps every report and the latest counts
(`FeedbackBook`), audited.

Deadlines are timers like a redial (`FeedbackDue`), scheduled when a confirmation is
recorded, from the campaign level's policy (`feedback_village_s`, `feedback_township_s`,
counted from the confirmation: nobody can report before they know). Before the deadline a
reminder goes to the person by the policy's `feedback_channels`; at the deadline a missing
report is marked overdue once and the next person is told: the township duty officer for a
village's person, the county duty officer for a township's (`on_duty`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from rules.wording import beijing
from warnbus.domain.duty import DutyBook
from warnbus.domain.feedback import FeedbackState, Report
from warnbus.domain.models import AckVia, Alert, DeliveryKind, Level, Person, RegionLevel, Role
from warnbus.domain.steps import Step
from warnbus.flow.durable import ReportOp, durably
from warnbus.flow.escalation import FeedbackDue, encode_timer
from warnbus.flow.person_policy import person_policy, policy_of_held
from warnbus.flow.planner import PlanContext, area_text, plan_persons
from warnbus.registry import Registry
from warnbus.runtime import metrics
from warnbus.runtime.context import Context
from warnbus.state.feedbackbook import DUPLICATE as FB_DUPLICATE
from warnbus.state.feedbackbook import NO_CAMPAIGN, NOT_CONFIRMED, NOT_TARGET, TOO_MANY
from warnbus.state.feedbackbook import RECORDED as FB_RECORDED

log = structlog.get_logger("warnbus.flow.feedback")

#: Who is told when a report of a person of this kind of region is overdue.
REPORTS_TO: dict[RegionLevel, tuple[Role, RegionLevel]] = {
    RegionLevel.VILLAGE: (Role.TOWNSHIP_DUTY, RegionLevel.TOWNSHIP),
    RegionLevel.TOWNSHIP: (Role.COUNTY_DUTY, RegionLevel.COUNTY),
}
HOW_TO_REPORT = "回复“到岗”“转移 人数”“险情 情况”或“零报告”"
#: A report journaled while Redis was unavailable (recorded when it returns).
JOURNALED = 4  # no code feedback.lua returns
# A duplicate (the same event again) is answered as the first was: recorded.
_STATUS = {FB_RECORDED: "recorded", FB_DUPLICATE: "recorded", JOURNALED: "journaled",
           NO_CAMPAIGN: "no_campaign", NOT_TARGET: "not_target",
           NOT_CONFIRMED: "not_confirmed", TOO_MANY: "too_many"}


@dataclass(frozen=True)
class FeedbackResult:
    code: int
    state: str = ""  # the campaign's state when recorded

    @property
    def recorded(self) -> bool:
        """Recorded (now, or before under the same event id)."""
        return self.code in (FB_RECORDED, FB_DUPLICATE)

    @property
    def kept(self) -> bool:
        """Recorded, or journaled (durable: recorded when Redis returns)."""
        return self.code in (FB_RECORDED, FB_DUPLICATE, JOURNALED)

    @property
    def duplicate(self) -> bool:
        """The same event was recorded before: nothing changed."""
        return self.code == FB_DUPLICATE

    @property
    def status(self) -> str:
        """What the person or provider is answered (a duplicate as the first was)."""
        return _STATUS[self.code]


def on_duty(reg: Registry, role: Role, region: str, at: float,
            duty: DutyBook | None = None) -> str | None:
    """Who serves `role` for `region` at `at` (a duty officer of a township or the county):
    whoever is on duty then by `duty` (the rosters with the console's changes) or the
    registry's own rosters, the fixed duty person where no roster exists."""
    return (duty or reg.duty).on_duty(region, role, at)


def region_level(reg: Registry, person: Person) -> RegionLevel | None:
    region = reg.data.regions.get(person.region)
    return region.level if region is not None else None


def reports_to(reg: Registry, person: Person, at: float,
               duty: DutyBook | None = None) -> str | None:
    """Who is told when the person's report is overdue (None: nobody above them here)."""
    level = region_level(reg, person)
    if level is None or level not in REPORTS_TO:
        return None
    role, above = REPORTS_TO[level]
    code: str | None = person.region
    while code is not None and code in reg.data.regions:
        region = reg.data.regions[code]
        if region.level is above:
            return on_duty(reg, role, code, at, duty)
        code = region.parent
    return None


async def record_feedback(ctx: Context, campaign_id: str, person_id: str, report: Report,
                          via: AckVia, *, by: str | None = None, event: str = ""
                          ) -> FeedbackResult:
    """Keep a report of a person who has confirmed (else `not_confirmed`, nothing kept),
    durably: in Redis, or (Redis unavailable) in the journal, replayed later (`journaled`).
    `event` identifies the request (a provider's call or message id, a form's token): the
    same event again changes nothing and is answered as recorded."""
    op = ReportOp(report, via, ctx.clock.now(), campaign_id=campaign_id, person_id=person_id,
                  by=by or "", event=event)
    result = await durably(ctx, op, lambda o: apply_report(ctx, o))
    if result is None:
        metrics.FEEDBACK.labels(via.value, report.kind.value, "journaled").inc()
        return FeedbackResult(JOURNALED)
    return result


async def apply_report(ctx: Context, op: ReportOp) -> FeedbackResult:
    """Write a report that names its campaign to Redis (raises when Redis is unavailable)."""
    code, state = await ctx.store.feedback.record(
        op.campaign_id, op.person_id, op.report, via=op.via.value, by=op.by, now=op.at,
        event=op.event)
    result = FeedbackResult(code, state)
    outcome = "duplicate" if result.duplicate else result.status
    metrics.FEEDBACK.labels(op.via.value, op.report.kind.value, outcome).inc()
    log.info("feedback", campaign_id=op.campaign_id, person=op.person_id, via=op.via.value,
             kind=op.report.kind.value, result=outcome, by=op.by)
    return result


async def schedule_feedback(ctx: Context, campaign_id: str, person_id: str, warning: Level,
                            held: Sequence[str], acked_at: float) -> None:
    """After a confirmation: the person's reminder and report deadline, if the `warning`
    level's policy and their region give them one. `held`: the grids and sites they answer
    for (the ack script's answer: no further read per confirmation)."""
    person = ctx.person(person_id)
    if person is None:
        return
    # The row the person is called on: the sites' for the people of sites only.
    policy = policy_of_held(ctx, warning, held)
    level = region_level(ctx.registry, person)
    deadline = policy.feedback_deadline_s(level) if level is not None else None
    if deadline is None:
        return
    timers = [(encode_timer(FeedbackDue(campaign_id, person_id, FeedbackDue.OVERDUE)),
               acked_at + deadline)]
    if policy.feedback_remind_s is not None:
        timers.append((encode_timer(FeedbackDue(campaign_id, person_id, FeedbackDue.REMIND)),
                       acked_at + deadline - policy.feedback_remind_s))
    await ctx.timers.schedule_joined(timers)


async def feedback_due(ctx: Context, timer: FeedbackDue) -> None:
    """A feedback timer is due: remind the person, or mark the report overdue and tell the
    next person. Nothing while the campaign is over, or once they have reported."""
    cid, pid = timer.campaign_id, timer.person_id
    meta = await ctx.store.meta(cid)
    now = ctx.clock.now()
    if meta is None or meta.over(now) or meta.level is None:
        return
    state = await ctx.store.feedback.latest_of(cid, pid)
    if state.n > 0:
        return
    reg = ctx.registry
    person = reg.data.persons.get(pid)
    ack = (await ctx.store.acks(cid)).get(pid) if person is not None else None
    if person is None or ack is None:
        return
    policy = await person_policy(ctx, cid, pid, meta.level)
    level = region_level(reg, person)
    deadline = policy.feedback_deadline_s(level) if level is not None else None
    if deadline is None:
        return
    due = beijing(datetime.fromtimestamp(ack.at + deadline, UTC))
    alert = await ctx.alert(cid, meta.latest_alert_id)
    if alert is None:
        return
    if timer.stage == FeedbackDue.REMIND:
        pctx = _plan_context(ctx, cid, meta.area, alert, meta.level, now)
        text = f"请于{due}前报送到岗、转移人数、险情或零报告：{HOW_TO_REPORT}。"
        deliveries = plan_persons(pctx, [person], policy.feedback_channels, Step.FEEDBACK_REMIND,
                                  DeliveryKind.FEEDBACK, extra={pid: {"feedback": text}},
                                  confirm=False)
        await ctx.lanes.enqueue(deliveries)
        log.info("feedback reminder", campaign_id=cid, person=pid, deliveries=len(deliveries))
        return
    to = reports_to(reg, person, now, await ctx.duty_book())
    if not await ctx.store.feedback.overdue(cid, pid, to or "", now):
        return  # the report came in meanwhile
    metrics.FEEDBACK_OVERDUE.inc()
    chief = reg.data.persons.get(to) if to else None
    log.warning("feedback overdue", campaign_id=cid, person=pid, told=to)
    if chief is None:
        return
    where = reg.data.regions.get(person.region)
    who = f"{where.name if where else person.region}{person.name}"
    text = (f"{who}未在{due}前报送反馈（到岗、转移人数、险情或零报告），请立即督促或代为报送"
            f"（电话{person.phone or '无'}）。")
    pctx = _plan_context(ctx, cid, meta.area, alert, meta.level, now, salt=pid)
    deliveries = plan_persons(pctx, [chief], policy.feedback_channels, Step.FEEDBACK_OVERDUE,
                              DeliveryKind.FEEDBACK, extra={chief.id: {"feedback": text}},
                              confirm=False)
    await ctx.lanes.enqueue(deliveries)


def _plan_context(ctx: Context, cid: str, area: str | None, alert: Alert, level: Level,
                  now: float, salt: str = "") -> PlanContext:
    return PlanContext(campaign_id=cid, alert=alert, info=alert.primary_info(), level=level,
                       area=area or area_text(alert), now=now, renderer=ctx.rules.renderer,
                       channels=ctx.channels, id_salt=salt)


def evacuated_total(latest: dict[str, FeedbackState]) -> int:
    """People moved to safety, as the latest reports say (each person's latest count)."""
    return sum(st.evacuated or 0 for st in latest.values())
