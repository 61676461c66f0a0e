"""Routes over several accounts: spread by rate, the next paths, what configuration says."""

from __future__ import annotations

import pytest

from warnbus.domain.models import Person, Role
from warnbus.errors import ConfigError
from warnbus.flow.routes import RoutedChannels, routed, spread
from warnbus.plugin import Address, ChannelInfo, Medium
from warnbus.runtime.config import LimitSettings, WindowSettings
from warnbus.state.numberlimits import PRESETS, NumberLimits, Window


def info(kind: str, medium: Medium, rate: float | None, key: str = "") -> ChannelInfo:
    address = {Medium.VOICE: Address.PHONE, Medium.SMS: Address.PHONE,
               Medium.WECOM: Address.WECOM, Medium.LOUDSPEAKER: Address.AREA}[medium]
    return ChannelInfo(kind=kind, provider=kind.split("-")[0], medium=medium, address=address,
                       breaker_key=key or kind, rate_per_s=rate)


INFOS = {
    "voice-aliyun": info("aliyun-voice", Medium.VOICE, 100.0, "aliyun:AK1@dyvms"),
    "voice-tencent": info("tencent-voice", Medium.VOICE, 5.0, "tencent:AKID@vms"),
    "sms": info("tencent-sms", Medium.SMS, 50.0, "tencent:AKID@sms"),
    "wecom": info("wecom", Medium.WECOM, 40.0),
    "loudspeaker": info("mqtt-loudspeaker", Medium.LOUDSPEAKER, None),
}
ROUTES = {"voice": ("voice-aliyun", "voice-tencent")}
FALLBACK = {"voice": "sms", "sms": "voice", "wecom": "sms"}


def persons(n: int) -> list[Person]:
    return [Person(f"p{i:04d}", f"P{i}", Role.PRIMARY, "430623101001", phone=f"+86138{i:08d}")
            for i in range(n)]


def test_a_first_wave_is_spread_by_rate_so_both_accounts_end_together() -> None:
    """777 primary officers over Aliyun 100/s and Tencent 5/s: 740 and 37, each ~7.4 s."""
    ch = RoutedChannels.build(INFOS, ROUTES, {})
    plan = routed(ch, ["voice", "sms"], persons(777))
    got = {name: len(group) for name, group in plan}
    assert got == {"voice-aliyun": 740, "voice-tencent": 37, "sms": 777}
    assert got["voice-aliyun"] / 100.0 == pytest.approx(got["voice-tencent"] / 5.0, abs=0.2)
    assert ch.first_round_s("voice", 777) == pytest.approx(777 / 105.0)
    ids = {p.id for _, g in plan[:2] for p in g}
    assert len(ids) == 777, "each person once, over one of the route's channels"
    # Deterministic, and not by position: Tencent's share is spread over the list.
    again = routed(ch, ["voice"], persons(777))
    assert [[p.id for p in g] for _, g in again] == [[p.id for p in g] for _, g in plan[:2]]
    tencent = sorted(int(p.id[1:]) for p in plan[1][1])
    assert tencent[-1] - tencent[0] > 500


def test_one_person_is_called_again_by_the_account_of_their_first_call() -> None:
    """A redial or an escalation plans one person: the account the wave gave them (the
    same caller number), whose per-number limits then count their calls."""
    ch = RoutedChannels.build(INFOS, ROUTES, {})
    everyone = persons(777)
    wave = {p.id: name for name, group in routed(ch, ["voice"], everyone) for p in group}
    alone = {p.id: routed(ch, ["voice"], [p])[0][0] for p in everyone}
    same = sum(1 for pid in wave if wave[pid] == alone[pid])
    assert same >= 760, "all but a few at the edge of the shares"
    assert sum(1 for v in alone.values() if v == "voice-tencent") in range(25, 50)
    assert [len(g) for g in spread([1.0, 1.0, 1.0], persons(10))] == [4, 3, 3]


def test_the_next_paths_after_a_limit() -> None:
    """The route's other account first, then the policy's fallback chain."""
    ch = RoutedChannels.build(INFOS, ROUTES, {})
    assert ch.next_paths("voice-aliyun", FALLBACK.get) == ["voice-tencent", "sms"]
    assert ch.next_paths("voice-tencent", FALLBACK.get) == ["voice-aliyun", "sms"]
    assert ch.next_paths("sms", FALLBACK.get) == ["voice-aliyun", "voice-tencent"]
    assert ch.next_paths("wecom", FALLBACK.get) == ["sms", "voice-aliyun", "voice-tencent"]


def test_accounts_get_their_providers_defaults_unless_configured() -> None:
    ch = RoutedChannels.build(INFOS, ROUTES, {})
    tencent = ch.account("voice-tencent")
    assert tencent is not None and tencent.limits == PRESETS["tencent-voice"]
    assert tencent.name == "tencent-voice@tencent:AKID@vms"
    assert ch.account("wecom") is None and ch.account("loudspeaker") is None
    own = RoutedChannels.build(INFOS, ROUTES, {
        "tc-voice": LimitSettings(channels=("voice-tencent",), preset="tencent-voice",
                                  per_day=5),  # a notice account: 5 a day
        "ali": LimitSettings(channels=("voice-aliyun",), preset="none"),
        "mine": LimitSettings(channels=("wecom",), windows=(WindowSettings(1, 60),)),
    })
    assert own.account("voice-tencent") is not None
    assert own.account("voice-tencent").limits == NumberLimits(  # type: ignore[union-attr]
        windows=(Window(1, 30), Window(2, 600)), per_day=5, per_night=1)
    assert own.account("voice-aliyun") is None, "preset none: no limits"
    assert own.account("wecom").limits.windows == (Window(1, 60),)  # type: ignore[union-attr]


@pytest.mark.parametrize(("routes", "limits", "says"), [
    ({"voice": ("voice-aliyun", "sms")}, {}, "routes.voice: its channels send by different"),
    ({"voice": ("voice-aliyun", "voice-aliyun")}, {}, "routes.voice: list its channels, each"),
    ({"spk": ("loudspeaker",)}, {}, "routes.spk: a route carries messages to persons"),
    ({}, {"acct": LimitSettings(channels=("voice-x",))}, "limits.acct: no channel 'voice-x'"),
])
def test_a_route_or_limit_that_cannot_work_is_a_config_error(
        routes: dict[str, tuple[str, ...]], limits: dict[str, LimitSettings], says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        RoutedChannels.build(INFOS, routes, limits)
