"""Property: for any bytes, the parsers return an Alert or raise IngestError, nothing else.

And every Alert they return survives the JSON round trip. Inputs: arbitrary bytes, and the
project's own valid CAP and JSON fixtures mutated: bytes flipped, inserted and deleted, XML
and JSON fragments spliced in at tag boundaries, element texts replaced, elements dropped or
doubled, values swapped in the JSON tree. A long run: WARNBUS_FUZZ_EXAMPLES=20000. The
coverage-guided run (atheris) is tests/fuzz/.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from lxml import etree

from tests.ingest.helpers import FIXTURES, VALID_FILES
from warnbus.errors import IngestError
from warnbus.ingest import alert_to_json, parse_alert, parse_json
from warnbus.ingest.checks import check_ring

SEEDS = [p.read_bytes() for p in VALID_FILES if p.suffix == ".xml"]
JSON_BYTES = [p.read_bytes() for p in VALID_FILES if p.suffix == ".json"]
JSON_SEEDS = [json.loads(b) for b in JSON_BYTES]
#: The only codes a parser may answer with (warnbus.errors.IngestError.HTTP_STATUS).
PARSE_CODES = {"malformed", "invalid", "too_large", "unsupported_type"}
CONTENT_TYPES = st.sampled_from([None, "application/cap+xml", "text/xml", "application/json"])
# WARNBUS_FUZZ_EXAMPLES=20000 for a long run; no example database, so no files in the tree.
FUZZ = settings(
    max_examples=int(os.environ.get("WARNBUS_FUZZ_EXAMPLES", "300")),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# Characters that reach deep into the value parsers (dates, coordinates, enums, references).
XML_CHARS = st.characters(
    exclude_categories=("Cs", "Cc"), exclude_characters="\ufffe\uffff"
) | st.sampled_from("\t\n")
VALUE_TEXT = st.text(alphabet="0123456789+-.,:TZ ZAaE\t\n<&=/_", max_size=40) | st.text(
    XML_CHARS, max_size=20
)


def outcome(body: bytes, content_type: str | None = None, **limits: int) -> None:
    """Parse; only a typed IngestError may come out, with a one-line message."""
    try:
        alert = parse_alert(body, content_type, **limits)
    except IngestError as err:
        assert type(err) is IngestError, type(err)
        assert err.code in PARSE_CODES, err.code
        assert err.message and "\n" not in str(err)
        return
    assert parse_json(alert_to_json(alert)) == alert


@FUZZ
@given(body=st.binary(max_size=2000), content_type=CONTENT_TYPES)
def test_arbitrary_bytes(body: bytes, content_type: str | None) -> None:
    outcome(body, content_type)


@FUZZ
@given(
    seed=st.sampled_from(SEEDS),
    edits=st.lists(
        st.tuples(st.integers(0, 10**6), st.integers(0, 40), st.binary(max_size=12)), max_size=4
    ),
)
def test_mutated_bytes(seed: bytes, edits: list[tuple[int, int, bytes]]) -> None:
    body = seed
    for at, cut, insert in edits:
        at %= len(body) + 1
        body = body[:at] + insert + body[at + cut :]
    outcome(body)


@FUZZ
@given(seed=st.sampled_from(SEEDS), data=st.data())
def test_mutated_element_text(seed: bytes, data: st.DataObject) -> None:
    root = etree.fromstring(seed)
    elements = [el for el in root.iter() if isinstance(el.tag, str)]
    for _ in range(data.draw(st.integers(1, 3))):
        el = data.draw(st.sampled_from(elements))
        action = data.draw(st.sampled_from(["text", "drop", "dup"]))
        parent = el.getparent()
        if action == "text" or parent is None:
            el.text = data.draw(VALUE_TEXT)
        elif action == "drop":
            parent.remove(el)
            elements = [e for e in root.iter() if isinstance(e.tag, str)]
        else:
            parent.insert(parent.index(el), etree.fromstring(etree.tostring(el)))
    outcome(etree.tostring(root, encoding="UTF-8", xml_declaration=True))


# Pieces of XML that reach the parser's defences and the CAP reader's corners.
XML_FRAGMENTS = [
    b"<area><areaDesc>x</areaDesc></area>",
    b"<polygon>29.4,112.4 29.6,112.6 29.4,112.6 29.6,112.4 29.4,112.4</polygon>",  # bow-tie
    b"<polygon>29.4,112.4 29.5,112.5 29.6,112.6 29.4,112.4</polygon>",  # collinear
    b"<polygon>nan,nan 1,1 2,2 nan,nan</polygon>",
    b"<polygon>1e400,1 2,2 3,1 1e400,1</polygon>",
    b"<circle>29.5,112.5 -1</circle>",
    b"<circle>29.5,112.5 1e999</circle>",
    b"<geocode><valueName>TOWNSHIP</valueName><value>430623101000</value></geocode>",
    b"<sent>9999-12-31T23:59:59+14:00</sent>",
    b"<expires>0001-01-01T00:00:00+14:00</expires>",
    b"<references>a,b,c a,b</references>",
    b"<!DOCTYPE alert [<!ENTITY x 'y'>]>",
    b"<!DOCTYPE alert SYSTEM 'file:///dev/zero'>",
    b"&x;",
    b"&amp;&lt;&#0;&#x10FFFF;&#xD800;",
    b"<![CDATA[<alert>]]>",
    b"<!-- comment -->",
    b"<?pi data?>",
    b'<x:y xmlns:x="urn:x"><b/></x:y>',
    b'<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="/etc/passwd"/>',
    b'<Signature xmlns="http://www.w3.org/2000/09/xmldsig#"/>',
    b"<info>",
    b"</info>",
    b"</alert>",
    b"<alert>" * 300,
    b'<?xml version="1.0" encoding="UTF-16"?>',
    b'<?xml version="1.1" encoding="EBCDIC"?>',
    b"\xef\xbb\xbf",
    b"\xff\xfe\x00<",
    b"\x00",
    b"\xed\xa0\x80",  # an encoded surrogate
    b"<html><title>502</title></html>",
]
JSON_FRAGMENTS = [
    b'{"x":',
    b"[[[[[[[[",
    b"]]]]}}}}",
    b"1e999",
    b"-0",
    b"NaN",
    b"null",
    b'"\\ud800"',
    b'"polygons": [[[1e308, 1e308]]],',
    b'"areas": [{"desc": "a"}],',
    b'"geocodes": {"a": 1},',
    b'"cap_version": "9.9",',
    b'"msg_type": "Cancel",',
    b"\xef\xbb\xbf",
    b"<alert>",
]
EDITS = st.lists(
    st.tuples(st.integers(0, 10**6), st.integers(0, 40), st.binary(max_size=12)), max_size=4
)


def _edit(body: bytes, edits: list[tuple[int, int, bytes]]) -> bytes:
    for at, cut, insert in edits:
        at %= len(body) + 1
        body = body[:at] + insert + body[at + cut :]
    return body


def _splice(body: bytes, data: st.DataObject, fragments: list[bytes], marks: bytes) -> bytes:
    """Insert fragments at token boundaries (before a `marks` byte), or anywhere."""
    for _ in range(data.draw(st.integers(1, 3))):
        starts = [i for i, b in enumerate(body) if b in marks] or [0]
        at = data.draw(st.sampled_from(starts) | st.integers(0, len(body)))
        cut = data.draw(st.sampled_from([0, 0, 1, 8, 64]))
        body = body[:at] + data.draw(st.sampled_from(fragments)) + body[at + cut :]
    return body


@FUZZ
@given(seed=st.sampled_from(SEEDS), data=st.data())
def test_xml_fragments_spliced_into_real_alerts(seed: bytes, data: st.DataObject) -> None:
    outcome(_splice(seed, data, XML_FRAGMENTS, b"<"), data.draw(CONTENT_TYPES))


@FUZZ
@given(seed=st.sampled_from(SEEDS + JSON_BYTES), flips=st.lists(st.integers(0, 10**6),
                                                                  min_size=1, max_size=8))
def test_bit_flips(seed: bytes, flips: list[int]) -> None:
    body = bytearray(seed)
    for f in flips:
        body[(f >> 3) % len(body)] ^= 1 << (f & 7)
    outcome(bytes(body))


@FUZZ
@given(seed=st.sampled_from(JSON_BYTES), edits=EDITS, data=st.data())
def test_mutated_json_bytes(seed: bytes, edits: list[tuple[int, int, bytes]],
                            data: st.DataObject) -> None:
    body = _splice(_edit(seed, edits), data, JSON_FRAGMENTS, b'{[",:')
    outcome(body, data.draw(st.sampled_from([None, "application/json"])))


@FUZZ
@given(seed=st.sampled_from(SEEDS + JSON_BYTES), copies=st.integers(0, 40),
       max_areas=st.integers(1, 30), max_entries=st.integers(1, 60))
def test_area_limits_hold_for_any_count(
    seed: bytes, copies: int, max_areas: int, max_entries: int
) -> None:
    """Copies of an alert's first area: accepted within the limits, `too_large` beyond."""
    if seed.lstrip(b"\xef\xbb\xbf \n").startswith(b"{"):
        doc = json.loads(seed)
        areas = doc["infos"][0]["areas"]
        areas.extend([areas[0]] * copies)
        body = json.dumps(doc, ensure_ascii=False).encode()
    else:
        root = etree.fromstring(seed)
        area = root.find(".//{*}area")
        assert area is not None
        for _ in range(copies):
            area.addnext(etree.fromstring(etree.tostring(area)))
        body = etree.tostring(root, encoding="UTF-8", xml_declaration=True)
    try:
        alert = parse_alert(body, max_areas=max_areas, max_area_entries=max_entries)
    except IngestError as err:
        assert err.code == "too_large" and err.field is not None, err
        assert err.field.endswith(".area"), err
        return
    areas_ = [a for info in alert.infos for a in info.areas]
    assert len(areas_) <= max_areas
    assert sum(len(a.polygons) + len(a.circles) + len(a.geocodes) for a in areas_) <= max_entries


