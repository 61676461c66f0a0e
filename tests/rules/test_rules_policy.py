"""The 叫应 policy (policy.toml): values of DESIGN section 6, timeline, strict loading."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from rules.policy import LevelPolicy, Policy, default_policy
from warnbus.domain.models import Level, Role
from warnbus.errors import ConfigError

BUNDLED = (Path(__import__("rules").__file__).parent / "policy.toml").read_text("utf-8")
R = Role


@pytest.mark.parametrize(("level", "channels", "devices", "deadline", "redials", "chain"), [
    (Level.RED, ("voice", "sms", "wecom"), ("loudspeaker",), 180, 3,
     (R.BACKUP, R.VILLAGE_HEAD, R.TOWNSHIP_DUTY, R.COUNTY_DUTY)),
    (Level.ORANGE, ("voice", "sms", "wecom"), ("loudspeaker",), 300, 2,
     (R.BACKUP, R.VILLAGE_HEAD, R.TOWNSHIP_DUTY)),
    (Level.YELLOW, ("sms", "wecom"), (), 1800, 1, (R.BACKUP, R.VILLAGE_HEAD)),
    (Level.BLUE, ("wecom",), (), None, 0, ()),
])
def test_design_defaults(level: Level, channels: tuple[str, ...], devices: tuple[str, ...],
                         deadline: float | None, redials: int, chain: tuple[Role, ...]) -> None:
    p = default_policy().for_level(level)
    assert (p.channels, p.device_channels, p.ack_deadline_s, p.redials, p.chain) == (
        channels, devices, deadline, redials, chain)
    assert set(p.cancel_channels) <= {"sms", "wecom"} and p.cancel_channels


def test_red_timeline() -> None:
    red = default_policy().for_level(Level.RED)
    assert red.redial_times() == (180.0, 280.0, 380.0)  # 3 redials within 5 minutes
    assert red.escalation_times() == (480.0, 660.0, 840.0, 1020.0)
    assert red.unreached_after() == 1200.0
    assert red.redial_channels == ("voice", "sms") and red.speaker_deadline_s == 180


@pytest.mark.parametrize(("level", "redials", "escalations"), [
    (Level.ORANGE, (300.0, 600.0), (900.0, 1200.0, 1500.0)),
    (Level.YELLOW, (1800.0,), (2700.0, 4500.0)),
    (Level.BLUE, (), ()),
])
def test_timelines(level: Level, redials: tuple[float, ...],
                   escalations: tuple[float, ...]) -> None:
    p = default_policy().for_level(level)
    assert p.redial_times() == redials
    assert p.escalation_times() == escalations
    if p.ack_deadline_s is not None:
        assert all(t < p.ack_deadline_s + p.redial_window_s for t in redials)


def test_blue_needs_no_confirmation() -> None:
    blue = default_policy().for_level(Level.BLUE)
    assert blue.ack_deadline_s is None and blue.unreached_after() is None and blue.step_s is None


def test_redial_rule_without_window_or_deadline() -> None:
    assert LevelPolicy(channels=("sms",), ack_deadline_s=60, redials=2,
                       redial_window_s=60).redial_times() == (60.0, 90.0)
    assert LevelPolicy(channels=("sms",), redials=2).redial_times() == ()
    # step_deadline_s defaults to the ack deadline; no redials: the chain starts at it.
    p = LevelPolicy(channels=("sms",), ack_deadline_s=100, chain=(Role.BACKUP, Role.VILLAGE_HEAD))
    assert p.escalation_times() == (100.0, 200.0) and p.unreached_after() == 300.0


def test_level_policy_is_frozen() -> None:
    with pytest.raises(AttributeError):
        default_policy().for_level(Level.RED).redials = 9  # type: ignore[misc]


@pytest.mark.parametrize(("channel", "tried", "expected"), [
    ("wecom", (), "sms"),
    ("voice", (), "sms"),
    ("sms", (), "voice"),
    ("wecom", ("sms",), "voice"),
    ("sms", ("voice",), None),
    ("loudspeaker", (), None),
])
def test_fallback(channel: str, tried: tuple[str, ...], expected: str | None) -> None:
    assert default_policy().fallback_for(channel, tried) == expected


def _load(tmp_path: Path, text: str) -> Policy:
    path = tmp_path / "policy.toml"
    path.write_text(text, encoding="utf-8")
    return Policy.load(path)


@pytest.mark.parametrize(("old", "new", "message"), [
    ("[levels.red]\n", "[levels.red]\nack_deadline = 5\n", "ack_deadline"),
    ("\n[fallback]\n", "\n[other]\nx = 1\n[fallback]\n", "other"),
    ("\n[levels.blue]\n", "\n[levels.purple]\n", "purple"),
    ('chain = ["backup", "village_head"]', 'chain = ["backup", "mayor"]', "mayor"),
    ('chain = ["backup", "village_head"]', 'chain = ["primary"]', "levels.yellow.chain"),
    ("ack_deadline_s = 180", 'ack_deadline_s = "3 min"', "ack_deadline_s"),
    ("ack_deadline_s = 180", "ack_deadline_s = -1", "must be > 0"),
    ("ack_deadline_s = 1800\n", "", "levels.yellow"),
    ('channels = ["wecom"]', "channels = []", "levels.blue.channels"),
    ('wecom = "sms"', 'wecom = "wecom"', "fallback.wecom"),
    ("speaker_deadline_s = 300\n", "", "levels.orange.speaker_deadline_s"),
])
def test_strict_loading(tmp_path: Path, old: str, new: str, message: str) -> None:
    assert old in BUNDLED
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        _load(tmp_path, BUNDLED.replace(old, new, 1))


def test_missing_level(tmp_path: Path) -> None:
    text = BUNDLED[: BUNDLED.index("\n[levels.blue]\n")] + BUNDLED[BUNDLED.index("\n# On a"):]
    with pytest.raises(ConfigError, match=r"levels\.blue: missing"):
        _load(tmp_path, text)


def test_bundled_round_trip() -> None:
    p = default_policy()
    assert msgspec.json.decode(msgspec.json.encode(p.for_level(Level.RED)),
                               type=LevelPolicy) == p.for_level(Level.RED)
