"""Warning level (colour) of an alert, and level <-> CAP severity; tables in levels.toml."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import msgspec

from rules._data import load_toml
from warnbus.domain.models import Alert, Info, Level, Severity
from warnbus.errors import ConfigError


class _LevelFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    parameters: tuple[str, ...]
    words: dict[str, Level]
    severity_to_level: dict[Severity, Level]
    level_to_severity: dict[Level, Severity]


class LevelTable:
    """The level rules of one data file. Immutable after load."""

    def __init__(self, data: _LevelFile, source: str = "levels") -> None:
        missing: list[str] = [s for s in Severity if s not in data.severity_to_level]
        missing += [lv for lv in Level if lv not in data.level_to_severity]
        if missing:
            raise ConfigError(f"{source}: no mapping for {', '.join(missing)}")
        self._parameters = tuple(p.lower() for p in data.parameters)
        self._words = {w.lower(): lv for w, lv in data.words.items()}
        # Longest first, so "红色预警" is read through "红色" before any one-character word.
        self._by_length = sorted(self._words.items(), key=lambda kv: -len(kv[0]))
        self._to_level = dict(data.severity_to_level)
        self._to_severity = dict(data.level_to_severity)

    @classmethod
    def load(cls, path: str | Path | None = None) -> LevelTable:
        """Load `path`, or the bundled rules/levels.toml."""
        data, where = load_toml(path, "levels.toml", _LevelFile)
        return cls(data, str(where))

    def parse(self, value: str) -> Level | None:
        """Read a level word (红色, orange, Ⅱ级, 橙色预警 ...); None if it names no level."""
        text = value.strip().lower()
        if not text:
            return None
        if text in self._words:
            return self._words[text]
        return next((lv for word, lv in self._by_length if word in text), None)

    def level_of_info(self, info: Info) -> Level | None:
        """The level an info's parameters name, if any."""
        for key, value in info.parameters:
            if key.strip().lower() in self._parameters:
                level = self.parse(value)
                if level is not None:
                    return level
        return None

    def level_of(self, alert: Alert) -> Level:
        """The alert's level: a level parameter if any info has one, else its severity."""
        primary = alert.primary_info()
        infos = [primary] if primary else []
        infos += [i for i in alert.infos if i is not primary]
        for info in infos:
            level = self.level_of_info(info)
            if level is not None:
                return level
        return self.level_for(primary.severity if primary else Severity.UNKNOWN)

    def level_for(self, severity: Severity) -> Level:
        return self._to_level[severity]

    def severity_of(self, level: Level) -> Severity:
        return self._to_severity[level]


@cache
def default_levels() -> LevelTable:
    """The bundled table, loaded once."""
    return LevelTable.load()


def level_of(alert: Alert, table: LevelTable | None = None) -> Level:
    """The warning level of `alert` (see LevelTable.level_of)."""
    return (table or default_levels()).level_of(alert)


def severity_of(level: Level, table: LevelTable | None = None) -> Severity:
    """The CAP severity of a level (red -> Extreme ... blue -> Minor)."""
    return (table or default_levels()).severity_of(level)
