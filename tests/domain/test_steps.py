"""Step: the delivery step codes in one place, with exactly the integers of before.

A delivery's id hashes its step, so the codes may never change: a replay after an upgrade must
find the deliveries queued before it. The planner's ids are checked against the plain formula
for every kind of step."""

from __future__ import annotations

from pathlib import Path

import pytest

from rules.hazards import HazardTable
from rules.templates import Templates
from tests.engine.test_ids_and_links import plain_id
from warnbus.domain.models import DeliveryKind, Level, Person, Role
from warnbus.domain.steps import Step
from warnbus.flow.planner import PlanContext, area_text, plan_areas, plan_persons
from warnbus.ingest import parse_cap
from warnbus.plugin import MEDIUM_ADDRESS, ChannelInfo, Medium

CAP = Path(__file__).resolve().parents[1] / "fixtures" / "cap" / "rainstorm-red.xml"


@pytest.mark.parametrize(("step", "code", "level", "redials"), [
    (Step.first_wave(), 0, 0, 0),
    (Step.redial(1), 1, 0, 1),
    (Step.redial(3), 3, 0, 3),
    (Step.chain(1), 10, 1, 0),
    (Step.chain(2), 20, 2, 0),
    (Step.chain(4), 40, 4, 0),
    (Step.NOTICE, 90, 9, 0),
    (Step.DOOR_TO_DOOR, 95, 9, 5),
])
def test_codes_are_those_of_before(step: Step, code: int, level: int, redials: int) -> None:
    assert int(step) == code and str(step) == str(code)
    assert (step.level, step.redials) == (level, redials)
    assert Step.of(code) == step
    assert step.in_chain is (code < 90)


def test_the_chain_level_zero_is_the_first_wave() -> None:
    assert Step.chain(0) == Step.first_wave()


@pytest.mark.parametrize("make", [
    lambda: Step.redial(0), lambda: Step.redial(10), lambda: Step.chain(-1),
    lambda: Step.chain(9), lambda: Step.of(-1), lambda: Step.of(100),
])
def test_what_is_no_step_is_refused(make) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError):
        make()


def test_the_planner_ids_hash_the_same_integers() -> None:
    alert = parse_cap(CAP.read_bytes())
    hazards = HazardTable.load()
    channels = {n: ChannelInfo(kind="test", provider="test", medium=m, address=MEDIUM_ADDRESS[m],
                               breaker_key=f"test:{n}")
                for n, m in (("sms", Medium.SMS), ("loudspeaker", Medium.LOUDSPEAKER))}
    ctx = PlanContext(campaign_id="cp_1", alert=alert, info=alert.primary_info(), level=Level.RED,
                      area=area_text(alert), now=0.0, renderer=Templates.load(None, hazards),
                      channels=channels)
    person = Person("p1", "张三", Role.PRIMARY, "430623101001", phone="+8613800000001")
    for step in (Step.first_wave(), Step.redial(2), Step.chain(3), Step.NOTICE,
                 Step.DOOR_TO_DOOR):
        (d,) = plan_persons(ctx, [person], ["sms"], step, DeliveryKind.REDIAL)
        assert d.step == int(step) and type(d.step) is int
        assert d.id == plain_id("cp_1", alert.alert_id, "p1", "sms", int(step))
    (area,) = plan_areas(ctx, ["430623101001"], "loudspeaker", DeliveryKind.WARNING)
    assert area.step == 0 and area.target_id == "area:430623101001"
    assert area.id == plain_id("cp_1", alert.alert_id, "area:430623101001", "loudspeaker", 0)
