"""The JSON form of an alert: models.Alert encoded by msgspec, snake_case, enums by value.

`parse_json(alert_to_json(a)) == a` for every valid alert. Decoding is strict: unknown keys
are errors at any depth, types are checked by msgspec against the model itself (so the form
cannot drift from it), then the same semantic checks as CAP run. Error paths use the CAP
vocabulary (`info[0].area[1].polygon[0]`), the same as for CAP input, so one 422 reads the
same whichever form the feed sent. A document without `cap_version` is marked "json".
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

import msgspec

from warnbus.ingest.checks import (
    DEFAULT_MAX_AREA_ENTRIES,
    DEFAULT_MAX_AREAS,
    DEFAULT_MAX_BODY,
    check_alert,
    check_area_counts,
    check_size,
    invalid,
    malformed,
)
from warnbus.ingest.limits import COUNT_LIMITS, check_count, check_limits
from warnbus.ingest.safexml import html_error, html_page_title
from warnbus.models import Alert

_ENCODER = msgspec.json.Encoder()

# JSON field name -> CAP element name, for error paths.
_CAP_NAMES = {
    "infos": "info",
    "areas": "area",
    "resources": "resource",
    "polygons": "polygon",
    "circles": "circle",
    "geocodes": "geocode",
    "parameters": "parameter",
    "event_codes": "eventCode",
    "categories": "category",
    "response_types": "responseType",
    "codes": "code",
    "msg_type": "msgType",
    "sender_name": "senderName",
    "mime_type": "mimeType",
}
_DESC = {"area": "areaDesc", "resource": "resourceDesc"}
_SEGMENT = re.compile(r"\.([A-Za-z_]\w*)|\[(\d+)\]")


def alert_to_json(alert: Alert) -> bytes:
    """Encode an alert in the JSON form (UTF-8)."""
    return _ENCODER.encode(alert)


def parse_json(
    body: bytes | str,
    *,
    max_bytes: int = DEFAULT_MAX_BODY,
    max_areas: int = DEFAULT_MAX_AREAS,
    max_area_entries: int = DEFAULT_MAX_AREA_ENTRIES,
) -> Alert:
    """Parse the JSON form; raise IngestError (malformed/invalid/too_large).

    The area limits are checked on the decoded document, before it is converted; the other
    limits (`limits.check_limits`) on the converted alert, before anything walks it in Python.
    """
    if isinstance(body, str):
        try:
            body = body.encode("utf-8")
        except UnicodeEncodeError:
            raise malformed("not valid JSON: the text is not encodable as UTF-8") from None
    check_size(len(body), max_bytes)
    body = body.removeprefix(b"\xef\xbb\xbf")  # RFC 8259 lets a parser ignore a BOM
    title = html_page_title(body)
    if title is not None:
        raise html_error("JSON", title)
    try:
        raw = msgspec.json.decode(body)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise malformed(f"not valid JSON: {exc}") from None
    except UnicodeDecodeError:  # msgspec raises it for a string that is not UTF-8
        raise malformed(f"not valid JSON: {_not_utf8(body)}") from None
    if not isinstance(raw, dict):
        raise malformed(f"expected a JSON object (an alert), got {type(raw).__name__}")
    if isinstance(infos := raw.get("infos"), list):
        check_count("info", len(infos), "info")
    check_area_counts(_area_counts(raw, max_areas), max_areas, max_area_entries)
    _reject_unknown(raw, Alert, "$")
    raw.setdefault("cap_version", "json")
    try:
        alert = msgspec.convert(raw, Alert)
    except msgspec.ValidationError as exc:
        message, _, where = str(exc).partition(" - at `")
        field = cap_path(where.rstrip("`")) if where else None
        missing = re.search(r"missing required field `(\w+)`", message)
        if missing:
            field = _join(field, cap_path("$." + missing.group(1)))
        raise invalid(field, message) from None
    return check_alert(check_limits(alert))


def _not_utf8(body: bytes) -> str:
    """Where a body stops being UTF-8 (RFC 8259: JSON text exchanged between systems is)."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"the body is not UTF-8: byte 0x{body[exc.start]:02x} at offset {exc.start}"
    return "the body is not UTF-8"


def _area_counts(raw: dict[str, Any], max_areas: int) -> list[tuple[int, int]]:
    """Per info: its areas and their polygon/circle/geocode entries (wrong types count 0:
    the conversion that follows names them). Once the areas are over `max_areas`, their
    entries are not counted (0): the areas alone refuse the alert."""
    infos = raw.get("infos")
    out = []
    total = 0
    for info in infos if isinstance(infos, list) else ():
        areas = info.get("areas") if isinstance(info, dict) else None
        areas = areas if isinstance(areas, list) else []
        total += len(areas)
        entries = 0 if total > max_areas else sum(
            len(value)
            for area in areas
            if isinstance(area, dict)
            for key in ("polygons", "circles", "geocodes")
            if isinstance(value := area.get(key), list)
        )
        out.append((len(areas), entries))
    return out


@cache
def _shape(cls: type) -> tuple[frozenset[str], dict[str, type]]:
    """Field names of a model Struct, and which fields hold sequences of nested Structs."""
    info = msgspec.inspect.type_info(cls)
    assert isinstance(info, msgspec.inspect.StructType)
    nested: dict[str, type] = {}
    for f in info.fields:
        t = f.type
        if isinstance(t, msgspec.inspect.VarTupleType | msgspec.inspect.ListType) and isinstance(
            t.item_type, msgspec.inspect.StructType
        ):
            nested[f.encode_name] = t.item_type.cls
    return frozenset(f.encode_name for f in info.fields), nested


def _reject_unknown(obj: dict[str, Any], cls: type, path: str) -> None:
    """Unknown keys are errors at every depth (the model Structs themselves allow them).

    A list of records is counted (`limits.COUNT_LIMITS`) before it is walked: the walk is
    bounded by the table, not by the body."""
    names, nested = _shape(cls)
    for key in obj:
        if key not in names:
            raise invalid(cap_path(f"{path}.{key}"), f"unknown field {key!r}")
    for key, item_cls in nested.items():
        items = obj.get(key)
        if isinstance(items, list):
            if (name := _CAP_NAMES.get(key, key)) in COUNT_LIMITS:
                check_count(name, len(items), cap_path(f"{path}.{key}") or name)
            for i, item in enumerate(items):
                if isinstance(item, dict):
                    _reject_unknown(item, item_cls, f"{path}.{key}[{i}]")


def cap_path(json_path: str) -> str | None:
    """`$.infos[0].areas[1].desc` -> `info[0].area[1].areaDesc`; any reference -> `references`."""
    out = ""
    parent = ""
    for m in _SEGMENT.finditer(json_path):
        name, index = m.group(1), m.group(2)
        if name is None:
            out += f"[{index}]"
            continue
        if name == "references" and not out:
            return "references"
        cap = _DESC.get(parent, name) if name == "desc" else _CAP_NAMES.get(name, name)
        out = f"{out}.{cap}" if out else cap
        parent = cap
    return out or None


def _join(head: str | None, tail: str | None) -> str | None:
    if head and tail:
        return f"{head}.{tail}"
    return head or tail
