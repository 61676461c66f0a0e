"""Shared rules: CAP date-times per version, polygons, identifiers, semantic checks on models."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import msgspec
import pytest

from tests.ingest.helpers import FIXTURES, rejects
from warnbus.domain.models import Area, Circle, Info, MsgType, Scope
from warnbus.ingest import parse_cap
from warnbus.ingest.checks import RULES, check_alert, check_id, check_ring, parse_datetime

CST = timezone(timedelta(hours=8))


@pytest.mark.parametrize(
    ("text", "versions", "expected"),
    [
        ("2026-07-15T05:30:00+08:00", "1.0 1.1 1.2 json", datetime(2026, 7, 15, 5, 30, tzinfo=CST)),
        ("2026-07-15T05:30:00-00:00", "1.0 1.1 1.2 json", datetime(2026, 7, 15, 5, 30, tzinfo=UTC)),
        ("2026-07-15T05:30:00+00:00", "1.0 1.1 1.2 json", datetime(2026, 7, 15, 5, 30, tzinfo=UTC)),
        (" 2026-07-15T05:30:00-05:30\n", "1.2", datetime(2026, 7, 15, 11, 0, tzinfo=UTC)),
        ("2026-07-15T05:30:00Z", "1.0 json", datetime(2026, 7, 15, 5, 30, tzinfo=UTC)),
        (
            "2026-07-15T05:30:00.25+08:00",
            "1.0 1.1 json",
            datetime(2026, 7, 15, 5, 30, 0, 250000, tzinfo=CST),
        ),
    ],
)
def test_datetimes_accepted(text: str, versions: str, expected: datetime) -> None:
    for version in versions.split():
        assert parse_datetime(text, RULES[version], "sent") == expected


@pytest.mark.parametrize(
    ("text", "versions", "says"),
    [
        ("2026-07-15T05:30:00", "1.0 1.1 1.2 json", "no time zone"),
        ("2026-07-15T05:30:00Z", "1.1 1.2", "'Z' is not allowed"),
        ("2026-07-15T05:30:00.5+08:00", "1.2", "fractional seconds"),
        ("2026-07-15T05:30+08:00", "1.2", "not a date-time"),
        ("2026-07-15 05:30:00+08:00", "1.2", "not a date-time"),
        ("2026-13-01T05:30:00+08:00", "1.2", "not a valid date-time"),
        ("2026-07-15T24:00:00+08:00", "1.2", "not a valid date-time"),
        ("2026-07-15T05:30:00+15:00", "1.2", "out of range"),
        ("2026-07-15T05:30:00+08:60", "1.2", "out of range"),
        ("0001-01-01T00:00:00+08:00", "1.2", "not a valid date-time"),
        ("٢٠٢٦-07-15T05:30:00+08:00", "1.2", "not a date-time"),  # non-ASCII digits
        ("", "1.2", "not a date-time"),
    ],
)
def test_datetimes_rejected(text: str, versions: str, says: str) -> None:
    for version in versions.split():
        err = rejects(
            lambda v=version: parse_datetime(text, RULES[v], "info[0].onset"),
            "invalid",
            "info[0].onset",
        )
        assert says in err.reason


@pytest.mark.parametrize(
    ("ring", "says"),
    [
        (((1.0, 2.0), (1.0, 3.0), (1.0, 2.0)), "at least 4 points"),
        (((1.0, 2.0), (1.0, 3.0), (2.0, 3.0), (1.0, 2.1)), "not closed"),
        (((91.0, 2.0), (1.0, 3.0), (2.0, 3.0), (91.0, 2.0)), "out of range"),
        (((1.0, 2.0), (1.0, -181.0), (2.0, 3.0), (1.0, 2.0)), "out of range"),
        (((1.0, 2.0), (float("nan"), 3.0), (2.0, 3.0), (1.0, 2.0)), "out of range"),
    ],
)
def test_rings_rejected(ring: tuple[tuple[float, float], ...], says: str) -> None:
    err = rejects(lambda: check_ring(ring, "p"), "invalid", "p")
    assert says in err.reason


@pytest.mark.parametrize("value", ["", "a b", "a,b", "a<b", "a&b", "a\tb", "a\u3000b"])
def test_identifiers_rejected(value: str) -> None:
    rejects(lambda: check_id(value, "identifier"), "invalid", "identifier")


def test_identifiers_accepted() -> None:
    check_id("43062304100000_20260802040000_1", "identifier")
    check_id("tag:www.rfs.nsw.gov.au2011-10-06:40184", "identifier")


BASE = parse_cap((FIXTURES / "rainstorm-red.xml").read_bytes())
INFO = BASE.infos[0]


def with_info(**changes: object) -> object:
    return msgspec.structs.replace(BASE, infos=(msgspec.structs.replace(INFO, **changes),))


def with_area(**changes: object) -> object:
    return with_info(areas=(msgspec.structs.replace(INFO.areas[0], **changes),))


@pytest.mark.parametrize(
    ("alert", "field"),
    [
        (msgspec.structs.replace(BASE, sent=datetime(2026, 8, 2, 4, 0)), "sent"),
        (msgspec.structs.replace(BASE, msg_type=MsgType.CANCEL), "references"),
        (msgspec.structs.replace(BASE, msg_type=MsgType.ACK), "references"),
        (msgspec.structs.replace(BASE, scope=Scope.PRIVATE), "addresses"),
        (with_info(expires=datetime(2026, 8, 2, 3, 0, tzinfo=CST)), "info[0].expires"),
        (with_info(effective=datetime(2026, 8, 2, 4, 0)), "info[0].effective"),
        (with_area(circles=(Circle(29.5, 112.6, float("inf")),)), "info[0].area[0].circle[0]"),
        (with_area(circles=(Circle(95.0, 112.6, 1.0),)), "info[0].area[0].circle[0]"),
        (with_area(altitude=100.0, ceiling=50.0), "info[0].area[0].ceiling"),
        (with_area(altitude=float("nan")), "info[0].area[0].altitude"),
        (with_info(language="中文"), "info[0].language"),
    ],
)
def test_semantic_checks(alert: object, field: str) -> None:
    assert isinstance(alert, type(BASE))
    rejects(lambda: check_alert(alert), "invalid", field)


def test_expires_may_equal_effective_and_ceiling_needs_altitude_only() -> None:
    start = datetime(2026, 8, 2, 4, 0, tzinfo=CST)
    ok = with_info(effective=start, onset=None, expires=start)
    assert isinstance(ok, type(BASE))
    check_alert(ok)
    area = Area(desc="x", altitude=0.0, ceiling=0.0)
    check_alert(
        msgspec.structs.replace(
            BASE,
            infos=(
                Info(
                    categories=INFO.categories,
                    event="x",
                    urgency=INFO.urgency,
                    severity=INFO.severity,
                    certainty=INFO.certainty,
                    areas=(area,),
                ),
            ),
        )
    )
