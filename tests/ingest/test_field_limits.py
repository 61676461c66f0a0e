"""Every CAP text field, repeated element and polygon ring has a limit, in both forms.

Each case builds an alert from the red rainstorm fixture with one field at its limit (accepted)
and one over it (refused, naming the field and the limit), then writes it as CAP XML
(`feeds.capxml`) and as JSON, and parses both. Counts over the limit are 413 `too_large`, a
text over its limit 422 `invalid`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import msgspec
import pytest

from tests.ingest.helpers import FIXTURES, SHARED_FILES, VALID_FILES, ids, rejects
from warnbus.domain.models import Alert, Area, Category, Info, Reference, Resource, ResponseType
from warnbus.feeds.capxml import alert_to_cap
from warnbus.ingest import alert_to_json, parse_alert, parse_cap, parse_json
from warnbus.ingest.limits import COUNT_LIMITS, MAX_EXTENSIONS, MAX_RING_POINTS, TEXT_LIMITS

BASE = parse_cap((FIXTURES / "rainstorm-red.xml").read_bytes())
INFO = BASE.infos[0]
SENT = "2026-07-15T05:30:00+08:00"
BIG = 16 * 1024 * 1024  # body limit for the cases that are large on purpose


def alert(**fields: object) -> Alert:
    return msgspec.structs.replace(BASE, **fields)


def info(**fields: object) -> Alert:
    return alert(infos=(msgspec.structs.replace(INFO, **fields),))


def area(**fields: object) -> Alert:
    return info(areas=(msgspec.structs.replace(INFO.areas[0], **fields), *INFO.areas[1:]))


def language(n: int) -> str:
    """A valid language tag of exactly `n` characters (subtags of at most 8)."""
    tag = "zh"
    while n - len(tag) > 9:
        tag += "-abcdefgh"
    return tag + "-" + "a" * (n - len(tag) - 1) if n - len(tag) > 1 else tag + "a" * (n - len(tag))


def resource(**fields: object) -> Alert:
    return info(resources=(Resource(**{"desc": "map", "mime_type": "image/png", **fields}),))


@dataclass(frozen=True)
class Case:
    name: str  # the TEXT_LIMITS or COUNT_LIMITS entry
    path: str
    build: Callable[[int], Alert]


Text = Count = Case
TEXTS = [
    Text("identifier", "identifier", lambda n: alert(identifier="i" * n)),
    Text("sender", "sender", lambda n: alert(sender="s" * n)),
    Text("source", "source", lambda n: alert(source="源" * n)),
    Text("restriction", "restriction", lambda n: alert(restriction="限" * n)),
    Text("addresses", "addresses", lambda n: alert(addresses="a" * n)),
    Text("code", "code[1]", lambda n: alert(codes=("IPAWSv1", "c" * n))),
    Text("note", "note", lambda n: alert(note="注" * n)),
    Text("incidents", "incidents", lambda n: alert(incidents="x" * n)),
    Text("sender", "references",
         lambda n: alert(references=(Reference("s" * n, "id-1", SENT),))),
    Text("identifier", "references",
         lambda n: alert(references=(Reference("a@b", "i" * n, SENT),))),
    Text("language", "info[0].language", lambda n: info(language=language(n))),
    Text("event", "info[0].event", lambda n: info(event="暴" * n)),
    Text("audience", "info[0].audience", lambda n: info(audience="众" * n)),
    Text("senderName", "info[0].senderName", lambda n: info(sender_name="台" * n)),
    Text("headline", "info[0].headline", lambda n: info(headline="暴" * n)),
    Text("description", "info[0].description", lambda n: info(description="雨" * n)),
    Text("instruction", "info[0].instruction", lambda n: info(instruction="撤" * n)),
    Text("web", "info[0].web", lambda n: info(web="https://x.cn/" + "a" * (n - 13))),
    Text("contact", "info[0].contact", lambda n: info(contact="电" * n)),
    Text("valueName", f"info[0].parameter[{len(INFO.parameters)}].valueName",
         lambda n: info(parameters=(*INFO.parameters, ("n" * n, "v")))),
    Text("value", f"info[0].parameter[{len(INFO.parameters)}].value",
         lambda n: info(parameters=(*INFO.parameters, ("n", "值" * n)))),
    Text("valueName", "info[0].eventCode[0].valueName",
         lambda n: info(event_codes=(("n" * n, "v"),))),
    Text("value", "info[0].eventCode[0].value", lambda n: info(event_codes=(("n", "v" * n),))),
    Text("valueName", "info[0].area[0].geocode[0].valueName",
         lambda n: area(geocodes=(("n" * n, "430623101000"),))),
    Text("value", "info[0].area[0].geocode[0].value",
         lambda n: area(geocodes=(("TOWNSHIP", "4" * n),))),
    Text("resourceDesc", "info[0].resource[0].resourceDesc", lambda n: resource(desc="图" * n)),
    Text("mimeType", "info[0].resource[0].mimeType",
         lambda n: resource(mime_type="image/" + "p" * (n - 6))),
    Text("uri", "info[0].resource[0].uri",
         lambda n: resource(uri="https://x.cn/" + "a" * (n - 13))),
    Text("digest", "info[0].resource[0].digest", lambda n: resource(digest="f" * n)),
    Text("areaDesc", "info[0].area[0].areaDesc", lambda n: area(desc="区" * n)),
]


def forms(a: Alert) -> list[tuple[str, Callable[[], Alert]]]:
    xml, js = alert_to_cap(a), alert_to_json(a)
    return [("xml", lambda: parse_cap(xml, max_bytes=BIG)),
            ("json", lambda: parse_json(js, max_bytes=BIG))]


def at_and_over(case: Case, limit: int, code: str, says: str) -> None:
    """At `limit` both forms parse; one over, both refuse with `code`, the path and `says`."""
    for _form, parse in forms(case.build(limit)):
        parse()
    for form, parse in forms(case.build(limit + 1)):
        err = rejects(parse, code, case.path)
        assert err.http_status == {"invalid": 422, "too_large": 413}[code]
        assert says in err.reason and f"at most {limit:,}" in err.reason, (form, err)


@pytest.mark.parametrize("case", TEXTS, ids=[c.path for c in TEXTS])
def test_a_text_at_its_limit_is_accepted_and_one_more_character_is_422(case: Text) -> None:
    limit = TEXT_LIMITS[case.name]
    at_and_over(case, limit, "invalid", f"{limit + 1:,} characters;")


def test_every_text_field_of_the_model_has_a_limit() -> None:
    """A text field added to the model without a limit fails here (and the table is used)."""
    cap_names = {"desc": {"Area": "areaDesc", "Resource": "resourceDesc"},
                 "sender_name": "senderName", "mime_type": "mimeType",
                 "codes": "code", "event_codes": "eventCode"}
    # Enumerations are held to their values, date-times and numbers to their syntax.
    not_text = {"cap_version", "sent"}
    tested = {c.name for c in TEXTS}
    for cls in (Alert, Info, Area, Resource, Reference):
        for field in msgspec.structs.fields(cls):
            if field.name in not_text or field.type not in (str, str | None):
                continue
            name = cap_names.get(field.name, field.name)
            name = name[cls.__name__] if isinstance(name, dict) else name
            assert name in TEXT_LIMITS, f"{cls.__name__}.{field.name} has no limit"
    assert tested == set(TEXT_LIMITS), set(TEXT_LIMITS) ^ tested


def _refs(n: int) -> tuple[Reference, ...]:
    return tuple(Reference("a@b", f"id-{i}", SENT) for i in range(n))


COUNTS = [
    Count("info", "info", lambda n: alert(infos=(INFO,) * n)),
    Count("code", "code", lambda n: alert(codes=("c",) * n)),
    Count("references", "references", lambda n: alert(references=_refs(n))),
    Count("category", "info[0].category", lambda n: info(categories=(Category.MET,) * n)),
    Count("responseType", "info[0].responseType",
          lambda n: info(response_types=(ResponseType.EVACUATE,) * n)),
    Count("eventCode", "info[0].eventCode", lambda n: info(event_codes=(("a", "b"),) * n)),
    Count("parameter", "info[0].parameter", lambda n: info(parameters=(("a", "b"),) * n)),
    Count("resource", "info[0].resource",
          lambda n: info(resources=(Resource("map", "image/png"),) * n)),
]


@pytest.mark.parametrize("case", COUNTS, ids=[c.path for c in COUNTS])
def test_a_count_at_its_limit_is_accepted_and_one_more_is_413(case: Count) -> None:
    limit = COUNT_LIMITS[case.name]
    at_and_over(case, limit, "too_large", f"{limit + 1:,} ")


def test_every_repeated_element_of_the_model_has_a_limit() -> None:
    """A repeated field added without a limit fails here (areas and their entries: settings)."""
    settings = {"areas", "polygons", "circles", "geocodes"}
    cap = {"infos": "info", "codes": "code", "categories": "category",
           "response_types": "responseType", "event_codes": "eventCode",
           "parameters": "parameter", "resources": "resource", "references": "references"}
    for cls in (Alert, Info, Area):
        for field in msgspec.structs.fields(cls):
            if getattr(field.type, "__origin__", None) is tuple and field.name not in settings:
                assert cap.get(field.name) in COUNT_LIMITS, f"{cls.__name__}.{field.name}"
    assert {c.name for c in COUNTS} == set(COUNT_LIMITS)


def _ring(n: int) -> tuple[tuple[float, float], ...]:
    """A closed ring of `n` points: a regular polygon around the sample county's centre."""
    import math

    pts = [(round(29.5 + 0.2 * math.sin(2 * math.pi * i / (n - 1)), 5),
            round(112.6 + 0.2 * math.cos(2 * math.pi * i / (n - 1)), 5)) for i in range(n - 1)]
    return (*pts, pts[0])


