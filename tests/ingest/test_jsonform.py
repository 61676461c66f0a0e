"""The JSON form: equivalence with CAP, round trips, strict decoding with CAP-style error paths."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from tests.engine.helpers import cap_alert
from tests.ingest.helpers import FIXTURES, SHARED_FILES, VALID_FILES, ids, rejects
from warnbus.domain.models import Alert
from warnbus.errors import IngestError
from warnbus.ingest import alert_to_json, jsonform, parse_alert, parse_cap, parse_json
from warnbus.ingest.jsonform import cap_path
from warnbus.ingest.limits import MAX_RING_POINTS
from warnbus.tools.bench.hostile_loads import Target, build

ROUND_TRIP = VALID_FILES + SHARED_FILES


@pytest.mark.parametrize("name", ["rainstorm-red", "geohazard-orange"])
def test_json_equivalents_match_their_cap(name: str) -> None:
    from_cap = parse_cap((FIXTURES / f"{name}.xml").read_bytes())
    from_json = parse_json((FIXTURES / f"{name}.json").read_bytes())
    assert from_json.cap_version == "json"
    assert from_json == msgspec.structs.replace(from_cap, cap_version="json")


@pytest.mark.parametrize("path", ROUND_TRIP, ids=ids(ROUND_TRIP))
def test_round_trip(path: Path) -> None:
    alert = parse_alert(path.read_bytes())
    encoded = alert_to_json(alert)
    assert parse_json(encoded) == alert
    assert parse_json(encoded.decode()) == alert  # str accepted too
    assert parse_alert(encoded, "application/json; charset=utf-8") == alert


def doc() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / "geohazard-orange.json").read_bytes())
    return data


def body(data: dict[str, Any]) -> bytes:
    return json.dumps(data, ensure_ascii=False).encode()


def _set(path: str, value: Any) -> Any:
    def mutate(data: dict[str, Any]) -> None:
        *parents, last = path.split("/")
        node: Any = data
        for key in parents:
            node = node[int(key)] if key.isdigit() else node[key]
        if value is _DELETE:
            del node[last]
        else:
            node[int(last) if last.isdigit() else last] = value

    return mutate


_DELETE = object()


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (_set("colour", "red"), "colour"),
        (
            _set("infos/0/areas/0/circles", [{"lat": 1, "lon": 2, "radius_km": 3, "r": 1}]),
            "info[0].area[0].circle[0].r",
        ),
        (
            _set("references", [{"sender": "a", "identifier": "b", "sent": "c", "x": 1}]),
            "references",
        ),
        (_set("sent", "2026-08-03T17:00:00"), "sent"),
        (_set("sent", "yesterday"), "sent"),
        (_set("infos/0/onset", "2026-08-03T20:00:00"), "info[0].onset"),
        (_set("infos/0/expires", "2026-08-03T16:00:00+08:00"), "info[0].expires"),
        (_set("status", "actual"), "status"),
        (_set("msg_type", "Update"), "references"),
        (_set("infos/0/categories", []), "info[0].category"),
        (_set("infos/0/certainty", "Very Likely"), "info[0].certainty"),  # CAP 1.0 only
        (_set("infos/0/response_types", ["Leave"]), "info[0].responseType[0]"),
        (_set("infos/0/areas/0/desc", 5), "info[0].area[0].areaDesc"),
        (_set("infos/0/areas/0/polygons/0/2", [29.5, 200.0]), "info[0].area[0].polygon[0]"),
        (_set("infos/0/areas/0/polygons/0/2", [29.5]), "info[0].area[0].polygon[0][2]"),
        (
            _set("infos/0/areas/0/polygons/0", [[29.4, 112.7], [29.4, 112.7]]),
            "info[0].area[0].polygon[0]",
        ),
        (
            _set("infos/0/areas/0/circles", [{"lat": 29.5, "lon": 112.6, "radius_km": -1}]),
            "info[0].area[0].circle[0]",
        ),
        (
            _set("infos/0/resources", [{"desc": "map", "mime_type": "image/png", "size": -1}]),
            "info[0].resource[0].size",
        ),
        (_set("infos/0/resources", [{"desc": "map"}]), "info[0].resource[0].mimeType"),
        (_set("infos/0/event", _DELETE), "info[0].event"),
        (_set("identifier", "a b"), "identifier"),
        (_set("sender", "x&y"), "sender"),
        (_set("cap_version", "2.0"), "cap_version"),
        (_set("infos/0/language", ""), "info[0].language"),
    ],
)
def test_invalid_json(mutate: Any, field: str) -> None:
    data = doc()
    mutate(data)
    rejects(lambda: parse_json(body(data)), "invalid", field)


@pytest.mark.parametrize(
    "raw",
    [b"", b"{", b"null", b"[]", b'"alert"', b"\xff{}", b"[" * 200_000 + b"]" * 200_000, "\ud800"],
)
def test_malformed_json(raw: bytes | str) -> None:
    rejects(lambda: parse_json(raw), "malformed", None)


def test_cap_version_is_kept_when_given() -> None:
    data = doc()
    data["cap_version"] = "1.0"
    data["infos"][0]["certainty"] = "Very Likely"
    data["infos"][0]["response_types"] = []
    assert parse_json(body(data)).cap_version == "1.0"


def test_utc_z_and_offsets_are_accepted() -> None:
    data = doc()
    data["sent"] = "2026-08-03T09:00:00Z"
    alert = parse_json(body(data))
    assert alert.sent.utcoffset() is not None and alert.sent.hour == 9


@pytest.mark.parametrize(
    ("json_path", "field"),
    [
        ("$.infos[0].areas[1].polygons[0]", "info[0].area[1].polygon[0]"),
        ("$.infos[2].resources[0].desc", "info[2].resource[0].resourceDesc"),
        ("$.infos[0].event_codes[1][0]", "info[0].eventCode[1][0]"),
        ("$.references[3].sent", "references"),
        ("$.msg_type", "msgType"),
        ("$", None),
    ],
)
def test_cap_path(json_path: str, field: str | None) -> None:
    assert cap_path(json_path) == field


_MINIMAL = {  # a valid item of each list of records, for the walk below
    "Circle": {"lat": 29.5, "lon": 112.6, "radius_km": 1},
    "Resource": {"desc": "map", "mime_type": "image/png"},
    "Reference": {"sender": "a@b", "identifier": "x", "sent": "2026-08-03T17:00:00+08:00"},
}


def _record_lists(cls: type, trail: tuple[tuple[str, str], ...] = ()
                  ) -> list[tuple[tuple[str, str], ...]]:
    """Every list of records in the model, at any depth, as its trail of (key, record)."""
    out = []
    info = msgspec.inspect.type_info(cls)
    assert isinstance(info, msgspec.inspect.StructType)
    for f in info.fields:
        t = f.type
        if isinstance(t, msgspec.inspect.VarTupleType | msgspec.inspect.ListType) and isinstance(
                t.item_type, msgspec.inspect.StructType):
            here = (*trail, (f.encode_name, t.item_type.cls.__name__))
            out += [here, *_record_lists(t.item_type.cls, here)]
    return out


TRAILS = _record_lists(Alert)


@pytest.mark.parametrize("trail", TRAILS, ids=[".".join(k for k, _ in t) for t in TRAILS])
def test_an_unknown_key_is_refused_in_every_record(trail: tuple[tuple[str, str], ...]) -> None:
    """Found from the model, so a list of records added to it is checked too."""
    data = doc()
    node: Any = data
    for key, record in trail:
        if not node.get(key):
            node[key] = [dict(_MINIMAL[record])]
        node = node[key][0]
    node["colour"] = "red"
    field = cap_path("$" + "".join(f".{key}[0]" for key, _ in trail) + ".colour")
    err = rejects(lambda: parse_json(body(data)), "invalid", field)
    assert "unknown field 'colour'" in err.reason


def test_the_largest_alert_is_decoded_in_pieces_to_the_same_alert() -> None:
    """Level by level, each polygon in pieces of RING_PIECE points: the alert a single
    decode of the whole document gives, and an error names the same point."""
    villages = tuple(f"430623{t:03d}{v:03d}" for t in range(101, 114) for v in range(201, 208))
    body = build("max_accepted", Target("http://x", "t", villages, ()), 2, 0)[1].body
    alert = parse_json(body)
    whole = msgspec.json.decode(body, type=Alert)
    assert alert == whole
    ring = alert.infos[0].areas[0].polygons[0]
    assert len(ring) > 4 * jsonform.RING_PIECE
    bad = body.replace(b"]]]", b"],[1,\"x\"]]]", 1)
    with pytest.raises(IngestError) as e:
        parse_json(bad)
    assert e.value.field == f"info[0].area[0].polygon[0][{len(ring)}][1]", e.value.field


def test_a_polygon_over_its_points_is_refused_before_it_is_decoded() -> None:
    small = alert_to_json(cap_alert())
    doc = msgspec.json.decode(small)
    doc["infos"][0]["areas"][0]["polygons"] = [[[0, 0]] * (MAX_RING_POINTS + 1)]
    with pytest.raises(IngestError) as e:
        parse_json(msgspec.json.encode(doc))
    assert (e.value.code, e.value.field) == ("too_large", "info[0].area[0].polygon[0]")


def test_a_large_polygon_is_encoded_in_pieces_to_the_same_bytes() -> None:
    villages = tuple(f"430623{t:03d}{v:03d}" for t in range(101, 114) for v in range(201, 208))
    body = build("max_accepted", Target("http://x", "t", villages, ()), 1, 0)[0].body
    alert = parse_cap(body, max_bytes=len(body))
    assert len(alert.infos[0].areas[0].polygons[0]) > 4 * jsonform.RING_PIECE
    assert alert_to_json(alert) == msgspec.json.encode(alert)
