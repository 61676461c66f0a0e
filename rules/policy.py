"""The 叫应 policy (policy.toml): channels, deadlines, redials and escalation chain per level."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import msgspec

from rules._data import convert, load_toml
from warnbus.domain.models import CHAIN_ORDER, Level, RegionLevel, Role
from warnbus.errors import ConfigError


class LevelPolicy(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The policy of one level. Field meanings and the timeline rule: see policy.toml."""

    channels: tuple[str, ...]
    device_channels: tuple[str, ...] = ()
    ack_deadline_s: float | None = None
    redials: int = 0
    redial_window_s: float = 0.0
    redial_channels: tuple[str, ...] = ()
    chain: tuple[Role, ...] = ()
    step_deadline_s: float | None = None
    escalation_channels: tuple[str, ...] = ()
    cancel_channels: tuple[str, ...] = ()
    cancel_confirm: bool = False
    speaker_deadline_s: float | None = None
    feedback_village_s: float | None = None
    feedback_township_s: float | None = None
    feedback_remind_s: float | None = None
    feedback_channels: tuple[str, ...] = ()

    def feedback_deadline_s(self, region_level: RegionLevel) -> float | None:
        """How long after confirming a person of a village or township has to report."""
        if region_level is RegionLevel.VILLAGE:
            return self.feedback_village_s
        if region_level is RegionLevel.TOWNSHIP:
            return self.feedback_township_s
        return None

    @property
    def step_s(self) -> float | None:
        """How long each chain role has to confirm."""
        return self.step_deadline_s if self.step_deadline_s is not None else self.ack_deadline_s

    def redial_times(self) -> tuple[float, ...]:
        """Offsets after the first wave of each redial: D + k * W / n for k in 0..n-1."""
        if self.ack_deadline_s is None or self.redials <= 0:
            return ()
        gap = self.redial_window_s / self.redials
        return tuple(self.ack_deadline_s + k * gap for k in range(self.redials))

    def escalation_times(self) -> tuple[float, ...]:
        """Offsets after the first wave at which each role of `chain` is called, in order."""
        step = self.step_s
        if self.ack_deadline_s is None or step is None:
            return ()
        start = self.ack_deadline_s + (self.redial_window_s if self.redials > 0 else 0.0)
        return tuple(start + i * step for i in range(len(self.chain)))

    def unreached_after(self) -> float | None:
        """Offset after which an unconfirmed grid is on the 未叫醒 list; None if no ack needed."""
        step = self.step_s
        if self.ack_deadline_s is None or step is None:
            return None
        start = self.ack_deadline_s + (self.redial_window_s if self.redials > 0 else 0.0)
        return start + len(self.chain) * step


class _PolicyFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    # Levels are converted one by one, so that errors name the level (msgspec would not).
    levels: dict[str, dict[str, Any]]
    fallback: dict[str, str] = {}


def _problems(level: Level, p: LevelPolicy) -> list[str]:
    at = f"levels.{level}"
    out = timing_problems(at, p, ("ack_deadline_s", "step_deadline_s", "speaker_deadline_s"))
    if p.chain and (Role.PRIMARY in p.chain or len(set(p.chain)) != len(p.chain)
                    or any(r not in CHAIN_ORDER for r in p.chain)):
        names = ", ".join(r.value for r in CHAIN_ORDER[1:])
        out.append(f"{at}.chain: roles after the primary ({names}), each at most once")
    if p.device_channels and p.speaker_deadline_s is None:
        out.append(f"{at}.speaker_deadline_s: needed when device_channels are set")
    return out


def level_rows(raw: Mapping[str, Mapping[str, Any]], where: str) -> dict[Level, LevelPolicy]:
    """A file's `[levels.<level>]` tables as policy rows, one at a time (errors name the
    level: msgspec would not)."""
    levels: dict[Level, LevelPolicy] = {}
    for key, row in raw.items():
        if key not in Level.__members__.values():
            known = ", ".join(Level)
            raise ConfigError(f"{where}: levels.{key}: not a level (one of {known})")
        levels[Level(key)] = convert(row, LevelPolicy, f"{where}: levels.{key}")
    return levels


