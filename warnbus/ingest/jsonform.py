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
from typing import Any, TypeVar

import msgspec

from warnbus.domain.models import Alert, Area, Circle, Info, Reference, Resource
from warnbus.ingest.checks import (
    DEFAULT_MAX_AREA_ENTRIES,
    DEFAULT_MAX_AREAS,
    DEFAULT_MAX_BODY,
    check_alert,
    check_area_counts,
    check_size,
    invalid,
    malformed,
    show,
)
from warnbus.ingest.limits import MAX_RING_POINTS, check_count, check_limits, check_ring_points
from warnbus.ingest.safexml import html_error, html_page_title

_ENCODER = msgspec.json.Encoder()
T = TypeVar("T")
S = TypeVar("S", bound=msgspec.Struct)

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
_JSON_NAMES = {cap: name for name, cap in _CAP_NAMES.items()}
_SEGMENT = re.compile(r"\.([A-Za-z_]\w*)|\[(\d+)\]")


def alert_to_json(alert: Alert) -> bytes:
    """Encode an alert in the JSON form (UTF-8).

    A polygon of more than RING_PIECE points is encoded RING_PIECE points per call: the
    largest alert in one call held the GIL ~20 ms (of the event loop, or of a worker
    thread the loop then waited for).
    """
    if not any(len(ring) > RING_PIECE for info in alert.infos for area in info.areas
               for ring in area.polygons):
        return _ENCODER.encode(alert)
    infos = tuple(msgspec.structs.replace(info, areas=tuple(_raw_rings(a) for a in info.areas))
                  for info in alert.infos)
    return _ENCODER.encode(msgspec.structs.replace(alert, infos=infos))


def alert_from_json(blob: bytes) -> Alert:
    """Decode an alert's JSON form as `alert_to_json` wrote it (already checked: no limits,
    no semantic checks), a level at a time and each polygon in pieces (see `_decode_alert`)."""
    return _decode_alert(blob)


def _raw_rings(area: Area) -> Area:
    """`area` with its polygons as JSON already encoded (msgspec writes Raw as it is)."""
    if all(len(ring) <= RING_PIECE for ring in area.polygons):
        return area
    rings: Any = tuple(msgspec.Raw(b"[" + b",".join(
        _ENCODER.encode(ring[i : i + RING_PIECE])[1:-1] for i in range(0, len(ring), RING_PIECE)
    ) + b"]") for ring in area.polygons)
    return msgspec.structs.replace(area, polygons=rings)


