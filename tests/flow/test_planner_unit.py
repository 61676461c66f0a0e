"""The planner on its own (`warnbus.flow.planner`): pure, no Redis, the shipped rules.

What each level of the shipped policy plans for persons and for loudspeaker areas; that a
channel's address comes from its `ChannelInfo`, never from the name a deployment gave it;
which text each kind and medium gets; the steps of each kind of message and the deadlines of
the shipped timeline, walked through `escalation.decide` as the ticker does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pytest

from rules.hazards import HazardTable
from rules.policy import LevelPolicy, default_policy
from rules.templates import Templates
from warnbus.domain.models import (
    CHAIN_ORDER,
    Alert,
    Delivery,
    DeliveryKind,
    Level,
    Person,
    Role,
    TargetKind,
)
from warnbus.domain.states import GridState, GridView
from warnbus.domain.steps import Step
from warnbus.domain.targets import TargetRef
from warnbus.flow.escalation import Deadline, deadline_for, decide
from warnbus.flow.planner import (
    PlanContext,
    area_text,
    plan_areas,
    plan_persons,
)
from warnbus.ingest import parse_cap
from warnbus.plugin import MEDIUM_ADDRESS, ChannelInfo, Medium

CAP = Path(__file__).resolve().parents[1] / "fixtures" / "cap"
ALERT = parse_cap((CAP / "rainstorm-red.xml").read_bytes())
DRILL = parse_cap((CAP / "exercise-rainstorm.xml").read_bytes())
RENDERER = Templates.load(None, HazardTable.load())
POLICY = default_policy()
VILLAGES = ("430623101001", "430623101002", "430623102001")

FULL = Person("p_full", "张三", Role.PRIMARY, "430623101001", phone="+8613800000001",
              wecom="zhangsan")
PHONE = Person("p_phone", "李四", Role.PRIMARY, "430623101002", phone="+8613800000002")
WECOM = Person("p_wecom", "王五", Role.PRIMARY, "430623102001", wecom="wangwu")
NONE = Person("p_none", "赵六", Role.PRIMARY, "430623102001")
PERSONS = (FULL, PHONE, WECOM, NONE)


def infos(**media: Medium) -> dict[str, ChannelInfo]:
    """Channels by configured name, each what its medium says."""
    return {name: ChannelInfo(kind="test", provider="test", medium=m, address=MEDIUM_ADDRESS[m],
                              breaker_key=f"test:{name}")
            for name, m in media.items()}


SHIPPED = infos(voice=Medium.VOICE, sms=Medium.SMS, wecom=Medium.WECOM,
                loudspeaker=Medium.LOUDSPEAKER)


def context(
    level: Level = Level.RED, *, alert: Alert = ALERT,
    channels: Mapping[str, ChannelInfo] = SHIPPED,
    ack_url: Callable[[str], str | None] | None = lambda pid: f"https://x/ack/{pid}",
) -> PlanContext:
    return PlanContext(campaign_id="cp_unit", alert=alert, info=alert.primary_info(),
                       level=level, area=area_text(alert), now=1_000.0, renderer=RENDERER,
                       channels=channels, ack_url=ack_url)


def pairs(deliveries: Sequence[Delivery]) -> set[tuple[str, str]]:
    return {(d.target_id, d.channel) for d in deliveries}


# --------------------------------------------------------------------------- per level

#: (person, channel) of the first wave under the shipped policy: a person gets each of the
#: level's channels they have an address for (phone: voice and SMS; WeCom id: WeCom).
FIRST_WAVE = {
    Level.RED: {("p_full", "voice"), ("p_full", "sms"), ("p_full", "wecom"),
                ("p_phone", "voice"), ("p_phone", "sms"), ("p_wecom", "wecom")},
    Level.YELLOW: {("p_full", "sms"), ("p_full", "wecom"), ("p_phone", "sms"),
                   ("p_wecom", "wecom")},
    Level.BLUE: {("p_full", "wecom"), ("p_wecom", "wecom")},
}
FIRST_WAVE[Level.ORANGE] = FIRST_WAVE[Level.RED]
#: Loudspeaker channels of the first wave: red and orange only.
AREAS = {Level.RED: ("loudspeaker",), Level.ORANGE: ("loudspeaker",), Level.YELLOW: (),
         Level.BLUE: ()}


@pytest.mark.parametrize("level", list(Level))
def test_each_level_plans_its_channels_for_each_person(level: Level) -> None:
    policy = POLICY.for_level(level)
    got = plan_persons(context(level), PERSONS, policy.channels, Step.first_wave(),
                       DeliveryKind.WARNING)
    assert pairs(got) == FIRST_WAVE[level]
    assert len(got) == len(FIRST_WAVE[level])  # one delivery per person and channel
    by_id = {p.id: p for p in PERSONS}
    for d in got:
        person = by_id[d.target_id]
        want = person.wecom if d.channel == "wecom" else person.phone
        assert d.address == want
        assert (d.step, d.kind, d.level, d.target_kind) == (
            0, DeliveryKind.WARNING, level, TargetKind.PERSON)
        assert (d.campaign_id, d.alert_id, d.region) == ("cp_unit", ALERT.alert_id,
                                                         person.region)
        assert d.created_at == 1_000.0 and d.drill is False


@pytest.mark.parametrize("level", list(Level))
def test_each_level_plans_one_command_per_village_for_its_speakers(level: Level) -> None:
    policy = POLICY.for_level(level)
    assert policy.device_channels == AREAS[level]
    ctx = context(level)
    for channel in policy.device_channels:
        got = plan_areas(ctx, VILLAGES, channel, DeliveryKind.WARNING)
        assert [d.target_id for d in got] == [str(TargetRef.area(v)) for v in VILLAGES]
        for d, village in zip(got, VILLAGES, strict=True):
            assert (d.address, d.region, d.target_kind, d.step) == (
                village, village, TargetKind.DEVICE, 0)
            assert d.ack_url is None and d.level is level
            assert "紧急通知" in d.text  # the broadcast's text, not a person's
    # The person channels plan no area, and areas plan no person.
    for channel in policy.channels:
        assert plan_areas(ctx, VILLAGES, channel, DeliveryKind.WARNING) == []
    assert plan_persons(ctx, PERSONS, ["loudspeaker"], Step.first_wave(),
                        DeliveryKind.WARNING) == []


@pytest.mark.parametrize("kind", [DeliveryKind.UPDATE, DeliveryKind.CANCEL])
def test_speaker_commands_go_at_the_first_wave_step_whatever_the_kind(
    kind: DeliveryKind,
) -> None:
    (d,) = plan_areas(context(), VILLAGES[:1], "loudspeaker", kind)
    assert d.step == int(Step.first_wave()) and d.kind is kind
    # A new kind is a new delivery: the 解除 command is not the warning's id replayed.
    (warning,) = plan_areas(context(), VILLAGES[:1], "loudspeaker", DeliveryKind.WARNING)
    assert d.text != warning.text


# --------------------------------------------------------------------------- ChannelInfo


def test_the_address_comes_from_channel_info_never_from_the_name() -> None:
    """Issue 15: `[channels.wx] type = "wecom"` must get WeCom ids, and a channel that a
    deployment named "wecom" but that sends SMS must get phone numbers."""
    channels = infos(wx=Medium.WECOM, tel=Medium.VOICE, wecom=Medium.SMS,
                     bc=Medium.LOUDSPEAKER)
    ctx = context(channels=channels)
    got = {d.channel: d for d in plan_persons(ctx, [FULL], ["wx", "tel", "wecom", "bc"],
                                              Step.first_wave(), DeliveryKind.WARNING)}
    assert set(got) == {"wx", "tel", "wecom"}  # "bc" sends to areas
    assert got["wx"].address == "zhangsan"
    assert got["tel"].address == got["wecom"].address == "+8613800000001"
    # Each gets the texts of its medium: WeCom's card, the call's key press, the SMS reply.
    assert "请点击“确认收到”" in got["wx"].text
    assert "确认收到请按1" in got["tel"].text
    assert "回复1确认收到" in got["wecom"].text
    (area,) = plan_areas(ctx, VILLAGES[:1], "bc", DeliveryKind.WARNING)
    assert area.address == VILLAGES[0] and area.target_kind is TargetKind.DEVICE
    # A name this process has not configured is planned nowhere, the shipped names included.
    assert plan_persons(ctx, [FULL], ["sms", "voice"], Step.first_wave(),
                        DeliveryKind.WARNING) == []
    assert plan_areas(ctx, VILLAGES, "loudspeaker", DeliveryKind.WARNING) == []


def test_a_person_without_the_channels_address_gets_nothing_on_it() -> None:
    got = plan_persons(context(), [NONE, PHONE], ["voice", "sms", "wecom"], Step.first_wave(),
                       DeliveryKind.WARNING)
    assert pairs(got) == {("p_phone", "voice"), ("p_phone", "sms")}
    empty = Person("p_empty", "钱七", Role.PRIMARY, "430623101001", phone="", wecom="")
    assert plan_persons(context(), [empty], ["voice", "sms", "wecom"], Step.first_wave(),
                        DeliveryKind.WARNING) == []


# --------------------------------------------------------------------------- texts


@pytest.mark.parametrize(("kind", "channel", "extra", "marks"), [
    (DeliveryKind.WARNING, "sms", {}, ("红色预警", "回复1确认收到")),
    (DeliveryKind.WARNING, "voice", {}, ("影响区域", "确认收到请按1")),
    (DeliveryKind.WARNING, "wecom", {}, ("红色预警", "请点击“确认收到”")),
    (DeliveryKind.UPDATE, "sms", {}, ("红色预警更新",)),
    (DeliveryKind.UPDATE, "voice", {}, ("更新暴雨红色预警", "确认收到请按1")),
    (DeliveryKind.REDIAL, "sms", {"redial": "2"}, ("第2次提醒", "您尚未确认")),
    (DeliveryKind.REDIAL, "voice", {"redial": "3"}, ("第3次提醒",)),
    (DeliveryKind.ESCALATION, "wecom", {"grids": "一组、二组"}, ("叫应升级", "一组、二组")),
    (DeliveryKind.ESCALATION, "voice", {"grids": "一组"}, ("叫应升级提醒", "一组网格员未应答")),
    (DeliveryKind.CANCEL, "sms", {}, ("【预警解除】",)),
    (DeliveryKind.CANCEL, "voice", {}, ("预警解除",)),
    (DeliveryKind.NOTICE, "sms", {"speakers": "一号喇叭"}, ("一号喇叭未确认播放", "鸣锣吹哨")),
])
def test_each_kind_and_medium_has_its_text(
    kind: DeliveryKind, channel: str, extra: dict[str, str], marks: tuple[str, ...],
) -> None:
    (d,) = plan_persons(context(), [FULL], [channel], Step.first_wave(), kind,
                        extra={FULL.id: extra} if extra else None)
    assert d.kind is kind
    for mark in marks:
        assert mark in d.text, (mark, d.text)
    assert "{" not in d.text  # every placeholder filled


def test_one_signed_link_per_person_shown_where_it_can_be() -> None:
    signed: list[str] = []

    def link(pid: str) -> str:
        signed.append(pid)
        return f"https://x/ack/{pid}"

    got = plan_persons(context(ack_url=link), [FULL, PHONE], ["voice", "sms", "wecom"],
                       Step.first_wave(), DeliveryKind.WARNING)
    assert sorted(signed) == ["p_full", "p_phone"]  # signed once each, not per channel
    for d in got:
        assert d.ack_url == f"https://x/ack/{d.target_id}"
        # A call cannot show a link and a WeCom card has its button: a text shows the
        # person's own.
        assert (d.ack_url in d.text) is (d.channel == "sms"), d
    texts = {d.text for d in got if d.channel == "sms"}
    assert len(texts) == 2  # one rendering shared, each with its own link
    bare = plan_persons(context(ack_url=None), [FULL], ["sms"], Step.first_wave(),
                        DeliveryKind.WARNING)
    assert bare[0].ack_url is None and "/ack/" not in bare[0].text


def test_extra_values_give_only_their_person_a_text_of_their_own() -> None:
    got = plan_persons(context(ack_url=None), [FULL, PHONE], ["sms"], Step.chain(1),
                       DeliveryKind.ESCALATION, extra={"p_full": {"grids": "东风村一组"}})
    text = {d.target_id: d.text for d in got}
    assert "东风村一组" in text["p_full"] and "东风村一组" not in text["p_phone"]


def test_a_drill_is_marked_in_every_text_and_delivery() -> None:
    assert DRILL.is_drill
    ctx = context(alert=DRILL)
    got = plan_persons(ctx, [FULL], ["voice", "sms", "wecom"], Step.first_wave(),
                       DeliveryKind.WARNING)
    got += plan_areas(ctx, VILLAGES[:1], "loudspeaker", DeliveryKind.WARNING)
    assert len(got) == 4
    assert all(d.drill and "演练" in d.text for d in got)
    assert not any("演练" in d.text for d in plan_persons(
        context(), [FULL], ["sms"], Step.first_wave(), DeliveryKind.WARNING))


def test_every_delivery_carries_the_alerts_expiry() -> None:
    expires = ALERT.expires_at()
    assert expires is not None
    got = plan_persons(context(), [FULL], ["sms"], Step.first_wave(), DeliveryKind.WARNING)
    got += plan_areas(context(), VILLAGES[:1], "loudspeaker", DeliveryKind.WARNING)
    assert {d.expires_at for d in got} == {expires.timestamp()}


# --------------------------------------------------------------------------- steps and ids


@pytest.mark.parametrize("step", [Step.first_wave(), Step.redial(1), Step.redial(3),
                                  Step.chain(1), Step.chain(4), Step.NOTICE,
                                  Step.DOOR_TO_DOOR])
def test_a_person_is_planned_at_the_step_asked(step: Step) -> None:
    got = plan_persons(context(), [FULL], ["voice", "sms"], step, DeliveryKind.REDIAL,
                       extra={FULL.id: {"redial": "1"}})
    assert {d.step for d in got} == {int(step)}


def test_ids_are_the_same_when_planned_again_and_differ_by_target_channel_and_step() -> None:
    def wave(step: Step) -> list[Delivery]:
        return plan_persons(context(), PERSONS, ["voice", "sms", "wecom"], step,
                            DeliveryKind.WARNING)

    once, again = wave(Step.first_wave()), wave(Step.first_wave())
    assert [d.id for d in once] == [d.id for d in again]
    ids = [d.id for d in once] + [d.id for d in wave(Step.redial(1))]
    ids += [d.id for d in plan_areas(context(), VILLAGES, "loudspeaker", DeliveryKind.WARNING)]
    assert len(set(ids)) == len(ids)
    other = PlanContext(campaign_id="cp_other", alert=ALERT, info=ALERT.primary_info(),
                        level=Level.RED, area="", now=0.0, renderer=RENDERER, channels=SHIPPED)
    theirs = plan_persons(other, PERSONS, ["voice", "sms", "wecom"], Step.first_wave(),
                          DeliveryKind.WARNING)
    assert not {d.id for d in theirs} & set(ids)


# --------------------------------------------------------------------------- deadlines

#: The shipped timeline, seconds after the first wave (rules/policy.toml): what happens when.
TIMELINE = {
    Level.RED: [(180, "redial 1"), (280, "redial 2"), (380, "redial 3"), (480, "backup"),
                (660, "village_head"), (840, "township_duty"), (1020, "county_duty"),
                (1200, "unreached")],
    Level.ORANGE: [(300, "redial 1"), (600, "redial 2"), (900, "backup"),
                   (1200, "village_head"), (1500, "township_duty"), (1800, "unreached")],
    Level.YELLOW: [(1800, "redial 1"), (2700, "backup"), (4500, "village_head"),
                   (6300, "unreached")],
}
CHAIN = {role: f"{role.value}_1" for role in CHAIN_ORDER}


def walk(policy: LevelPolicy, t0: float) -> list[tuple[float, str]]:
    """What the ticker does to one unconfirmed grid, deadline after deadline."""
    people = tuple(CHAIN[role] for role in CHAIN_ORDER)
    grid = GridView("g1", GridState.CALLING, 0, people[0])
    step = Step.first_wave()
    due = deadline_for(policy, step, t0, t0)
    seen: list[tuple[float, str]] = []
    while len(seen) < 20:
        timer = Deadline.at("cp_unit", grid.holder, step)
        decision = decide(timer, acked=False, active=True, policy=policy, held=[grid],
                          chain=lambda _g: people)
        now = due
        if decision.redial is not None:
            seen.append((now - t0, f"redial {decision.redial}"))
            step = Step.redial(decision.redial)
            due = deadline_for(policy, step, t0, now)
            continue
        (adv,) = decision.advances
        if adv.new_holder is None:
            seen.append((now - t0, "unreached"))
            return seen
        seen.append((now - t0, CHAIN_ORDER[adv.to_level].value))
        grid = GridView("g1", GridState.ESCALATED, adv.to_level, adv.new_holder)
        step = Step.chain(adv.to_level)
        due = deadline_for(policy, step, now, now)
    raise AssertionError(f"no end after {seen}")


@pytest.mark.parametrize("level", [Level.RED, Level.ORANGE, Level.YELLOW])
def test_the_deadlines_walk_the_shipped_timeline(level: Level) -> None:
    policy = POLICY.for_level(level)
    got = walk(policy, t0=5_000.0)
    assert got == TIMELINE[level]
    # ... which is the timeline the policy declares (the console and the docs show it).
    redials = [t for t, what in got if what.startswith("redial")]
    chain = [t for t, what in got if what in {r.value for r in CHAIN_ORDER}]
    assert tuple(redials) == policy.redial_times()
    assert tuple(chain) == policy.escalation_times()
    assert got[-1] == (policy.unreached_after(), "unreached")


def test_blue_asks_no_confirmation_so_has_no_deadline() -> None:
    blue = POLICY.for_level(Level.BLUE)
    assert blue.ack_deadline_s is None and blue.unreached_after() is None
    assert blue.redial_times() == () and blue.escalation_times() == ()