COORD = st.floats(-1e3, 1e3) | st.floats() | st.sampled_from(
    [0.0, 29.5, 112.5, 90.0, -90.0, 180.0, -180.0, 1e-300, 29.500000000000004]
)


@FUZZ
@given(points=st.lists(st.tuples(COORD, COORD), min_size=0, max_size=12),
       close=st.booleans())
@example(points=[(1.0, 0.0), (0.0, 1.0), (4.605674952648916e-42, 1.0)], close=True)  # found
@example(points=[(0.0, 2.0), (2.0, 1.0), (2.0, 0.0), (2.0, 1.0)], close=True)  # found
def test_any_ring_is_accepted_as_simple_or_refused_with_a_reason(
    points: list[tuple[float, float]], close: bool
) -> None:
    """check_ring on arbitrary rings: a typed error, or a ring GEOS finds valid/self-touching."""
    import shapely

    ring = tuple(points + points[:1]) if close else tuple(points)
    try:
        check_ring(ring, "polygon")
    except IngestError as err:
        assert err.code == "invalid" and err.field == "polygon", err
        assert "\n" not in str(err)
        return
    assert len(ring) >= 4 and ring[0] == ring[-1]
    assert all(math.isfinite(v) for p in ring for v in p)
    polygon = shapely.Polygon([(lon, lat) for lat, lon in ring])
    # Accepted: simple, or touching itself without changing the area it bounds.
    assert polygon.area > 0
    assert math.isclose(polygon.area, shapely.make_valid(polygon).area, rel_tol=1e-9)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | VALUE_TEXT,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def _slots(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key/index path in a JSON document."""
    out = [path]
    items = (
        node.items()
        if isinstance(node, dict)
        else enumerate(node)
        if isinstance(node, list)
        else []
    )
    for key, child in items:
        out.extend(_slots(child, (*path, key)))
    return out


@FUZZ
@given(seed=st.sampled_from(JSON_SEEDS), data=st.data())
def test_mutated_json(seed: dict[str, Any], data: st.DataObject) -> None:
    doc = json.loads(json.dumps(seed))
    path = data.draw(st.sampled_from(_slots(doc)[1:]))
    node = doc
    for key in path[:-1]:
        node = node[key]
    if data.draw(st.booleans()):
        node[path[-1]] = data.draw(JSON_VALUES)
    elif isinstance(node, dict):
        del node[path[-1]]
    else:
        node.pop(path[-1])
    outcome(json.dumps(doc, ensure_ascii=False).encode(), "application/json")


def test_seeds_are_valid() -> None:
    assert SEEDS and JSON_SEEDS
    for body in SEEDS:
        parse_alert(body)
    assert (FIXTURES / "rainstorm-red.json").exists()