def parse_json(
    body: bytes | str,
    *,
    max_bytes: int = DEFAULT_MAX_BODY,
    max_areas: int = DEFAULT_MAX_AREAS,
    max_area_entries: int = DEFAULT_MAX_AREA_ENTRIES,
) -> Alert:
    """Parse the JSON form; raise IngestError (malformed/invalid/too_large).

    The document's structure is decoded first, its values left raw: unknown keys are refused
    and the areas and other elements counted before any value is decoded. The other limits
    (`limits.check_limits`) are checked on the decoded alert, before the semantic checks.
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
    # Typed decodes only, never an untyped one: a decode holds the GIL, and 4 MB of tiny
    # JSON values made into Python objects held it (and the API's event loop) for ~0.5 s.
    given = _check_structure(body, max_areas, max_area_entries)
    alert = _decode_alert(body)
    if "cap_version" not in given:
        alert = msgspec.structs.replace(alert, cap_version="json")
    return check_alert(check_limits(alert))


_JSON_TYPES = {"array": "list", "str": "str", "int": "int", "float": "float", "bool": "bool",
               "null": "NoneType"}


def _decode(body: bytes | msgspec.Raw, cls: type[T], at: str = "$") -> T:
    """Decode `body` (the value at JSON path `at`) as `cls`; errors name the field in CAP
    terms (`info[0].event`)."""
    try:
        return msgspec.json.decode(body, type=cls)
    except msgspec.ValidationError as exc:
        message, _, where = str(exc).partition(" - at `")
        root = re.fullmatch(r"Expected `object`, got `(\w+)`", message)
        if root and not where and at == "$":
            got = _JSON_TYPES.get(root.group(1), root.group(1))
            raise malformed(f"expected a JSON object (an alert), got {got}") from None
        path = at + where.rstrip("`")[1:] if where else at
        field = cap_path(path) if path != "$" else None
        unknown = re.fullmatch(r"Object contains unknown field `(.*)`", message, re.DOTALL)
        if unknown:
            name = unknown.group(1)
            raise invalid(cap_path(f"{path}.{name}"), f"unknown field {show(name)}") from None
        missing = re.search(r"missing required field `(\w+)`", message)
        if missing:
            field = _join(field, cap_path("$." + missing.group(1)))
        raise invalid(field, message) from None
    except (msgspec.DecodeError, RecursionError) as exc:
        whole = bytes(body) if isinstance(body, msgspec.Raw) else body
        if "UTF-8" in str(exc):
            raise malformed(f"not valid JSON: {_not_utf8(whole)}") from None
        raise malformed(f"not valid JSON: {exc}") from None
    except UnicodeDecodeError:  # msgspec raises it for a string that is not UTF-8
        whole = bytes(body) if isinstance(body, msgspec.Raw) else body
        raise malformed(f"not valid JSON: {_not_utf8(whole)}") from None


#: Points of a polygon decoded per call (each call holds the GIL: ~2 ms for these).
RING_PIECE = 16_384
_RING = msgspec.json.Decoder(tuple[tuple[float, float], ...])


def _decode_alert(body: bytes) -> Alert:
    """Decode the alert typed, a level at a time, each polygon in pieces.

    One decode of the whole document held the GIL for as long as it took: ~30 ms for the
    largest alert accepted (1,000 areas, a 135,000-point polygon), every request and timer
    of the API's event loop waiting meanwhile (in a worker thread as much as on the loop).
    Here no call makes more than a level of one area, or RING_PIECE points.
    """
    top = _decode(body, _shell(Alert, "infos"))
    infos = []
    for i, raw_info in enumerate(top.infos):
        at = f"$.infos[{i}]"
        info = _decode(raw_info, _shell(Info, "areas"), at)
        areas = []
        for j, raw_area in enumerate(info.areas):
            where = f"{at}.areas[{j}]"
            area = _decode(raw_area, _shell(Area, "polygons"), where)
            rings = tuple(_decode_ring(raw, f"{where}.polygons[{k}]")
                          for k, raw in enumerate(area.polygons))
            areas.append(_whole(Area, area, polygons=rings))
        infos.append(_whole(Info, info, areas=tuple(areas)))
    return _whole(Alert, top, infos=tuple(infos))


def _decode_ring(raw: msgspec.Raw, at: str) -> tuple[tuple[float, float], ...]:
    """A polygon's points, RING_PIECE at a time, counted before any is decoded."""
    points = bytes(raw).count(b"[") - 1
    if points > MAX_RING_POINTS:
        check_ring_points(points, cap_path(at) or "polygon")
    items = _decode(raw, list[msgspec.Raw], at)
    out: list[tuple[float, float]] = []
    for start in range(0, len(items), RING_PIECE):
        part = items[start : start + RING_PIECE]
        try:
            out += _RING.decode(b"[" + b",".join(part) + b"]")
        except (msgspec.ValidationError, msgspec.DecodeError):
            for k, point in enumerate(part):  # name the point, as a whole decode would
                _decode(point, tuple[float, float], f"{at}[{start + k}]")
            raise
    return tuple(out)


@cache
def _shell(cls: type, raw: str) -> type[Any]:
    """The model record `cls` with its list field `raw` left undecoded (raw items)."""
    fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []
    for f in _fields(cls):
        if f.name == raw:
            fields.append((f.name, list[msgspec.Raw], []))
        elif f.default is msgspec.NODEFAULT:
            fields.append((f.name, f.type))
        else:
            fields.append((f.name, f.type, f.default))
    return msgspec.defstruct(f"{cls.__name__}Shell", fields, kw_only=True,
                             rename={f.name: f.encode_name for f in _fields(cls)})


