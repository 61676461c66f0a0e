"""The CAP 1.2 serializer: `parse_cap(alert_to_cap(a)) == a` for the project's alerts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import msgspec
import pytest
from lxml import etree

from tests.engine.helpers import cap_alert
from warnbus.domain.models import (
    Alert,
    Area,
    Certainty,
    Circle,
    MsgType,
    Reference,
    Resource,
    Scope,
    Status,
)
from warnbus.feeds.capxml import alert_to_cap
from warnbus.ingest import parse_alert, parse_cap

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "cap"
VALID = sorted(p for p in FIXTURES.iterdir() if p.suffix in (".xml", ".json"))
replace = msgspec.structs.replace


def as_cap12(alert: Alert) -> Alert:
    """What a message of any form becomes in CAP 1.2 (see capxml's docstring)."""
    infos = tuple(replace(i, certainty=Certainty.LIKELY) if i.certainty is Certainty.VERY_LIKELY
                  else i for i in alert.infos)
    return replace(alert, cap_version="1.2", infos=infos)


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.name)
def test_project_fixtures_round_trip(path: Path) -> None:
    alert = parse_alert(path.read_bytes(), "application/json" if path.suffix == ".json"
                        else "application/cap+xml")
    back = parse_cap(alert_to_cap(alert))
    if alert.cap_version == "1.2":
        assert back == alert  # exact, signature aside (the model does not keep it)
    else:
        assert back == as_cap12(alert)


def test_shared_samples_round_trip(shared_cap_dir: Path) -> None:
    files = sorted(p for p in shared_cap_dir.rglob("*") if p.suffix in (".xml", ".cap"))
    assert files
    for path in files:
        alert = parse_cap(path.read_bytes())
        assert parse_cap(alert_to_cap(alert)) == as_cap12(alert), path.name


def test_document_is_cap12_in_schema_order() -> None:
    doc = etree.fromstring(alert_to_cap(cap_alert()))
    assert doc.tag == "{urn:oasis:names:tc:emergency:cap:1.2}alert"
    names = [etree.QName(c).localname for c in doc]
    assert names == ["identifier", "sender", "sent", "status", "msgType", "scope", "info"]


def test_awkward_values_survive() -> None:
    base = cap_alert()
    info = base.infos[0]
    tiny = Area(desc="tiny", polygons=((((1e-05, 112.5), (29.4, 1e-07), (29.5, 112.6),
                                         (1e-05, 112.5)),)),
                circles=(Circle(29.43, 112.52, 0.5),), altitude=1e-3, ceiling=2e20)
    alert = replace(
        base, sent=datetime(2026, 7, 15, 5, 30, tzinfo=UTC), status=Status.EXERCISE,
        msg_type=MsgType.UPDATE, scope=Scope.RESTRICTED, restriction="应急办内部",
        references=(Reference(base.sender, "x_1", "2026-07-15T05:00:00+08:00"),),
        note="a & b < c", codes=("A", "B"),
        infos=(replace(info, expires=datetime(2026, 7, 15, 18, tzinfo=timezone(
            timedelta(hours=-5, minutes=-30))), areas=(tiny,),
            resources=(Resource("图", "image/png", 12, "http://127.0.0.1/a.png", "ab12"),)),),
    )
    assert parse_cap(alert_to_cap(alert)) == alert


def test_what_cap12_cannot_say_is_normalised() -> None:
    base = cap_alert()
    alert = replace(base, sent=datetime(2026, 7, 15, 5, 30, 1, 500000, tzinfo=UTC),
                    note="bell\x07 here",
                    references=(Reference(base.sender, "x_1", "2026-07-15T05:00:00Z"),),
                    msg_type=MsgType.UPDATE)
    text = alert_to_cap(alert).decode()
    assert "<sent>2026-07-15T05:30:01-00:00</sent>" in text
    assert "x_1,2026-07-15T05:00:00-00:00" in text
    back = parse_cap(text.encode())
    assert back.note == "bell here" and back.sent == alert.sent.replace(microsecond=0)
