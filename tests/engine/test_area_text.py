"""The area text of a message (`planner.area_text`): the areas people read, bounded."""

from __future__ import annotations

from pathlib import Path

import msgspec

from tests.timing import cpu_seconds
from warnbus.domain.models import Alert, Area
from warnbus.flow.planner import AREA_TEXT_MAX, area_text
from warnbus.ingest import parse_alert, parse_cap

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "cap"
RED = parse_cap((FIXTURES / "rainstorm-red.xml").read_bytes())


def with_areas(*descs: str) -> Alert:
    info = msgspec.structs.replace(RED.infos[0], areas=tuple(Area(desc=d) for d in descs))
    return msgspec.structs.replace(RED, infos=(info,))


def test_real_alerts_list_all_their_areas() -> None:
    paths = [*FIXTURES.glob("*.*"), *(REPO / "config" / "alerts").glob("*.xml"),
             *(REPO.parent / "shared" / "data" / "cap").glob("*/*.*")]
    for path in paths:
        if path.suffix in (".xml", ".json", ".cap"):
            alert = parse_alert(path.read_bytes())
            info = alert.primary_info()
            assert info is not None
            assert area_text(alert) == "、".join(a.desc for a in info.areas if a.desc), path


def test_a_thousand_long_areas_make_a_bounded_list_ending_in_deng() -> None:
    alert = with_areas(*(f"{i}号" + "某某镇某某村" * 50 for i in range(1000)))
    text, took = cpu_seconds(lambda: area_text(alert))
    assert len(text) <= AREA_TEXT_MAX and text.endswith("等") and text.startswith("0号某某镇")
    assert took < 0.01, f"{took * 1000:.1f} ms"
    short = with_areas(*(f"{i}号村" for i in range(1000)))
    text = area_text(short)
    assert len(text) <= AREA_TEXT_MAX and text.endswith("村等") and "、10号村、" in text


def test_one_area_longer_than_the_bound_is_cut() -> None:
    text = area_text(with_areas("某" * 10_000))
    assert text == "某" * (AREA_TEXT_MAX - 1) + "…"
    edge = "某" * (AREA_TEXT_MAX - 1)
    assert area_text(with_areas(edge)) == edge
