"""Warning level of an alert: from a level parameter, else from severity (levels.toml)."""

from __future__ import annotations

from pathlib import Path

import pytest
from rules_kit import alert, info

from rules.levels import LevelTable, level_of, severity_of
from warnbus.domain.models import Level, Severity
from warnbus.errors import ConfigError


@pytest.mark.parametrize(("name", "value", "expected"), [
    ("level", "红色", Level.RED),
    ("LEVEL", " 橙色 ", Level.ORANGE),
    ("预警级别", "黄色预警", Level.YELLOW),
    ("颜色", "蓝", Level.BLUE),
    ("color", "Orange", Level.ORANGE),
    ("colour", "red", Level.RED),
    ("level", "Ⅱ级", Level.ORANGE),
    ("level", "橙色预警(二级)", Level.ORANGE),
    ("预警级别", "四级", Level.BLUE),
])
def test_level_from_parameter(name: str, value: str, expected: Level) -> None:
    # The severity disagrees on purpose: the parameter wins.
    assert level_of(alert(info(severity=Severity.MINOR, parameters=[(name, value)]))) is expected


@pytest.mark.parametrize(("severity", "expected"), [
    (Severity.EXTREME, Level.RED), (Severity.SEVERE, Level.ORANGE),
    (Severity.MODERATE, Level.YELLOW), (Severity.MINOR, Level.BLUE),
    (Severity.UNKNOWN, Level.YELLOW),
])
def test_level_from_severity(severity: Severity, expected: Level) -> None:
    assert level_of(alert(info(severity=severity))) is expected
    # An unreadable or unrelated parameter does not change it.
    noisy = info(severity=severity, parameters=[("level", "紫色"), ("EAS-ORG", "WXR")])
    assert level_of(alert(noisy)) is expected


def test_parameter_of_any_info_counts_before_severity() -> None:
    en = info(language="en-US", severity=Severity.SEVERE, parameters=[("color", "red")])
    zh = info(severity=Severity.SEVERE)
    assert level_of(alert(zh, en)) is Level.RED


def test_alert_without_info_is_yellow() -> None:
    assert level_of(alert()) is Level.YELLOW


@pytest.mark.parametrize(("level", "severity"), [
    (Level.RED, Severity.EXTREME), (Level.ORANGE, Severity.SEVERE),
    (Level.YELLOW, Severity.MODERATE), (Level.BLUE, Severity.MINOR),
])
def test_severity_of(level: Level, severity: Severity) -> None:
    assert severity_of(level) is severity


def test_strict_loading(tmp_path: Path) -> None:
    bundled = (Path(__import__("rules").__file__).parent / "levels.toml").read_text("utf-8")
    path = tmp_path / "levels.toml"
    path.write_text(bundled + '\nshade = "dark"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="shade"):
        LevelTable.load(path)
    path.write_text(bundled.replace('Minor = "blue"', ""), encoding="utf-8")
    with pytest.raises(ConfigError, match="Minor"):
        LevelTable.load(path)
    path.write_text(bundled.replace('"红色" = "red"', '"红色" = "crimson"'), encoding="utf-8")
    with pytest.raises(ConfigError, match="crimson"):
        LevelTable.load(path)
    with pytest.raises(ConfigError, match="cannot read"):
        LevelTable.load(tmp_path / "none.toml")