def timing_problems(at: str, p: LevelPolicy, deadlines: Iterable[str]) -> list[str]:
    """What is wrong with a level's channels, deadlines, redials, chain and feedback timing (not
    with the roles its chain names: grids' and sites' chains differ there)."""
    out = []
    if not p.channels:
        out.append(f"{at}.channels: at least one channel is needed")
    for key in (*deadlines, "feedback_village_s", "feedback_township_s", "feedback_remind_s"):
        value = getattr(p, key)
        if value is not None and value <= 0:
            out.append(f"{at}.{key}: must be > 0")
    if p.redials < 0 or p.redial_window_s < 0:
        out.append(f"{at}: redials and redial_window_s must be >= 0")
    if p.redials > 0 and (p.ack_deadline_s is None or p.redial_window_s <= 0):
        out.append(f"{at}: redials need ack_deadline_s and a redial_window_s > 0")
    if p.redials > 0 and not p.redial_channels:
        out.append(f"{at}.redial_channels: redials need at least one channel")
    if p.chain:
        if p.ack_deadline_s is None:
            out.append(f"{at}.chain: an escalation chain needs ack_deadline_s")
        if not p.escalation_channels:
            out.append(f"{at}.escalation_channels: a chain needs at least one channel")
    if p.cancel_confirm and not p.cancel_channels:
        out.append(f"{at}.cancel_confirm: a 解除 to confirm needs cancel_channels")
    out += _feedback_problems(at, p)
    return out


def _feedback_problems(at: str, p: LevelPolicy) -> list[str]:
    out = []
    deadlines = [d for d in (p.feedback_village_s, p.feedback_township_s) if d is not None]
    if deadlines and not p.feedback_channels:
        out.append(f"{at}.feedback_channels: feedback deadlines need at least one channel")
    if deadlines and p.ack_deadline_s is None:
        out.append(f"{at}: feedback deadlines need ack_deadline_s (a report follows the ack)")
    if p.feedback_remind_s is not None and any(p.feedback_remind_s >= d for d in deadlines):
        out.append(f"{at}.feedback_remind_s: the reminder comes before each feedback deadline")
    return out


class Policy:
    """The 叫应 policy for every level, plus the channel fallback on permanent failure."""

    def __init__(self, levels: Mapping[Level, LevelPolicy], fallback: Mapping[str, str],
                 source: str = "policy") -> None:
        problems = [f"levels.{lv}: missing" for lv in Level if lv not in levels]
        for lv, p in levels.items():
            problems += _problems(lv, p)
        problems += [f"fallback.{k}: falls back to itself" for k, v in fallback.items() if k == v]
        if problems:
            raise ConfigError(f"{source}: " + "; ".join(problems))
        self.levels: Mapping[Level, LevelPolicy] = dict(levels)
        self.fallback: Mapping[str, str] = dict(fallback)

    @classmethod
    def load(cls, path: str | Path | None = None) -> Policy:
        """Load `path`, or the bundled rules/policy.toml."""
        data, where = load_toml(path, "policy.toml", _PolicyFile)
        return cls(level_rows(data.levels, str(where)), data.fallback, str(where))

    def for_level(self, level: Level) -> LevelPolicy:
        return self.levels[level]

    def fallback_for(self, channel: str, tried: Collection[str] = ()) -> str | None:
        """The next channel after a permanent failure of `channel`, skipping `tried` ones.

        Follows the fallback chain (wecom -> sms -> voice ...) until a channel not yet tried;
        None when the chain ends or comes back round.
        """
        skip = {channel, *tried}
        visited = {channel}
        nxt = self.fallback.get(channel)
        while nxt is not None and nxt not in visited:
            if nxt not in skip:
                return nxt
            visited.add(nxt)
            nxt = self.fallback.get(nxt)
        return None


@cache
def default_policy() -> Policy:
    """The bundled policy, loaded once."""
    return Policy.load()