def test_a_ring_at_its_limit_is_accepted_and_one_more_point_is_413() -> None:
    at = area(polygons=(_ring(MAX_RING_POINTS),))
    for _form, parse in forms(at):
        assert len(parse().infos[0].areas[0].polygons[0]) == MAX_RING_POINTS
    for form, parse in forms(area(polygons=(_ring(MAX_RING_POINTS + 1),))):
        err = rejects(parse, "too_large", "info[0].area[0].polygon[0]")
        assert f"{MAX_RING_POINTS + 1:,} points" in err.reason, (form, err)


def test_xml_extension_elements_are_bounded() -> None:
    xml = alert_to_cap(BASE).decode()
    one = '<x:a xmlns:x="urn:x"/>'
    parse_cap(xml.replace("</alert>", one * MAX_EXTENSIONS + "</alert>").encode())
    err = rejects(lambda: parse_cap(xml.replace("</alert>", one * 50_000 + "</alert>").encode()),
                  "too_large", "alert")
    assert f"50,000 extension elements; at most {MAX_EXTENSIONS}" in err.reason


# --------------------------------------------------------------------------- cost


def _timed(parse: Callable[[], Alert]) -> float:
    """The CPU seconds a refused parse costs (a busy machine's wait is not the parser's)."""
    start = time.thread_time()
    with pytest.raises(Exception):  # noqa: B017 (rejects() checks the error; here: the time)
        parse()
    return time.thread_time() - start


