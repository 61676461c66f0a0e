"""Area limits (a 100k-area alert) and self-crossing polygons, in both forms, at parse time."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.ingest.helpers import FIXTURES, rejects
from tests.timing import cpu_seconds
from warnbus.ingest import (
    DEFAULT_MAX_AREA_ENTRIES,
    DEFAULT_MAX_AREAS,
    DEFAULT_MAX_BODY,
    parse_alert,
    parse_cap,
    parse_json,
)
from warnbus.runtime.config import ServerSettings, load_settings

RED = (FIXTURES / "rainstorm-red.xml").read_text(encoding="utf-8")
AREA_START = "<area>"
ONE_AREA = "<area><areaDesc>a</areaDesc></area>"


def cap_with_areas(n: int, extra: str = "") -> bytes:
    """rainstorm-red with `n` bare areas before its own (which has 3 geocodes)."""
    return RED.replace(AREA_START, ONE_AREA * n + extra + AREA_START, 1).encode()


def json_doc() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / "rainstorm-red.json").read_bytes())
    return data


def test_defaults_agree_with_the_settings() -> None:
    server = ServerSettings()
    assert (server.max_areas, server.max_area_entries, server.max_body_bytes) == (
        DEFAULT_MAX_AREAS, DEFAULT_MAX_AREA_ENTRIES, DEFAULT_MAX_BODY)


def test_limits_are_settings(tmp_path: Any) -> None:
    conf = tmp_path / "w.toml"
    conf.write_text("[server]\nmax_areas = 50\nmax_area_entries = 500\n")
    s = load_settings(conf, env={})
    assert (s.server.max_areas, s.server.max_area_entries) == (50, 500)
    conf.write_text("[server]\nmax_areas = 0\n")
    with pytest.raises(Exception, match="max_areas"):
        load_settings(conf, env={})


def test_at_the_limit_is_accepted() -> None:
    alert = parse_cap(cap_with_areas(DEFAULT_MAX_AREAS - 1))
    assert len(alert.infos[0].areas) == DEFAULT_MAX_AREAS


def test_one_area_too_many_is_413_naming_count_and_limit() -> None:
    err = rejects(lambda: parse_cap(cap_with_areas(DEFAULT_MAX_AREAS)), "too_large",
                  "info[0].area")
    assert err.http_status == 413
    assert "1,001 areas" in err.reason and "at most 1,000" in err.reason
    assert "server.max_areas" in err.reason


def test_a_100k_area_alert_is_refused_before_its_areas_are_read() -> None:
    body = cap_with_areas(100_000)
    assert 3_000_000 < len(body) < DEFAULT_MAX_BODY
    err, took = cpu_seconds(lambda: rejects(lambda: parse_alert(body), "too_large",
                                            "info[0].area"))
    assert "100,001 areas" in err.reason, err
    assert took < 1.0, f"{took:.2f}s"  # the XML parse and a count; reading them took ~8 s


def test_the_limit_names_the_info_where_it_is_crossed() -> None:
    info = RED[RED.index("<info>"): RED.index("</info>") + len("</info>")]
    body = RED.replace(info, info * 3).encode()  # 3 infos of 1 area each
    rejects(lambda: parse_cap(body, max_areas=2), "too_large", "info[2].area")
    assert len(parse_cap(body, max_areas=3).infos) == 3


def test_too_many_entries() -> None:
    geocode = "<geocode><valueName>TOWNSHIP</valueName><value>430623101000</value></geocode>"
    body = RED.replace("</areaDesc>", "</areaDesc>" + geocode * 20, 1).encode()
    parse_cap(body, max_area_entries=23)  # 20 + the 3 of the fixture
    err = rejects(lambda: parse_cap(body, max_area_entries=22), "too_large", "info[0].area")
    assert "23 polygon, circle and geocode entries" in err.reason
    assert "server.max_area_entries" in err.reason


def test_json_limits() -> None:
    doc = json_doc()
    doc["infos"][0]["areas"] = [{"desc": "a"}] * 1500 + doc["infos"][0]["areas"]
    body = json.dumps(doc, ensure_ascii=False).encode()
    err = rejects(lambda: parse_json(body), "too_large", "info[0].area")
    assert "1,501 areas" in err.reason
    assert len(parse_json(body, max_areas=1501).infos[0].areas) == 1501
    doc = json_doc()
    doc["infos"][0]["areas"][0]["geocodes"] *= 10  # 30 entries
    body = json.dumps(doc, ensure_ascii=False).encode()
    rejects(lambda: parse_alert(body, "application/json", max_area_entries=29), "too_large",
            "info[0].area")


def test_json_counting_ignores_wrong_types_and_lets_the_conversion_name_them() -> None:
    doc = json_doc()
    doc["infos"][0]["areas"] = "everywhere"
    rejects(lambda: parse_json(json.dumps(doc).encode(), max_areas=1), "invalid",
            "info[0].area")
    doc = json_doc()
    doc["infos"][0]["areas"][0]["geocodes"] = {"x": 1}
    rejects(lambda: parse_json(json.dumps(doc).encode(), max_area_entries=1), "invalid",
            "info[0].area[0].geocode")


def test_json_self_crossing_polygon_names_the_field() -> None:
    doc = json_doc()
    doc["infos"][0]["areas"].append({
        "desc": "bow",
        "polygons": [[[29.35, 112.35], [29.75, 112.85], [29.75, 112.35], [29.35, 112.85],
                      [29.35, 112.35]]],
    })
    err = rejects(lambda: parse_json(json.dumps(doc).encode()), "invalid",
                  "info[0].area[1].polygon[0]")
    assert "crosses itself near (29.55, 112.6)" in err.reason
