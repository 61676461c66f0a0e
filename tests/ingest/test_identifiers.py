"""GB/T 35965.1 identifiers: parse, recognise and generate, Beijing time."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.ingest.helpers import FIXTURES, rejects
from warnbus.errors import IngestError
from warnbus.ingest import parse_alert
from warnbus.ingest.identifiers import (
    BEIJING,
    Gb35965Id,
    is_gb35965,
    new_identifier,
    parse_identifier,
)

OWN_XML = sorted(FIXTURES.glob("*.xml"))


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        (
            "43062304100000_20260715053000_1",
            ("430623", "041", "000", "00", datetime(2026, 7, 15, 5, 30, tzinfo=BEIJING), 1),
        ),
        (
            "43062305200000_20260716180000_0",
            ("430623", "052", "000", "00", datetime(2026, 7, 16, 18, 0, tzinfo=BEIJING), 0),
        ),
        (
            "11000041612301_20241231235959_9",
            ("110000", "416", "123", "01", datetime(2024, 12, 31, 23, 59, 59, tzinfo=BEIJING), 9),
        ),
        (
            "10000041600000_20240229000000_2",  # national level, a leap day
            ("100000", "416", "000", "00", datetime(2024, 2, 29, tzinfo=BEIJING), 2),
        ),
    ],
)
def test_parse(text: str, parts: tuple[object, ...]) -> None:
    got = parse_identifier(text)
    assert (got.region, got.department, got.unit, got.serial, got.entered, got.sequence) == parts
    assert got.sender_code == text[:14]
    assert str(got) == text
    assert got.entered.utcoffset() == timedelta(hours=8)
    assert is_gb35965(text)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("43b080713727", "not a GB/T 35965.1 identifier"),
        ("2.49.0.1.124.6bddbc91.2012", "got 1 part(s)"),
        ("CDC_communicable_20190521123448_001", "got 4 part(s)"),
        ("43062304100000 20260808080000 1", "got 1 part(s)"),
        ("4306230410000_20260715053000_1", "issuing unit code '4306230410000' must be 14 digits"),
        ("43062304100000X_20260715053000_1", "must be 14 digits"),
        ("４３062304100000_20260715053000_1", "must be 14 digits"),  # full-width digits
        ("99062304100000_20260715053000_1", "region '990623'"),
        ("00000004100000_20260715053000_1", "no province '00'"),
        ("43062304100000_2026071505300_1", "time '2026071505300' must be 14 digits"),
        ("43062304100000_20260230120000_1", "time '20260230120000' is not a real date"),
        ("43062304100000_20260715246000_1", "is not a real date"),
        ("43062304100000_20260715053000_10", "sequence number '10' must be one digit"),
        ("43062304100000_20260715053000_", "sequence number '' must be one digit"),
        ("43062304100000_20260715053000_a", "sequence number 'a'"),
    ],
)
def test_parse_names_the_wrong_part(text: str, needle: str) -> None:
    err = rejects(lambda: parse_identifier(text), "invalid", "identifier")  # type: ignore[arg-type,return-value]
    assert needle in err.reason
    assert not is_gb35965(text)


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        # Beijing time is written as it is.
        (datetime(2026, 7, 15, 5, 30, tzinfo=BEIJING), "20260715053000"),
        # UTC 21:30 is 05:30 the next day in Beijing.
        (datetime(2026, 7, 14, 21, 30, tzinfo=UTC), "20260715053000"),
        # New year in UTC is already 08:00 on 1 January in Beijing; 16:00 UTC on 31 Dec is midnight.
        (datetime(2025, 12, 31, 16, 0, tzinfo=UTC), "20260101000000"),
        (datetime(2025, 12, 31, 15, 59, 59, 999999, tzinfo=UTC), "20251231235959"),
        # Any other zone: UTC-5 09:00 is 22:00 in Beijing.
        (datetime(2026, 3, 1, 9, 0, tzinfo=timezone(timedelta(hours=-5))), "20260301220000"),
        # Leap day in Beijing from the day before in UTC.
        (datetime(2028, 2, 28, 20, 0, tzinfo=UTC), "20280229040000"),
    ],
)
def test_new_identifier_in_beijing_time(when: datetime, expected: str) -> None:
    text = new_identifier("430623", "041", "000", "00", when, 3)
    assert text == f"43062304100000_{expected}_3"
    parsed = parse_identifier(text)
    assert parsed.entered == when.replace(microsecond=0)  # the same instant, whole seconds
    assert parsed == Gb35965Id("430623", "041", "000", "00", parsed.entered, 3)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("43062", "041", "000", "00", 0), "region must be 6 digits"),
        (("430623", "41", "000", "00", 0), "department must be 3 digits"),
        (("430623", "041", "0a0", "00", 0), "unit must be 3 digits"),
        (("430623", "041", "000", "000", 0), "serial must be 2 digits"),
        (("990623", "041", "000", "00", 0), "no province '99'"),
        (("430623", "041", "000", "00", 10), "seq must be 0-9"),
        (("430623", "041", "000", "00", -1), "seq must be 0-9"),
    ],
)
def test_new_identifier_refuses_bad_parts(
    args: tuple[str, str, str, str, int], needle: str
) -> None:
    region, dept, unit, serial, seq = args
    with pytest.raises(ValueError, match=re.escape(needle)):
        new_identifier(region, dept, unit, serial, datetime.now(UTC), seq)


def test_new_identifier_refuses_naive_time() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        new_identifier("430623", "041", "000", "00", datetime(2026, 7, 15, 5, 30), 0)


@pytest.mark.parametrize("path", OWN_XML, ids=[p.name for p in OWN_XML])
def test_own_fixtures(path: Path) -> None:
    """The project's county alerts carry GB/T 35965.1 identifiers whose time is their `sent`."""
    alert = parse_alert(path.read_bytes())
    if not is_gb35965(alert.identifier):
        assert not alert.identifier[:1].isdigit(), alert.identifier  # a foreign-style id
        return
    assert parse_identifier(alert.identifier).entered == alert.sent


def test_shared_cap_files(shared_cap_dir: Path) -> None:
    """Mainland samples use the form; foreign ones do not, and stay valid CAP."""
    seen = {}
    for path in sorted(shared_cap_dir.rglob("*")):
        if path.suffix in (".xml", ".cap"):
            seen[path.parent.name + "/" + path.name] = is_gb35965(
                parse_alert(path.read_bytes()).identifier
            )
    cn = {k: v for k, v in seen.items() if k.startswith("cn/")}
    assert cn and all(cn.values())
    assert not any(v for k, v in seen.items() if not k.startswith("cn/"))


def test_error_is_an_ingest_error() -> None:
    with pytest.raises(IngestError) as info:
        parse_identifier("x")
    assert str(info.value).startswith("identifier: ")