def test_a_100k_character_headline_is_refused_in_well_under_a_tenth_of_a_second() -> None:
    a = info(headline="暴" * 100_000, description="雨" * 100_000)
    for form, parse in forms(a):
        rejects(parse, "invalid", "info[0].headline")
        took = min(_timed(parse) for _ in range(3))  # best of 3: a shared machine
        assert took < 0.02, f"{form}: {took * 1000:.1f} ms"


@pytest.mark.parametrize("form", ["xml", "json"])
def test_a_body_of_repeated_elements_is_refused_before_they_are_read(form: str) -> None:
    """~4 MB of parameters: refused at the count, long before 60,000 pairs are read."""
    if form == "xml":
        xml = alert_to_cap(BASE).decode()
        one = "<parameter><valueName>a</valueName><value>b</value></parameter>"
        body = xml.replace("<area>", one * 60_000 + "<area>", 1).encode()
    else:
        body = alert_to_json(info(parameters=(("a", "b"),) * 400_000))
    assert 2_000_000 < len(body) < 4 * 1024 * 1024
    err = rejects(lambda: parse_alert(body), "too_large", "info[0].parameter")
    assert "at most 200" in err.reason
    took = min(_timed(lambda: parse_alert(body)) for _ in range(3))
    assert took < 0.5, f"{took:.2f}s"  # the XML/JSON decode itself is most of it


# --------------------------------------------------------------------------- real alerts


@pytest.mark.parametrize("path", VALID_FILES + SHARED_FILES, ids=ids(VALID_FILES + SHARED_FILES))
def test_real_alerts_are_far_inside_every_limit(path: object) -> None:
    """Every shipped and shared sample parses, each text at most a third of its limit (the
    longest real identifier, NWS's, is 69 characters of 256)."""
    from pathlib import Path

    assert isinstance(path, Path)
    a = parse_alert(path.read_bytes())
    texts: list[tuple[str, str | None]] = [("identifier", a.identifier), ("sender", a.sender),
                                           ("note", a.note)]
    for i in a.infos:
        texts += [("headline", i.headline), ("description", i.description),
                  ("instruction", i.instruction), ("event", i.event)]
        texts += [("areaDesc", ar.desc) for ar in i.areas]
        texts += [("value", v) for _, v in i.parameters]
    for name, value in texts:
        assert len(value or "") * 3 <= TEXT_LIMITS[name], (name, len(value or ""))
    assert isinstance(a.sent, datetime)