@cache
def _fields(cls: type) -> tuple[msgspec.structs.FieldInfo, ...]:
    # Cached: each call evaluates the class's annotations again (~0.2 ms).
    return msgspec.structs.fields(cls)


def _whole(cls: type[S], shell: Any, **decoded: Any) -> S:
    """The record `cls` of a shell's fields and the `decoded` ones it left raw."""
    values = {f.name: getattr(shell, f.name) for f in _fields(cls)}
    return cls(**(values | decoded))


def _not_utf8(body: bytes) -> str:
    """Where a body stops being UTF-8 (RFC 8259: JSON text exchanged between systems is);
    "" when it is UTF-8 throughout."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"the body is not UTF-8: byte 0x{body[exc.start]:02x} at offset {exc.start}"
    return ""


def _check_structure(body: bytes, max_areas: int, max_area_entries: int) -> frozenset[str]:
    """Refuse unknown keys, wrong containers and too many elements, level by level; return
    the alert's keys.

    Each level is decoded with its values kept raw (`_mirror`) and its lists counted before
    any item of them is decoded, so the work is bounded by the limits, not by the body: 4 MB
    of empty infos or areas costs one pass of the decoder over them, not a million objects.
    """
    alert: Any = _decode(body, _mirror(Alert))
    check_count("info", len(alert.infos), "info")
    check_count("code", len(alert.codes), "code")
    check_count("references", len(alert.references), "references")
    infos: list[Any] = []
    for i, raw in enumerate(alert.infos):
        info = _decode(raw, _mirror(Info), f"$.infos[{i}]")
        for name in ("category", "responseType", "eventCode", "parameter", "resource"):
            check_count(name, len(getattr(info, _JSON_NAMES[name])), f"info[{i}].{name}")
        infos.append(info)
    check_area_counts([(len(info.areas), 0) for info in infos], max_areas, max_area_entries)
    entries: list[tuple[int, int]] = []
    for i, info in enumerate(infos):
        areas = [_decode(raw, _mirror(Area), f"$.infos[{i}].areas[{j}]")
                 for j, raw in enumerate(info.areas)]
        entries.append((len(areas), sum(len(a.polygons) + len(a.circles) + len(a.geocodes)
                                        for a in areas)))
        for j, area in enumerate(areas):
            for k, raw in enumerate(area.circles):
                _decode(raw, _mirror(Circle), f"$.infos[{i}].areas[{j}].circles[{k}]")
        for j, raw in enumerate(info.resources):
            _decode(raw, _mirror(Resource), f"$.infos[{i}].resources[{j}]")
    check_area_counts(entries, max_areas, max_area_entries)
    for k, raw in enumerate(alert.references):
        _decode(raw, _mirror(Reference), f"$.references[{k}]")
    return frozenset(f.encode_name for f in msgspec.structs.fields(alert)
                     if len(getattr(alert, f.name)))


@cache
def _mirror(cls: type) -> type[Any]:
    """A Struct with the fields of the model record `cls`, unknown fields forbidden, every
    value kept raw (undecoded), lists as lists of raw items (empty if absent): one level of
    the document, decoded at little cost, to check before its values are."""
    info = msgspec.inspect.type_info(cls)
    assert isinstance(info, msgspec.inspect.StructType)
    fields: list[tuple[str, Any, Any]] = []
    for f in info.fields:
        if isinstance(f.type, msgspec.inspect.VarTupleType | msgspec.inspect.ListType):
            fields.append((f.encode_name, list[msgspec.Raw], ()))
        else:
            fields.append((f.encode_name, msgspec.Raw, msgspec.Raw()))  # absent: empty
    return msgspec.defstruct(f"{cls.__name__}Level", fields, forbid_unknown_fields=True,
                             kw_only=True)


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
