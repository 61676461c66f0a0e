"""Sites as data (sites.toml): which sites and roles a hazard's warning calls, and their policy."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import msgspec

from rules._data import load_toml
from rules.policy import LevelPolicy, level_rows, timing_problems
from warnbus.domain.models import SITE_CHAIN_ORDER, Level, SiteKind, SiteRole
from warnbus.errors import ConfigError


class SiteRule(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A hazard's warning calls the people of `roles` at the sites of `kinds` in its area."""

    hazard: str
    kinds: tuple[SiteKind, ...]
    roles: tuple[SiteRole, ...]


class _SitesFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    rule: tuple[SiteRule, ...] = ()
    # Levels are converted one by one, so that errors name the level (msgspec would not).
    levels: dict[str, dict[str, Any]] = {}


#: The roles a site policy's chain may name: those after the site's people.
CHAIN_ROLES = frozenset(r for r in SITE_CHAIN_ORDER[1:] if r is not None)


def _problems(level: Level, p: LevelPolicy) -> list[str]:
    at = f"levels.{level}"
    out = timing_problems(at, p, ("ack_deadline_s", "step_deadline_s"))
    if p.device_channels or p.speaker_deadline_s is not None:
        out.append(f"{at}: sites have no loudspeakers (no device_channels, speaker_deadline_s)")
    bad = [r.value for r in p.chain if r not in CHAIN_ROLES]
    if bad or len(set(p.chain)) != len(p.chain):
        names = ", ".join(sorted(r.value for r in CHAIN_ROLES))
        out.append(f"{at}.chain: roles after the site's people ({names}), each at most "
                   f"once" + (f"; not one: {', '.join(bad)}" if bad else ""))
    return out


class SiteRules:
    """The site rules and the sites' policy per level."""

    def __init__(self, rules: Iterable[SiteRule], levels: Mapping[Level, LevelPolicy],
                 source: str = "sites", hazards: Collection[str] | None = None) -> None:
        self.rules = tuple(rules)
        problems = [f"levels.{lv}: missing" for lv in Level if lv not in levels]
        for lv, p in levels.items():
            problems += _problems(lv, p)
        for i, r in enumerate(self.rules):
            if hazards is not None and r.hazard not in hazards:
                problems.append(f"rule[{i}].hazard: {r.hazard!r} is not a hazard of the "
                                "hazard table")
            if not r.kinds or not r.roles:
                problems.append(f"rule[{i}]: names no site kind or no role")
        if problems:
            raise ConfigError(f"{source}: " + "; ".join(problems))
        self.levels: Mapping[Level, LevelPolicy] = dict(levels)
        kinds: dict[str, set[SiteKind]] = {}
        roles: dict[tuple[str, SiteKind], set[SiteRole]] = {}
        for r in self.rules:
            kinds.setdefault(r.hazard, set()).update(r.kinds)
            for kind in r.kinds:
                roles.setdefault((r.hazard, kind), set()).update(r.roles)
        self._kinds = {h: frozenset(k) for h, k in kinds.items()}
        self._roles = {k: frozenset(v) for k, v in roles.items()}

    @classmethod
    def load(cls, path: str | Path | None = None,
             hazards: Collection[str] | None = None) -> SiteRules:
        """Load `path`, or the bundled rules/sites.toml; `hazards`: the known hazard keys."""
        data, where = load_toml(path, "sites.toml", _SitesFile)
        return cls(data.rule, level_rows(data.levels, str(where)), str(where), hazards)

    def kinds_for(self, hazard: str | None) -> frozenset[SiteKind]:
        """The site kinds a warning of `hazard` calls (none for an unknown hazard)."""
        return self._kinds.get(hazard or "", frozenset())

    def roles_for(self, hazards: Iterable[str], kind: SiteKind) -> frozenset[SiteRole]:
        """The roles called at a site of `kind` by warnings of any of `hazards`."""
        out: frozenset[SiteRole] = frozenset()
        for h in hazards:
            out |= self._roles.get((h, kind), frozenset())
        return out

    def policy_for(self, level: Level) -> LevelPolicy:
        return self.levels[level]


@cache
def default_site_rules() -> SiteRules:
    """The bundled rules, loaded once."""
    return SiteRules.load()
