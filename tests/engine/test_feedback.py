"""Feedback after the ack: reports kept once per path, deadlines, reminders and escalation."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from tests.engine.helpers import Harness, cap_alert, make_harness
from warnbus.domain.feedback import FeedbackKind, Report
from warnbus.domain.models import AckVia, DeliveryKind, Level, RegionLevel, Role
from warnbus.domain.steps import Step
from warnbus.flow.acks import record_ack
from warnbus.flow.credentials import ENGINE
from warnbus.flow.escalation import redial_offsets
from warnbus.flow.feedback import record_feedback, reports_to
from warnbus.flow.intake import accept


@pytest_asyncio.fixture
async def h(redis_url: str) -> AsyncIterator[Harness]:
    harness = await make_harness(redis_url)
    yield harness
    await harness.app.close()


async def _campaign(h: Harness) -> str:
    res = await accept(h.ctx, cap_alert(codes=("430623101000",)), ENGINE)
    await h.drain()
    return res.campaign_id


def _sms_person(h: Harness, cid: str, n: int = 0) -> str:
    ids = sorted({d.target_id for d in h.sent("sms") if d.campaign_id == cid})
    return ids[n]


def _feedback_sent(h: Harness, step: Step) -> list[tuple[str, str]]:
    return sorted((d.target_id, d.text) for d in h.sent()
                  if d.kind is DeliveryKind.FEEDBACK and d.step == int(step))


async def test_an_sms_report_confirms_and_is_kept_once(h: Harness) -> None:
    """"转移 35" from a reached officer who had not confirmed: confirmed and kept, with the
    history, the latest count and the audit; the same reply again (its id) changes nothing;
    a number no campaign reached keeps nothing."""
    cid = await _campaign(h)
    pid = _sms_person(h, cid)
    person = h.ctx.person(pid)
    assert person is not None and person.phone
    sink = h.app.engine.sink
    report = Report(FeedbackKind.EVACUATED, count=35)
    assert not await h.ctx.store.is_acked(cid, pid)
    assert await sink.report_from("sms", person.phone, AckVia.SMS, report, "SM1") == [cid]
    assert await sink.report_from("sms", person.phone, AckVia.SMS, report, "SM1") == []
    assert await h.ctx.store.is_acked(cid, pid)
    latest = await h.ctx.store.feedback.latest_of(cid, pid)
    assert (latest.n, latest.evacuated) == (1, 35)
    later = Report(FeedbackKind.EVACUATED, count=50)
    assert await sink.report_from("sms", person.phone, AckVia.SMS, later, "SM2") == [cid]
    assert (await h.ctx.store.feedback.latest_of(cid, pid)).evacuated == 50  # a total
    history = await h.ctx.store.feedback.history(cid)
    assert [(f.person_id, f.report.count, f.via) for f in history] == [
        (pid, 35, "sms"), (pid, 50, "sms")]
    audit = [e for e in await h.ctx.store.audit(cid) if e["ev"] == "feedback"]
    assert [(e["tg"], e["k"], e["n"]) for e in audit] == [(pid, "evacuated", "35"),
                                                         (pid, "evacuated", "50")]
    assert await sink.report_from("sms", "+8613900000000", AckVia.SMS, report, "SM3") == []


async def test_a_report_naming_its_campaign_needs_the_confirmation(h: Harness) -> None:
    """The console, the page, a key or a card name the campaign: a person who has not
    confirmed reports nothing (the form comes after the ack); who entered it is kept."""
    cid = await _campaign(h)
    pid = _sms_person(h, cid)
    zero = Report(FeedbackKind.ZERO)
    assert (await record_feedback(h.ctx, cid, pid, zero, AckVia.CONSOLE, by="lee")).status == (
        "not_confirmed")
    assert (await record_feedback(h.ctx, cid, "nobody", zero, AckVia.LINK)).status == "not_target"
    assert (await record_feedback(h.ctx, "cp_none", pid, zero, AckVia.LINK)).status == (
        "no_campaign")
    await record_ack(h.ctx, cid, pid, AckVia.LINK)
    assert (await record_feedback(h.ctx, cid, pid, zero, AckVia.CONSOLE, by="lee")).recorded
    assert [(f.via, f.by) for f in await h.ctx.store.feedback.history(cid)] == [("console", "lee")]


async def test_a_missing_village_report_is_reminded_then_told_to_the_township(h: Harness
                                                                              ) -> None:
    """Confirmed at t: a reminder at t + 45 min, at t + 1 h the report is overdue (audited
    once) and the township's duty officer is told, one notice per overdue person; a person
    who reported hears nothing more."""
    cid = await _campaign(h)
    policy = h.ctx.rules.policy_for(Level.RED)
    late, early = _sms_person(h, cid, 0), _sms_person(h, cid, 1)
    t = h.clock.now()
    for pid in (late, early):
        assert (await record_ack(h.ctx, cid, pid, AckVia.LINK)).recorded
    assert policy.feedback_village_s == 3600 and policy.feedback_remind_s == 900
    h.clock.set(t + 3600 - 900 - 1)
    await h.drain()
    assert _feedback_sent(h, Step.FEEDBACK_REMIND) == []
    await record_feedback(h.ctx, cid, early, Report(FeedbackKind.ARRIVED), AckVia.SMS)
    h.clock.set(t + 3600 - 900)
    await h.drain()
    reminded = _feedback_sent(h, Step.FEEDBACK_REMIND)
    assert {p for p, _ in reminded} == {late}
    assert all("转移" in text and "零报告" in text for _, text in reminded)
    h.clock.set(t + 3600)
    await h.drain()
    person = h.ctx.person(late)
    assert person is not None
    chief = reports_to(h.ctx.registry, person, h.clock.now())
    assert chief is not None and h.ctx.person(chief).role is Role.TOWNSHIP_DUTY
    told = _feedback_sent(h, Step.FEEDBACK_OVERDUE)
    assert told and {p for p, _ in told} == {chief}
    assert all(person.name in text for _, text in told)
    state = await h.ctx.store.feedback.latest_of(cid, late)
    assert (state.overdue, state.overdue_to) == (t + 3600, chief)
    assert (await h.ctx.store.feedback.latest_of(cid, early)).overdue is None
    overdue = [e for e in await h.ctx.store.audit(cid) if e["ev"] == "feedback-overdue"]
    assert [(e["tg"], e["to"]) for e in overdue] == [(late, chief)]


async def test_overdue_notices_about_two_people_to_one_officer_both_go(h: Harness) -> None:
    """Two officers of one township miss their reports: the township duty officer gets a
    notice about each (the ids are the person's own, not one swallowing the other)."""
    cid = await _campaign(h)
    a, b = _sms_person(h, cid, 0), _sms_person(h, cid, 1)
    t = h.clock.now()
    for pid in (a, b):
        await record_ack(h.ctx, cid, pid, AckVia.LINK)
    h.clock.set(t + 3600)
    await h.drain()
    told = _feedback_sent(h, Step.FEEDBACK_OVERDUE)
    pa, pb = h.ctx.person(a), h.ctx.person(b)
    assert pa is not None and pb is not None
    for p in (pa, pb):
        assert any(p.name in text for _, text in told), (p.name, told)


async def test_an_overdue_township_report_escalates_to_the_county(h: Harness) -> None:
    """A township duty officer reached by the escalation confirms and does not report within
    2 h: the county duty officer is told."""
    cid = await _campaign(h)
    reg = h.ctx.registry
    duty = next(p for p in reg.persons_by_role(Role.TOWNSHIP_DUTY)
                if p.region == "430623101000")
    assert reg.data.regions[duty.region].level is RegionLevel.TOWNSHIP
    policy = h.ctx.rules.policy_for(Level.RED)
    t0 = h.clock.now()
    times, _ = redial_offsets(policy)
    for offset in (*times, *policy.escalation_times()[:3]):  # up to the township's turn
        h.clock.set(t0 + offset)
        await h.drain()
    assert await h.ctx.store.target(cid, duty.id) is not None, "the chain reached the township"
    t = h.clock.now()
    assert (await record_ack(h.ctx, cid, duty.id, AckVia.DTMF)).recorded
    h.clock.set(t + 7200 - 1)
    await h.drain()
    assert duty.id not in {p for p, _ in _feedback_sent(h, Step.FEEDBACK_OVERDUE)}
    h.clock.set(t + 7200)
    await h.drain()
    county = reports_to(reg, duty, h.clock.now())
    assert county is not None and reg.data.persons[county].role is Role.COUNTY_DUTY
    told = [(p, text) for p, text in _feedback_sent(h, Step.FEEDBACK_OVERDUE) if duty.name in text]
    assert {p for p, _ in told} == {county}
    assert (await h.ctx.store.feedback.latest_of(cid, duty.id)).overdue_to == county


async def test_no_reminder_or_escalation_after_the_campaign_ends(h: Harness) -> None:
    cid = await _campaign(h)
    pid = _sms_person(h, cid)
    t = h.clock.now()
    await record_ack(h.ctx, cid, pid, AckVia.LINK)
    from warnbus.domain.states import CampaignState

    assert await h.ctx.store.finish(cid, CampaignState.CANCELLED, t + 60)
    h.clock.set(t + 3600)
    await h.drain()
    assert _feedback_sent(h, Step.FEEDBACK_REMIND) == _feedback_sent(h, Step.FEEDBACK_OVERDUE) == []


async def test_one_person_keeps_a_bounded_number_of_reports(h: Harness) -> None:
    """What a leaked link or a looping phone can append to a campaign is bounded."""
    from warnbus.state.feedbackbook import MOST_REPORTS

    cid = await _campaign(h)
    pid = _sms_person(h, cid)
    await record_ack(h.ctx, cid, pid, AckVia.LINK)
    zero = Report(FeedbackKind.ZERO)
    for _ in range(MOST_REPORTS):
        assert (await record_feedback(h.ctx, cid, pid, zero, AckVia.LINK)).recorded
    assert (await record_feedback(h.ctx, cid, pid, zero, AckVia.LINK)).status == "too_many"
    assert len(await h.ctx.store.feedback.history(cid)) == MOST_REPORTS
    assert (await h.ctx.store.feedback.latest_of(cid, pid)).n == MOST_REPORTS


async def test_an_overdue_report_with_nobody_on_duty_is_still_marked_and_audited(
        h: Harness) -> None:
    """A township with no duty officer: the report goes overdue all the same (on the board,
    audited with nobody told), and no notice is planned for anybody."""
    from warnbus.registry import Registry

    cid = await _campaign(h)
    pid = _sms_person(h, cid)
    person = h.ctx.person(pid)
    assert person is not None
    reg = h.ctx.registry
    chief = reports_to(reg, person, h.clock.now())
    assert chief is not None
    data = reg.data
    # Nobody left who could be on duty there: every duty officer of the chief's region.
    c = data.persons[chief]
    persons = {k: v for k, v in data.persons.items()
               if not (v.role is c.role and v.region == c.region)}
    h.ctx.use_registry(Registry(type(data)(data.regions, data.grids, persons, data.devices)),
                       h.ctx.rules, 99)
    assert reports_to(h.ctx.registry, person, h.clock.now()) is None
    t = h.clock.now()
    await record_ack(h.ctx, cid, pid, AckVia.LINK)
    h.clock.set(t + 3600)
    await h.drain()
    assert _feedback_sent(h, Step.FEEDBACK_OVERDUE) == []
    state = await h.ctx.store.feedback.latest_of(cid, pid)
    assert (state.overdue, state.overdue_to) == (t + 3600, "")
    overdue = [e for e in await h.ctx.store.audit(cid) if e["ev"] == "feedback-overdue"]
    assert [(e["tg"], e["to"]) for e in overdue] == [(pid, "")]
