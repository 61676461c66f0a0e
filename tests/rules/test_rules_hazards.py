"""The hazard type x colour table (hazards.toml)."""

from __future__ import annotations

from pathlib import Path

import pytest
from rules_kit import info

from rules.hazards import HazardTable, default_hazards
from warnbus.domain.models import Category, Level
from warnbus.errors import ConfigError

METEOROLOGICAL = ["台风", "暴雨", "暴雪", "寒潮", "大风", "沙尘暴", "高温", "干旱", "雷电", "冰雹",
                  "霜冻", "大雾", "霾", "道路结冰"]


def test_table_has_the_national_signals_and_more() -> None:
    names = {h.name for h in default_hazards().hazards}
    assert set(METEOROLOGICAL) <= names
    assert {"洪水", "山洪", "地质灾害"} <= names


@pytest.mark.parametrize(("event", "codes", "key"), [
    ("暴雨", (), "rainstorm"),
    ("暴雨红色预警信号", (), "rainstorm"),
    ("华容县气象台发布大雾橙色预警", (), "fog"),
    ("地质灾害气象风险预警", (), "geohazard"),
    ("滑坡", (), "geohazard"),
    ("洪水", (), "flood"),
    ("山洪灾害气象预警", (), "flash_flood"),
    ("Flash Flood Warning", (), "flash_flood"),
    ("Flood Warning", (), "flood"),
    ("沙尘暴黄色预警", (), "sandstorm"),
    ("预警", (("GB/T 35561", "11B03"),), "rainstorm"),
    ("大风", (("GB/T 35561", "11b17"),), "fog"),  # the code wins over the text
    ("Tsunami Warning", (), None),
    ("", (), None),
])
def test_hazard_of(event: str, codes: tuple[tuple[str, str], ...], key: str | None) -> None:
    hazard = default_hazards().hazard_of(info(event=event, event_codes=codes))
    assert (hazard.key if hazard else None) == key


def test_geological_hazard_needs_hazard_points() -> None:
    hazard = default_hazards().get("geohazard")
    assert hazard is not None and hazard.required_tags == ("hazard_point",)
    assert hazard.category is Category.GEO
    rain = default_hazards().get("rainstorm")
    assert rain is not None and rain.required_tags == () and "11B03" in rain.codes


@pytest.mark.parametrize(("key", "level", "allowed"), [
    ("rainstorm", Level.RED, True), ("rainstorm", Level.BLUE, True),
    ("drought", Level.BLUE, False), ("drought", Level.ORANGE, True),
    ("frost", Level.RED, False), ("hail", Level.YELLOW, False),
    ("sandstorm", Level.BLUE, False), ("geohazard", Level.ORANGE, True),
])
def test_allows(key: str, level: Level, allowed: bool) -> None:
    table = default_hazards()
    hazard = table.get(key)
    assert hazard is not None and table.allows(hazard, level) is allowed


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hazards.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_strict_loading(tmp_path: Path) -> None:
    ok = '[[hazard]]\nkey = "x"\nname = "某灾"\ncategory = "Met"\nlevels = ["red"]\n'
    assert HazardTable.load(_write(tmp_path, ok)).get("x") is not None
    with pytest.raises(ConfigError, match="severity"):
        HazardTable.load(_write(tmp_path, ok + 'severity = "x"\n'))
    with pytest.raises(ConfigError, match="purple"):
        HazardTable.load(_write(tmp_path, ok.replace('"red"', '"purple"')))
    with pytest.raises(ConfigError, match="alias '某灾'"):
        HazardTable.load(_write(tmp_path, ok + ok.replace('"x"', '"y"')))
    with pytest.raises(ConfigError, match="no levels"):
        HazardTable.load(_write(tmp_path, ok.replace('["red"]', "[]")))
    with pytest.raises(ConfigError, match="not valid TOML"):
        HazardTable.load(_write(tmp_path, "[[hazard]\n"))
