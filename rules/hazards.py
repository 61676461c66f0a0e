"""The hazard type x colour table (hazards.toml): which hazard an info is, which colours it has."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import msgspec

from rules._data import load_toml
from warnbus.domain.models import Category, Info, Level
from warnbus.errors import ConfigError


class Hazard(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One hazard type. See hazards.toml for the meaning of each field."""

    key: str
    name: str
    category: Category
    levels: tuple[Level, ...]
    aliases: tuple[str, ...] = ()
    codes: tuple[str, ...] = ()
    required_tags: tuple[str, ...] = ()


class _HazardFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    hazard: tuple[Hazard, ...]


class HazardTable:
    """The hazards of one data file, indexed by key, event code and alias."""

    def __init__(self, hazards: tuple[Hazard, ...], source: str = "hazards") -> None:
        self.hazards = hazards
        self._by_key: dict[str, Hazard] = {}
        self._by_code: dict[str, Hazard] = {}
        self._by_alias: dict[str, Hazard] = {}
        for h in hazards:
            if not h.levels:
                raise ConfigError(f"{source}: hazard {h.key!r} has no levels")
            for index, value, what in (
                [(self._by_key, h.key, "key")]
                + [(self._by_code, c.strip().upper(), "code") for c in h.codes]
                + [(self._by_alias, a.strip().lower(), "alias") for a in (h.name, *h.aliases)]
            ):
                other = index.setdefault(value, h)
                if other is not h:
                    raise ConfigError(f"{source}: {what} {value!r} of {h.key!r} is also "
                                      f"{other.key!r}'s")
        # Longest first: "flash flood" must win over "flood", "沙尘暴" over "沙尘".
        self._aliases = sorted(self._by_alias.items(), key=lambda kv: -len(kv[0]))

    @classmethod
    def load(cls, path: str | Path | None = None) -> HazardTable:
        """Load `path`, or the bundled rules/hazards.toml."""
        data, where = load_toml(path, "hazards.toml", _HazardFile)
        return cls(data.hazard, str(where))

    def get(self, key: str) -> Hazard | None:
        return self._by_key.get(key)

    def hazard_of(self, info: Info) -> Hazard | None:
        """The hazard of an info: by event code first, else by event text; None if unknown."""
        for _name, value in info.event_codes:
            hazard = self._by_code.get(value.strip().upper())
            if hazard is not None:
                return hazard
        text = info.event.strip().lower()
        if not text:
            return None
        exact = self._by_alias.get(text)
        if exact is not None:
            return exact
        return next((h for alias, h in self._aliases if alias in text), None)

    def allows(self, hazard: Hazard, level: Level) -> bool:
        """Whether `hazard` has a warning of colour `level` (e.g. 干旱 has no blue)."""
        return level in hazard.levels


@cache
def default_hazards() -> HazardTable:
    """The bundled table, loaded once."""
    return HazardTable.load()
