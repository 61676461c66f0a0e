"""CAP XML parsing: the project's fixtures, real feeds, encodings, and a table of invalid files."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.ingest.helpers import FIXTURES, INVALID, SHARED, SHARED_FILES, VALID_FILES, ids, rejects
from tests.timing import cpu_seconds
from warnbus.domain.models import Certainty, Circle, MsgType, Reference, Severity, Status
from warnbus.ingest import parse_alert, parse_cap

CST = timezone(timedelta(hours=8))
SENDER = "430623@qx.example.cn"


def load(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


# --------------------------------------------------------------------------- valid


@pytest.mark.parametrize("path", VALID_FILES, ids=ids(VALID_FILES))
def test_every_shipped_alert_parses(path: Path) -> None:
    alert = parse_alert(path.read_bytes())
    assert alert.infos, "every shipped alert carries an info block"


@pytest.mark.parametrize(
    "path",
    SHARED_FILES
    or [
        pytest.param(None, marks=pytest.mark.skip(reason=f"{SHARED} is absent: no shared samples"))
    ],
    ids=ids(SHARED_FILES) or ["shared-absent"],
)
def test_real_feeds_parse(path: Path) -> None:
    alert = parse_alert(path.read_bytes())
    assert alert.cap_version in {"1.0", "1.1", "1.2"}
    assert alert.identifier and alert.sender


def test_red_rainstorm_thread() -> None:
    alert = parse_cap(load("rainstorm-red.xml"))
    update = parse_cap(load("rainstorm-red-update.xml"))
    cancel = parse_cap(load("rainstorm-red-cancel.xml"))

    assert alert.cap_version == "1.2"
    assert alert.sent == datetime(2026, 8, 2, 4, 0, tzinfo=CST)
    assert (alert.status, alert.msg_type) == (Status.ACTUAL, MsgType.ALERT)
    info = alert.infos[0]
    assert (info.language, info.event, info.severity) == ("zh-CN", "暴雨", Severity.EXTREME)
    assert info.parameter("LEVEL") == "红色"
    assert info.event_codes == (("GB/T 35561", "11B03"),)
    assert info.expires == datetime(2026, 8, 2, 16, 0, tzinfo=CST)
    townships = [code for _, code in info.areas[0].geocodes]
    assert townships == ["430623107000", "430623108000", "430623109000"]

    first = Reference(SENDER, alert.identifier, "2026-08-02T04:00:00+08:00")
    assert update.msg_type is MsgType.UPDATE
    assert update.references == (first,)
    assert [c for _, c in update.infos[0].areas[0].geocodes][-1] == "430623110000"

    second = Reference(SENDER, update.identifier, "2026-08-02T07:00:00+08:00")
    assert cancel.msg_type is MsgType.CANCEL
    assert cancel.references == (first, second)
    assert cancel.note == "强降雨已减弱，解除暴雨红色预警信号。"


def test_polygon_and_circle() -> None:
    ring = parse_cap(load("geohazard-orange.xml")).infos[0].areas[0].polygons[0]
    assert len(ring) == 6 and ring[0] == ring[-1] == (29.58, 112.62)
    assert all(29.30 <= lat <= 29.80 and 112.30 <= lon <= 112.90 for lat, lon in ring)
    area = parse_cap(load("flood-circle.xml")).infos[0].areas[0]
    assert area.circles == (Circle(lat=29.43, lon=112.52, radius_km=15.0),)


def test_exercise_is_a_drill() -> None:
    alert = parse_cap(load("exercise-rainstorm.xml"))
    assert alert.status is Status.EXERCISE and alert.is_drill


def test_cap11_with_prefix() -> None:
    alert = parse_cap(load("cap11-gale.xml"))
    assert alert.cap_version == "1.1"
    assert alert.infos[0].areas[0].geocodes == (
        ("TOWNSHIP", "430623112000"),
        ("TOWNSHIP", "430623113000"),
    )


def test_cap10_specifics() -> None:
    alert = parse_cap(load("cap10-heat.xml"))
    info = alert.infos[0]
    assert alert.cap_version == "1.0"
    assert info.certainty is Certainty.VERY_LIKELY
    assert info.event_codes == (("GB/T 35561", "11B09"),)
    assert info.parameters == (("level", "橙色"),)
    assert info.areas[0].geocodes == (("GB/T 2260", "430623"),)


def test_cap10_password_in_schema_position_and_z_time() -> None:
    body = load("cap10-heat.xml").replace(b"  <password>not-a-secret</password>\n", b"")
    body = body.replace(
        b"<msgType>Alert</msgType>", b"<msgType>Alert</msgType><password>x</password>"
    )
    body = body.replace(b"2026-07-07T11:00:00+08:00</sent>", b"2026-07-07T03:00:00Z</sent>")
    alert = parse_cap(body)
    assert alert.sent == datetime(2026, 7, 7, 3, 0, tzinfo=UTC)
    twice = body.replace(b"<password>x</password>", b"<password>x</password><password>y</password>")
    rejects(lambda: parse_cap(twice), "invalid", "password")


def test_enveloped_signature_is_accepted_not_verified() -> None:
    alert = parse_cap(load("signed-rainstorm.xml"))
    assert alert.identifier.endswith("_9")


def test_utc_offsets_and_fractions_per_version() -> None:
    body = load("rainstorm-red.xml").replace(
        b"<sent>2026-08-02T04:00:00+08:00", b"<sent>2026-08-01T20:00:00-00:00"
    )
    assert parse_cap(body).sent == datetime(2026, 8, 1, 20, 0, tzinfo=UTC)
    fraction = body.replace(b"20:00:00-00:00", b"20:00:00.250-00:00")
    rejects(lambda: parse_cap(fraction), "invalid", "sent")  # the 1.2 schema pattern
    cap11 = load("cap11-gale.xml").replace(
        b"14:00:00+08:00</cap:sent>", b"14:00:00.5+08:00</cap:sent>"
    )
    assert parse_cap(cap11).sent.microsecond == 500000  # xs:dateTime in 1.1


def test_empty_optional_elements_and_whitespace() -> None:
    body = load("rainstorm-red.xml").replace(
        b"<code>GB/T 35965.1-2018</code>", b"<code>GB/T 35965.1-2018</code>\n  <note/>"
    )
    body = body.replace(
        b"<event>\xe6\x9a\xb4\xe9\x9b\xa8</event>", "<event>\n 暴雨 \n</event>".encode()
    )
    alert = parse_cap(body)
    assert alert.note is None
    assert alert.infos[0].event == "暴雨"


@pytest.mark.parametrize("encoding", ["GB2312", "GBK", "GB18030", "UTF-16", "UTF-8-SIG"])
def test_declared_encodings(encoding: str) -> None:
    text = load("rainstorm-red.xml").decode("utf-8")
    declared = "UTF-8" if encoding == "UTF-8-SIG" else encoding
    body = text.replace('encoding="UTF-8"', f'encoding="{declared}"').encode(encoding.lower())
    assert parse_cap(body) == parse_cap(load("rainstorm-red.xml"))


SAMPLE_RING = b"29.58,112.62 29.61,112.74 29.55,112.81 29.47,112.78 29.45,112.66 29.58,112.62"


def _with_ring(points: list[str]) -> bytes:
    points.append(points[0])
    return load("geohazard-orange.xml").replace(SAMPLE_RING, " ".join(points).encode())


def test_huge_polygon_is_fast() -> None:
    # ~100k points, ~2 MB: national feeds carry polygons of 800 KB. A contour as real feeds
    # draw it (a wavy boundary, jitter of the order of the vertex spacing): simple, so valid.
    n = 100_000
    points = []
    for i in range(n):
        a = 2 * math.pi * i / n
        r = 0.1 + 0.01 * math.sin(50 * a) + 5e-6 * ((i * 7919) % 97) / 97
        points.append(f"{29.475 + r * math.sin(a):.7f},{112.775 + r * math.cos(a):.7f}")
    body = _with_ring(points)
    assert len(body) > 2_000_000
    alert, cpu = cpu_seconds(lambda: parse_cap(body))  # CPU: a busy machine is no slower
    assert len(alert.infos[0].areas[0].polygons[0]) == n + 1
    assert cpu < 0.5, f"{cpu:.2f} s of CPU for a 2 MB alert"


def test_huge_self_crossing_polygon_is_refused_fast() -> None:
    # 100k points zigzagging across the county: the ring crosses itself everywhere.
    n = 100_000
    points = [
        f"{29.3 + 0.5 * i / n:.6f},{112.3 + 0.6 * ((i * 7919) % n) / n:.6f}" for i in range(n)
    ]
    err, cpu = cpu_seconds(lambda: rejects(lambda: parse_cap(_with_ring(points)), "invalid",
                                           "info[0].area[0].polygon[0]"))
    assert "crosses itself near (29.3" in err.reason, err
    assert cpu < 2.0, f"{cpu:.2f} s of CPU to refuse a 2 MB scribble"


@pytest.mark.parametrize(
    ("ring", "words"),
    [
        # a bow-tie over the county: which half is "inside" would be a guess
        ("29.35,112.35 29.75,112.85 29.75,112.35 29.35,112.85 29.35,112.35",
         "crosses itself near (29.55, 112.6)"),
        # crossing through a shared vertex (GEOS calls it a ring self-intersection)
        ("29.4,112.4 29.5,112.5 29.6,112.6 29.6,112.4 29.5,112.5 29.4,112.6 29.4,112.4",
         "crosses itself near (29.5, 112.5)"),
        # a spike that runs out and back along one line
        ("29.4,112.4 29.4,112.6 29.6,112.6 29.4,112.6 29.4,112.4", "crosses itself"),
        ("29.4,112.4 29.5,112.5 29.6,112.6 29.4,112.4", "all its points lie on one line"),
        ("29.4,112.4 29.4,112.4 29.4,112.4 29.4,112.4", "fewer than 3 distinct points"),
    ],
    ids=["bow-tie", "crossing-at-vertex", "spike", "collinear", "one-point"],
)
def test_polygons_that_cross_themselves_or_enclose_nothing(ring: str, words: str) -> None:
    body = load("geohazard-orange.xml").replace(SAMPLE_RING, ring.encode())
    err = rejects(lambda: parse_cap(body), "invalid", "info[0].area[0].polygon[0]")
    assert words in err.reason, err


def test_a_ring_touching_itself_at_a_vertex_is_accepted() -> None:
    # Two lobes meeting at one vertex, both turning the same way: the area is unambiguous.
    ring = "29.4,112.4 29.4,112.6 29.5,112.5 29.6,112.6 29.6,112.4 29.5,112.5 29.4,112.4"
    alert = parse_cap(load("geohazard-orange.xml").replace(SAMPLE_RING, ring.encode()))
    assert len(alert.infos[0].areas[0].polygons[0]) == 7


def test_too_large() -> None:
    body = load("rainstorm-red.xml")
    rejects(lambda: parse_cap(body, max_bytes=len(body) - 1), "too_large", None)


# --------------------------------------------------------------------------- invalid

# Each hand-made invalid file and what it must be rejected with: (code, field).
INVALID_CASES: dict[str, tuple[str, str | None]] = {
    "alert-without-namespace.xml": ("malformed", None),
    "bad-date.xml": ("invalid", "info[0].effective"),
    "bad-language.xml": ("invalid", "info[0].language"),
    "cancel-bad-references.xml": ("invalid", "references"),
    "cap-element-after-signature.xml": ("invalid", "note"),
    "cap10-geocode-without-equals.xml": ("invalid", "info[0].area[0].geocode[0]"),
    "cap10-responsetype.xml": ("invalid", "info[0].responseType"),
    "cap11-allclear.xml": ("invalid", "info[0].responseType[0]"),
    "cap11-z-time.xml": ("invalid", "sent"),
    "cap12-mimetype-missing.xml": ("invalid", "info[0].resource[0].mimeType"),
    "cap12-very-likely.xml": ("invalid", "info[0].certainty"),
    "category-after-event.xml": ("invalid", "info[0].category"),
    "ceiling-without-altitude.xml": ("invalid", "info[0].area[1].ceiling"),
    "circle-negative-radius.xml": ("invalid", "info[0].area[1].circle[0]"),
    "circle-without-radius.xml": ("invalid", "info[0].area[1].circle[0]"),
    "doctype.xml": ("malformed", None),
    "expires-before-effective.xml": ("invalid", "info[0].expires"),
    "expires-without-zone.xml": ("invalid", "info[0].expires"),
    "foreign-element-in-info.xml": ("invalid", "info[0].level"),
    "geocode-without-value.xml": ("invalid", "info[0].area[0].geocode[0].value"),
    "html-502.xml": ("malformed", None),
    "identifier-with-space.xml": ("invalid", "identifier"),
    "json-array.json": ("malformed", None),
    "json-bad-category.json": ("invalid", "info[0].category[0]"),
    "json-expires-without-zone.json": ("invalid", "info[0].expires"),
    "json-missing-event.json": ("invalid", "info[0].event"),
    "json-polygon-not-closed.json": ("invalid", "info[0].area[0].polygon[0]"),
    "json-truncated.json": ("malformed", None),
    "json-unknown-field.json": ("invalid", "info[0].area[0].colour"),
    "missing-category.xml": ("invalid", "info[0].category"),
    "missing-certainty.xml": ("invalid", "info[0].certainty"),
    "missing-sent.xml": ("invalid", "sent"),
    "not-well-formed.xml": ("malformed", None),
    "polygon-lat-out-of-range.xml": ("invalid", "info[0].area[1].polygon[0]"),
    "polygon-lon-lat-swapped-separator.xml": ("invalid", "info[0].area[1].polygon[0]"),
    "polygon-not-closed.xml": ("invalid", "info[0].area[1].polygon[0]"),
    "polygon-three-points.xml": ("invalid", "info[0].area[1].polygon[0]"),
    "private-without-addresses.xml": ("invalid", "addresses"),
    "references-self.xml": ("invalid", "references"),
    "resource-negative-size.xml": ("invalid", "info[0].resource[0].size"),
    "scope-missing.xml": ("invalid", "scope"),
    "scope-twice.xml": ("invalid", "scope"),
    "sender-with-comma.xml": ("invalid", "sender"),
    "sent-without-zone.xml": ("invalid", "sent"),
    "sent-z-cap12.xml": ("invalid", "sent"),
    "status-lowercase.xml": ("invalid", "status"),
    "text-between-elements.xml": ("invalid", "info[0]"),
    "unknown-alert-element.xml": ("invalid", "priority"),
    "unknown-info-element.xml": ("invalid", "info[0].colour"),
    "update-without-references.xml": ("invalid", "references"),
    "wrong-root.xml": ("malformed", None),
}


def test_every_invalid_file_has_an_expectation() -> None:
    assert sorted(p.name for p in INVALID.iterdir()) == sorted(INVALID_CASES)


@pytest.mark.parametrize(("name", "expected"), sorted(INVALID_CASES.items()))
def test_invalid_files(name: str, expected: tuple[str, str | None]) -> None:
    body = (INVALID / name).read_bytes()
    rejects(lambda: parse_alert(body), *expected)


def test_html_page_message_names_the_title() -> None:
    err = rejects(lambda: parse_cap((INVALID / "html-502.xml").read_bytes()), "malformed", None)
    assert str(err) == "expected CAP XML, got an HTML page: 502 Bad Gateway"


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        (b"<status>Actual</status>", b"<status>Draft</status><status>Actual</status>", "status"),
        (b"<scope>Public</scope>", b"<scope>Private</scope>", "addresses"),
        (b"<urgency>Immediate</urgency>", b"<urgency>Now</urgency>", "info[0].urgency"),
        (
            b"<category>Met</category>",
            b"<category>Met</category><category>Rain</category>",
            "info[0].category[1]",
        ),
        (b"<areaDesc>", b"<altitude>1</altitude><areaDesc>", "info[0].area[0].areaDesc"),
        (b"<headline>", b"<headline><b>x</b>", "info[0].headline"),
        (b"</info>", b"</info><info/>", "info[1].category"),
        (b"<sent>2026-08-02T04:00:00+08:00", b"<sent>2026-08-02T04:00:00+15:00", "sent"),
        (b"<sent>2026-08-02T04:00:00+08:00", b"<sent>2026-08-02 04:00:00+08:00", "sent"),
        (
            b"<expires>2026-08-02T16:00:00+08:00",
            b"<expires>2026-08-02T04:10:00+08:00",
            "info[0].expires",
        ),  # before onset (04:30)
    ],
)
def test_more_invalid_variants(old: bytes, new: bytes, field: str) -> None:
    body = load("rainstorm-red.xml")
    assert old in body
    rejects(lambda: parse_cap(body.replace(old, new, 1)), "invalid", field)
