"""Rules shared by the CAP XML and JSON forms: value sets per CAP version, date-times, checks.

`check_alert` is the single semantic gate: both parsers build an Alert, then call it, so a
rule holds whichever form the alert arrived in. Every rejection is an IngestError that names
the field with a CAP-style path (`info[0].area[1].polygon[0]`, `sent`, `references`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from enum import StrEnum
from itertools import chain
from typing import TypeVar

import numpy as np
import numpy.typing as npt
import shapely

from warnbus.domain.models import (
    Alert,
    Area,
    Category,
    Certainty,
    Info,
    MsgType,
    ResponseType,
    Scope,
    Severity,
    Status,
    Urgency,
)
from warnbus.errors import IngestError

#: Largest body accepted by default. Real national feeds carry polygons of ~800 KB.
DEFAULT_MAX_BODY = 4 * 1024 * 1024
#: Most <area> elements accepted in one alert (all infos together), by default. A county
#: has ~13 townships and ~100 villages, a province feed lists ~100 county codes; 1,000 leaves
#: room for a province listing its townships one area each. (`server.max_areas`)
DEFAULT_MAX_AREAS = 1000
#: Most polygon, circle and geocode entries in the areas of one alert, by default: a
#: province listing every village of a few counties stays under it. (`server.max_area_entries`)
DEFAULT_MAX_AREA_ENTRIES = 10_000

E = TypeVar("E", bound=StrEnum)


def invalid(field: str | None, message: str) -> IngestError:
    return IngestError("invalid", message, field)


def malformed(message: str) -> IngestError:
    return IngestError("malformed", message)


def check_size(size: int, max_bytes: int) -> None:
    if size > max_bytes:
        raise IngestError("too_large", f"body is {size} bytes; the limit is {max_bytes}")


def check_area_counts(
    per_info: Sequence[tuple[int, int]], max_areas: int, max_entries: int
) -> None:
    """Refuse an alert with too many areas, or too many entries in them, before reading them.

    `per_info` holds, for each info in order, its number of areas and of polygon, circle and
    geocode entries in them. The error (413 `too_large`) names the info where the limit is
    crossed, the count and the limit.
    """
    for index, (noun, limit, setting) in enumerate((
        ("areas", max_areas, "server.max_areas"),
        ("polygon, circle and geocode entries in its areas", max_entries,
         "server.max_area_entries"),
    )):
        total = sum(counts[index] for counts in per_info)
        if total <= limit:
            continue
        running = 0
        for i, counts in enumerate(per_info):
            running += counts[index]
            if running > limit:
                raise IngestError(
                    "too_large",
                    f"the alert has {total:,} {noun}; at most {limit:,} are accepted in one "
                    f"alert (setting {setting}): split it, or send the areas this engine "
                    "serves",
                    f"info[{i}].area",
                )


class OutsideRegistryError(IngestError):
    """A valid alert none of whose areas holds a grid of the registry (422 `outside_registry`).

    Raised by `intake.accept` for an Alert or Update, never for a Cancel.
    """

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__("outside_registry", message, field)


def show(value: str, limit: int = 60) -> str:
    """Quote a value for a message: one line, bounded length."""
    text = " ".join(value[: limit * 4].split())  # bounded work even for a 2 MB polygon
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return repr(text)


# --------------------------------------------------------------------------- versions


def _values(cls: type[E], *drop: E) -> Mapping[str, E]:
    return {m.value: m for m in cls if m not in drop}


@dataclass(frozen=True, slots=True)
class Rules:
    """What one CAP version allows. "json" (our own form) follows CAP 1.2, with RFC 3339 times."""

    version: str
    statuses: Mapping[str, Status]
    scopes: Mapping[str, Scope]
    categories: Mapping[str, Category]
    response_types: Mapping[str, ResponseType]
    certainties: Mapping[str, Certainty]
    utc_z: bool  # "Z" accepted as the UTC designator
    fraction: bool  # fractional seconds accepted


MSG_TYPES = _values(MsgType)
URGENCIES = _values(Urgency)
SEVERITIES = _values(Severity)

# Enumerations as the OASIS schemas of each version define them: 1.0 has no Draft, no CBRNE,
# no responseType and "Very Likely" instead of "Observed"; 1.2 added Avoid and AllClear.
# Dates: CAP 1.1 and 1.2 say "Alphabetic timezone designators such as Z MUST NOT be used"
# and the 1.2 schema pattern also forbids fractions; 1.0 used plain xs:dateTime (both allowed).
_CAP12 = Rules(
    version="1.2",
    statuses=_values(Status),
    scopes=_values(Scope),
    categories=_values(Category),
    response_types=_values(ResponseType),
    certainties=_values(Certainty, Certainty.VERY_LIKELY),
    utc_z=False,
    fraction=False,
)
RULES: Mapping[str, Rules] = {
    "1.0": Rules(
        version="1.0",
        statuses=_values(Status, Status.DRAFT),
        scopes=_values(Scope),
        categories=_values(Category, Category.CBRNE),
        response_types={},
        certainties=_values(Certainty, Certainty.OBSERVED),
        utc_z=True,
        fraction=True,
    ),
    "1.1": Rules(
        version="1.1",
        statuses=_values(Status),
        scopes=_values(Scope),
        categories=_values(Category),
        response_types=_values(ResponseType, ResponseType.AVOID, ResponseType.ALL_CLEAR),
        certainties=_values(Certainty, Certainty.VERY_LIKELY),
        utc_z=False,
        fraction=True,
    ),
    "1.2": _CAP12,
    "json": Rules(
        version="json",
        statuses=_CAP12.statuses,
        scopes=_CAP12.scopes,
        categories=_CAP12.categories,
        response_types=_CAP12.response_types,
        certainties=_CAP12.certainties,
        utc_z=True,
        fraction=True,
    ),
}


def pick(text: str, allowed: Mapping[str, E], field: str, version: str) -> E:
    """Map an enumeration value (exact, case-sensitive as in the schema) to its member."""
    member = allowed.get(text)
    if member is None:
        choices = ", ".join(allowed) or "none"
        raise invalid(field, f"{show(text)} is not allowed in CAP {version}; one of: {choices}")
    return member


def _check_member(value: StrEnum, allowed: Mapping[str, StrEnum], field: str, version: str) -> None:
    if allowed.get(value.value) is not value:
        pick(value.value, allowed, field, version)


# --------------------------------------------------------------------------- date-times

_DATETIME = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)?", re.ASCII
)


def parse_datetime(text: str, rules: Rules, field: str) -> datetime:
    """Parse a CAP date-time; the zone is required, "Z" and fractions only where allowed."""
    m = _DATETIME.fullmatch(text.strip())
    if m is None:
        raise invalid(field, f"{show(text)} is not a date-time like 2026-07-15T05:30:00+08:00")
    fraction, zone = m.group(7), m.group(8)
    if zone is None:
        raise invalid(field, f"date-time {show(text)} has no time zone; add an offset like +08:00")
    if zone == "Z":
        if not rules.utc_z:
            raise invalid(
                field,
                f"'Z' is not allowed in CAP {rules.version} ({show(text)}); write UTC as -00:00",
            )
        tz = UTC
    else:
        hours, minutes = int(zone[1:3]), int(zone[4:6])
        if minutes > 59 or hours * 60 + minutes > 14 * 60:
            raise invalid(field, f"time zone offset {zone} is out of range (-14:00..+14:00)")
        offset = timedelta(hours=hours, minutes=minutes)
        tz = timezone(-offset if zone[0] == "-" else offset)
    if fraction and not rules.fraction:
        raise invalid(
            field, f"fractional seconds are not allowed in CAP {rules.version}: {show(text)}"
        )
    micro = int((fraction[1:] + "000000")[:6]) if fraction else 0
    y, mo, d, h, mi, s = (int(g) for g in m.group(1, 2, 3, 4, 5, 6))
    try:
        value = datetime(y, mo, d, h, mi, s, micro, tzinfo=tz)
        value.astimezone(UTC)  # year 1 at +14:00 has no UTC instant
    except (ValueError, OverflowError):
        raise invalid(field, f"{show(text)} is not a valid date-time") from None
    return value


def _check_aware(value: datetime, field: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise invalid(field, f"date-time {value.isoformat()} has no time zone")
    try:
        value.astimezone(UTC)
    except OverflowError:
        raise invalid(field, f"date-time {value.isoformat()} is out of range") from None


# --------------------------------------------------------------------------- checks

# CAP: identifier and sender "MUST NOT include spaces, commas or restricted characters (< and &)".
_BAD_ID_CHAR = re.compile(r"[\s,<&]")
_LANGUAGE = re.compile(r"[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*", re.ASCII)  # xs:language
_NEEDS_REFERENCES = {
    MsgType.UPDATE: "updates",
    MsgType.CANCEL: "cancels",
    MsgType.ACK: "acknowledges",
    MsgType.ERROR: "rejects",
}


def check_id(value: str, field: str) -> None:
    if not value:
        raise invalid(field, "must not be empty")
    if _BAD_ID_CHAR.search(value):
        raise invalid(field, f"{show(value)} must not contain whitespace, ',', '<' or '&'")


def check_alert(alert: Alert) -> Alert:
    """Apply every semantic rule to a parsed alert; return it unchanged or raise IngestError."""
    rules = RULES.get(alert.cap_version)
    if rules is None:
        raise invalid("cap_version", f"{show(alert.cap_version)} is not one of: {', '.join(RULES)}")
    v = rules.version
    check_id(alert.identifier, "identifier")
    check_id(alert.sender, "sender")
    _check_aware(alert.sent, "sent")
    _check_member(alert.status, rules.statuses, "status", v)
    _check_member(alert.msg_type, MSG_TYPES, "msgType", v)
    _check_member(alert.scope, rules.scopes, "scope", v)
    # CAP: addresses are "required when scope is Private" (restriction is only "used when"
    # scope is Restricted, and validators merely warn about it, so it is not enforced).
    if alert.scope is Scope.PRIVATE and not alert.addresses:
        raise invalid("addresses", "required when scope is Private")
    _check_references(alert, rules)
    for i, info in enumerate(alert.infos):
        _check_info(info, alert.sent, rules, f"info[{i}]")
    return alert


def _check_references(alert: Alert, rules: Rules) -> None:
    verb = _NEEDS_REFERENCES.get(alert.msg_type)
    if verb and not alert.references:
        article = "an" if alert.msg_type[0] in "AEIOU" else "a"
        raise invalid(
            "references",
            f"{article} {alert.msg_type} message must reference the message(s) it {verb}",
        )
    for ref in alert.references:
        check_id(ref.sender, "references")
        check_id(ref.identifier, "references")
        parse_datetime(ref.sent, rules, "references")
        if ref.key == alert.key:
            raise invalid("references", f"the message references itself ({show(ref.identifier)})")


def _check_info(info: Info, sent: datetime, rules: Rules, path: str) -> None:
    v = rules.version
    if not info.categories:
        raise invalid(f"{path}.category", "at least one category is required")
    for j, category in enumerate(info.categories):
        _check_member(category, rules.categories, f"{path}.category[{j}]", v)
    for j, response in enumerate(info.response_types):
        _check_member(response, rules.response_types, f"{path}.responseType[{j}]", v)
    _check_member(info.urgency, URGENCIES, f"{path}.urgency", v)
    _check_member(info.severity, SEVERITIES, f"{path}.severity", v)
    _check_member(info.certainty, rules.certainties, f"{path}.certainty", v)
    if not _LANGUAGE.fullmatch(info.language):
        raise invalid(f"{path}.language", f"{show(info.language)} is not a language tag like zh-CN")
    times = (("effective", info.effective), ("onset", info.onset), ("expires", info.expires))
    for name, value in times:
        if value is not None:
            _check_aware(value, f"{path}.{name}")
    if info.expires is not None:
        for name, other in (("effective", info.effective), ("onset", info.onset), ("sent", sent)):
            if other is not None and info.expires < other:
                raise invalid(
                    f"{path}.expires",
                    f"expires {info.expires.isoformat()} is before {name} {other.isoformat()}",
                )
    for j, resource in enumerate(info.resources):
        if resource.size is not None and resource.size < 0:
            raise invalid(f"{path}.resource[{j}].size", f"size {resource.size} is negative")
    for j, area in enumerate(info.areas):
        check_area(area, f"{path}.area[{j}]")


def check_area(area: Area, path: str) -> None:
    for k, ring in enumerate(area.polygons):
        check_ring(ring, f"{path}.polygon[{k}]")
    for k, circle in enumerate(area.circles):
        field = f"{path}.circle[{k}]"
        check_points(((circle.lat, circle.lon),), field)
        if not (math.isfinite(circle.radius_km) and circle.radius_km >= 0):
            raise invalid(field, f"radius {circle.radius_km} km must be a number >= 0")
    for name, value in (("altitude", area.altitude), ("ceiling", area.ceiling)):
        if value is not None and not math.isfinite(value):
            raise invalid(f"{path}.{name}", f"{value} is not a finite number")
    if area.ceiling is not None:
        # CAP: ceiling "MAY only be used with altitude" and is the upper bound.
        if area.altitude is None:
            raise invalid(f"{path}.ceiling", "ceiling requires altitude")
        if area.altitude > area.ceiling:
            raise invalid(
                f"{path}.ceiling", f"ceiling {area.ceiling} is below altitude {area.altitude}"
            )


def check_ring(ring: tuple[tuple[float, float], ...], field: str) -> None:
    """A CAP polygon: at least 4 (lat, lon) points, closed (first == last), in range, simple."""
    if len(ring) < 4:
        raise invalid(field, f"a polygon needs at least 4 points (closed ring); got {len(ring)}")
    if ring[0] != ring[-1]:
        first, last = ring[0], ring[-1]
        raise invalid(
            field,
            f"polygon is not closed: first point {first[0]},{first[1]} "
            f"differs from last point {last[0]},{last[1]}",
        )
    check_points(ring, field)
    check_simple(ring, field)


_WHERE = re.compile(r"\[(\S+) (\S+)\]")


#: Points converted per C call by `lonlat`: each call holds the GIL (~1 ms for these);
#: the 200,000 points of the largest ring in one call held it ~15 ms.
RING_PIECE = 16_384


def lonlat(ring: Sequence[tuple[float, float]]) -> npt.NDArray[np.float64]:
    """A ring of (lat, lon) as a contiguous (n, 2) array of (lon, lat), RING_PIECE points
    converted at a time."""
    out = np.empty((len(ring), 2))
    for start in range(0, len(ring), RING_PIECE):
        part = ring[start : start + RING_PIECE]
        flat = np.fromiter(chain.from_iterable(part), dtype=float, count=2 * len(part))
        out[start : start + len(part)] = flat.reshape(-1, 2)[:, ::-1]
    return out


def check_simple(ring: tuple[tuple[float, float], ...], field: str) -> None:
    """The ring encloses an area and does not cross itself (GEOS validity, O(n log n)).

    A crossing ring (a bow-tie, a scribble) is ambiguous: which side is "inside" is a guess,
    and a guess decides who is called. A ring that only touches itself at a vertex, with
    every lobe turning the same way, bounds an unambiguous area and is accepted (matching
    normalises it); one that crosses itself through a vertex is refused like any crossing.
    """
    polygon = shapely.polygons(lonlat(ring))
    if shapely.is_valid(polygon):
        if shapely.area(polygon) > 0:
            return
        # Valid to GEOS but an area that underflows to 0 (coordinates like 1e-42 apart).
        raise invalid(field, "the polygon encloses no area (its area rounds to zero)")
    reason = shapely.is_valid_reason(polygon)
    if reason.startswith("Too few points"):
        raise invalid(field, "the polygon has fewer than 3 distinct points: it encloses no area")
    if shapely.area(shapely.convex_hull(polygon)) == 0:
        raise invalid(field, "the polygon encloses no area: all its points lie on one line")
    if reason.startswith("Ring Self-intersection"):
        # Touching: the ring's signed area is the area it bounds. Crossing through a vertex:
        # lobes of opposite turn cancel out in the signed area.
        bounded = shapely.area(shapely.make_valid(polygon))
        if bounded == 0:
            raise invalid(field, "the polygon encloses no area: its boundary only runs out "
                          "and back over itself")
        if math.isclose(shapely.area(polygon), bounded, rel_tol=1e-9):
            return
    m = _WHERE.search(reason)
    near = f" near ({_deg(m.group(2))}, {_deg(m.group(1))})" if m else ""  # GEOS: lon lat
    if reason.startswith(("Self-intersection", "Ring Self-intersection")):
        raise invalid(
            field,
            f"the polygon crosses itself{near}; a CAP polygon must be a simple ring: "
            "redraw it, or send one polygon per part",
        )
    raise invalid(field, f"the polygon is not valid: {reason.split('[', 1)[0]}{near}")


def _deg(text: str) -> str:
    """A coordinate for a message: at most 5 decimals (about a metre), no trailing zeros."""
    try:
        return f"{float(text):.5f}".rstrip("0").rstrip(".")
    except ValueError:
        return text[:20]


def check_points(points: Iterable[tuple[float, float]], field: str) -> None:
    for n, (lat, lon) in enumerate(points):
        # Written so that NaN fails too.
        if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
            raise invalid(
                field, f"point {n} ({lat},{lon}) is out of range: lat -90..90, lon -180..180"
            )
