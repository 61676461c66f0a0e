"""How much of each CAP field an alert may carry: characters per text, elements per parent.

Both forms are held to one table. Text limits are in characters (a Chinese character is one),
chosen from what real feeds carry with wide headroom: CMA and county feeds write descriptions of
a few hundred characters, the longest sample here (NWS) 634, and a headline of 100; polygons of
national feeds reach ~40,000 points (800 KB). A field over its limit is 422 `invalid`; too many
elements, entries or points is 413 `too_large`; both name the field (`info[0].headline`,
`info[0].parameter`) and the limit.

The XML reader counts repeated elements as it groups them and refuses at the first one over the
limit (`count_limit`), and counts a ring's points and the references' entries before it splits
them, so per-element work never grows past the table; `check_limits` then walks the finished
Alert (both forms) before the semantic checks and the geometry run. The area limits of
`checks.check_area_counts` (`server.max_areas`, `server.max_area_entries`) are settings and are
counted earlier still, in C for XML.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from warnbus.domain.models import Alert, Area, Info
from warnbus.errors import IngestError

#: Most characters of each text field, by CAP element name (valueName/value: of a parameter,
#: eventCode or geocode; code: each <code>).
TEXT_LIMITS: Mapping[str, int] = {
    "identifier": 256,
    "sender": 256,
    "source": 1_000,
    "restriction": 4_000,
    "addresses": 16_000,
    "code": 256,
    "note": 8_000,
    "incidents": 16_000,
    "language": 64,
    "event": 500,
    "audience": 2_000,
    "senderName": 500,
    "headline": 1_000,
    "description": 16_000,
    "instruction": 8_000,
    "web": 2_048,
    "contact": 1_000,
    "valueName": 256,
    "value": 4_000,
    "resourceDesc": 1_000,
    "mimeType": 256,
    "uri": 4_096,
    "digest": 256,
    "areaDesc": 4_000,
}

#: Most occurrences of each repeated element in its parent (references: entries of the field).
#: <area> and the polygon/circle/geocode entries in areas are bounded per alert by settings.
COUNT_LIMITS: Mapping[str, int] = {
    "info": 100,
    "code": 100,
    "references": 500,
    "category": 20,
    "responseType": 20,
    "eventCode": 100,
    "parameter": 200,
    "resource": 100,
}

#: Most elements of other namespaces ending <alert> (real feeds carry one XML-DSig <Signature>).
MAX_EXTENSIONS = 16
#: Most points of one polygon ring (a national feed's 800 KB polygon has ~40,000).
MAX_RING_POINTS = 200_000


def too_long(field: str, length: int, limit: int) -> IngestError:
    return IngestError(
        "invalid", f"{length:,} characters; at most {limit:,} are accepted", field)


def too_many(field: str, what: str, count: int, limit: int) -> IngestError:
    return IngestError("too_large", f"{count:,} {what}; at most {limit:,} are accepted", field)


def check_count(name: str, count: int, field: str) -> None:
    """Refuse more than the table's number of <name> elements (of `references`: entries)."""
    limit = COUNT_LIMITS[name]
    if count > limit:
        what = "entries" if name == "references" else f"<{name}> elements"
        raise too_many(field, what, count, limit)


def check_ring_points(count: int, field: str) -> None:
    if count > MAX_RING_POINTS:
        raise too_many(field, "points in the polygon", count, MAX_RING_POINTS)


def check_text(name: str, value: str | None, field: str) -> None:
    if value is not None and len(value) > (limit := TEXT_LIMITS[name]):
        raise too_long(field, len(value), limit)


def check_limits(alert: Alert) -> Alert:
    """Refuse an alert with a field, a count or a ring over the table; return it unchanged.

    Counts are checked before the elements they count are walked, so the walk is bounded by
    the table whatever the alert holds.
    """
    for name in ("identifier", "sender", "source", "restriction", "addresses", "note",
                 "incidents"):
        check_text(name, getattr(alert, name), name)
    check_count("code", len(alert.codes), "code")
    for i, code in enumerate(alert.codes):
        check_text("code", code, f"code[{i}]")
    check_count("references", len(alert.references), "references")
    for ref in alert.references:  # (their `sent` is a date-time: parsed by a regex, linear)
        check_text("sender", ref.sender, "references")
        check_text("identifier", ref.identifier, "references")
    check_count("info", len(alert.infos), "info")
    for i, info in enumerate(alert.infos):
        _check_info(info, f"info[{i}]")
    return alert


_INFO_TEXTS = (
    ("language", "language"), ("event", "event"), ("audience", "audience"),
    ("senderName", "sender_name"), ("headline", "headline"), ("description", "description"),
    ("instruction", "instruction"), ("web", "web"), ("contact", "contact"),
)


def _check_info(info: Info, path: str) -> None:
    for name, attr in _INFO_TEXTS:
        check_text(name, getattr(info, attr), f"{path}.{name}")
    check_count("category", len(info.categories), f"{path}.category")
    check_count("responseType", len(info.response_types), f"{path}.responseType")
    for name, pairs in (("eventCode", info.event_codes), ("parameter", info.parameters)):
        check_count(name, len(pairs), f"{path}.{name}")
        _check_pairs(pairs, f"{path}.{name}")
    check_count("resource", len(info.resources), f"{path}.resource")
    for j, res in enumerate(info.resources):
        where = f"{path}.resource[{j}]"
        check_text("resourceDesc", res.desc, f"{where}.resourceDesc")
        check_text("mimeType", res.mime_type, f"{where}.mimeType")
        check_text("uri", res.uri, f"{where}.uri")
        check_text("digest", res.digest, f"{where}.digest")
    for j, area in enumerate(info.areas):  # how many: checks.check_area_counts, earlier
        _check_area(area, f"{path}.area[{j}]")


def _check_area(area: Area, path: str) -> None:
    check_text("areaDesc", area.desc, f"{path}.areaDesc")
    for k, ring in enumerate(area.polygons):
        check_ring_points(len(ring), f"{path}.polygon[{k}]")
    _check_pairs(area.geocodes, f"{path}.geocode")


def _check_pairs(pairs: Sequence[tuple[str, str]], path: str) -> None:
    for k, (name, value) in enumerate(pairs):
        check_text("valueName", name, f"{path}[{k}].valueName")
        check_text("value", value, f"{path}[{k}].value")
