"""Escalation asks who is on duty at the moment of each step (issue 19, item 1), on an
injected clock: a shift change mid-campaign hands the next step to the new duty officer; an
override made meanwhile is used and audited, and every process sees it without a restart."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, datetime

import pytest_asyncio

from tests.engine.helpers import Harness, cap_alert, make_harness
from tests.registry.registry_kit import tiny_with_sites_and_rosters
from warnbus.domain.duty import BEIJING, ChangeKind, DutyChange, DutySource
from warnbus.domain.models import DeliveryKind, Level, Role
from warnbus.domain.steps import Step
from warnbus.flow.credentials import ENGINE
from warnbus.flow.doors import DoorLinks
from warnbus.flow.intake import accept
from warnbus.registry import Registry
from warnbus.state.duty import DutyDesk
from warnbus.web.console.actions import order_door_to_door

TOWN = "430623101000"
GRID = "430623101001-01"
#: Ten minutes before the 08:00 handover: the township step (red: at +840 s) falls after it.
START = datetime(2026, 7, 15, 7, 50, tzinfo=BEIJING).timestamp()
#: A polygon inside GRID only.
INSIDE = ((29.672, 112.502), (29.672, 112.51), (29.679, 112.51), (29.679, 112.502),
          (29.672, 112.502))
TOWNSHIP_STEP = Step.chain(3)  # CHAIN_ORDER: township duty


@pytest_asyncio.fixture
async def h(redis_url: str) -> AsyncIterator[Harness]:
    harness = await make_harness(redis_url, start=START)
    yield harness
    await harness.app.close()


async def _to_township_step(h: Harness) -> set[str]:
    """Start a red warning for GRID, nobody answers; walk the timeline to the township duty
    step; return who got that step's messages."""
    res = await accept(h.ctx, cap_alert(codes=(TOWN,), polygon=INSIDE), ENGINE)
    await h.drain()
    assert {g for g in await h.ctx.store.grids(res.campaign_id)} == {GRID}
    policy = h.ctx.rules.policy_for(Level.RED)
    times = (*policy.redial_times(), *policy.escalation_times()[:3])
    for offset in times:
        h.clock.set(START + offset)
        await h.drain()
    assert h.clock.now() >= datetime(2026, 7, 15, 8, 0, tzinfo=BEIJING).timestamp()
    return {d.target_id for d in h.sent() if d.kind is DeliveryKind.ESCALATION
            and d.step == int(TOWNSHIP_STEP)}


def _holders(h: Harness) -> tuple[str, str]:
    book = h.ctx.registry.duty
    night = book.shift(TOWN, Role.TOWNSHIP_DUTY, date(2026, 7, 14))
    day = book.shift(TOWN, Role.TOWNSHIP_DUTY, date(2026, 7, 15))
    assert night.source is day.source is DutySource.ROSTER
    assert night.person and day.person and night.person != day.person
    return night.person, day.person


async def test_a_shift_change_hands_the_next_step_to_the_new_officer(h: Harness) -> None:
    night, day = _holders(h)
    # At the first wave the night's officer was on duty ...
    assert h.ctx.registry.chain(GRID, at=START)[3] == night
    # ... the township step comes after 08:00: the day's officer gets it, not the night's.
    assert await _to_township_step(h) == {day}


async def test_an_override_is_used_and_audited(h: Harness) -> None:
    night, day = _holders(h)
    pool = sorted(p.id for p in h.ctx.registry.data.persons.values()
                  if p.role is Role.TOWNSHIP_DUTY and p.region == TOWN)
    stand_in = next(p for p in pool if p not in (night, day))
    # Another process's desk read the book before the change: it must see it all the same.
    other = DutyDesk(h.ctx.redis)
    assert (await other.book(h.ctx.registry.duty)).on_duty(TOWN, Role.TOWNSHIP_DUTY,
                                                             START + 900) == day
    change = DutyChange(TOWN, Role.TOWNSHIP_DUTY, "2026-07-15", stand_in, ChangeKind.OVERRIDE,
                        "alan", "病假，由同事替班", START + 60, was=day)
    assert h.ctx.duty is not None
    await h.ctx.duty.change(h.ctx.registry.duty, [change])
    assert (await other.book(h.ctx.registry.duty)).on_duty(TOWN, Role.TOWNSHIP_DUTY,
                                                             START + 900) == stand_in
    assert await _to_township_step(h) == {stand_in}
    history = await h.ctx.duty.history()
    assert [rec for rec, _ in history] == [change]
    assert (change.by, change.reason, change.was) == ("alan", "病假，由同事替班", day)


async def test_a_door_to_door_order_goes_to_who_is_on_duty_after_an_override(
        redis_url: str) -> None:
    # A village without a head: the order goes to the township duty officer of the moment,
    # the console's override included (not the registry's roster alone).
    data = tiny_with_sites_and_rosters()
    del data.persons["p3"], data.sites["hp1"]
    h = await make_harness(redis_url, start=START, registry=Registry(data))
    try:
        town = "430623101000"
        rostered = h.ctx.registry.duty.on_duty(town, Role.TOWNSHIP_DUTY, START)
        stand_in = next(p for p in ("p4", "p7") if p != rostered)
        res = await accept(h.ctx, cap_alert(codes=(town,)), ENGINE)
        await h.drain()
        assert h.ctx.duty is not None
        shift = h.ctx.registry.duty.shift(town, Role.TOWNSHIP_DUTY, date(2026, 7, 14))
        await h.ctx.duty.change(h.ctx.registry.duty, [DutyChange(
            town, Role.TOWNSHIP_DUTY, "2026-07-14", stand_in, ChangeKind.OVERRIDE, "alan",
            "临时替班", START, was=shift.person)])
        name = await order_door_to_door(h.ctx, res.campaign_id, "g1", "dora",
                                        DoorLinks(h.app.links.derive("door"), "http://test", 600))
        await h.drain()
        assert name == h.ctx.registry.data.persons[stand_in].name
        assert {d.target_id for d in h.sent() if d.step == int(Step.DOOR_TO_DOOR)} == {stand_in}
    finally:
        await h.app.close()
