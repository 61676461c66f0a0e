"""Ingest: turn a CAP 1.0/1.1/1.2 XML or JSON body into a validated Alert. Pure, no I/O.

Every rejection is an IngestError whose code maps to the HTTP status of the alerts API:
malformed (400), invalid (422, names the field), too_large (413), unsupported_type (415).
"""

from __future__ import annotations

import asyncio
import re
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

from warnbus.domain.models import Alert
from warnbus.errors import IngestError
from warnbus.ingest.cap import parse_cap
from warnbus.ingest.checks import (
    DEFAULT_MAX_AREA_ENTRIES,
    DEFAULT_MAX_AREAS,
    DEFAULT_MAX_BODY,
    check_size,
    malformed,
)
from warnbus.ingest.jsonform import alert_to_json, parse_json

__all__ = [
    "DEFAULT_MAX_AREAS",
    "DEFAULT_MAX_AREA_ENTRIES",
    "DEFAULT_MAX_BODY",
    "alert_to_json",
    "off_loop",
    "parse_alert",
    "parse_cap",
    "parse_json",
    "parse_off_loop",
]

T = TypeVar("T")

#: Bodies at least this large are parsed one at a time (`parse_off_loop`); real alerts are
#: a few KB, a national feed's polygon ~800 KB.
LARGE_BODY = 64 * 1024
CAP_TYPES = frozenset({"application/cap+xml", "application/xml", "text/xml"})
JSON_TYPES = frozenset({"application/json"})
_BLANK = re.compile(rb"\s*")


def parse_alert(
    body: bytes,
    content_type: str | None = None,
    *,
    max_bytes: int = DEFAULT_MAX_BODY,
    max_areas: int = DEFAULT_MAX_AREAS,
    max_area_entries: int = DEFAULT_MAX_AREA_ENTRIES,
) -> Alert:
    """Parse a body by its content type (parameters such as charset ignored), else by sniffing.

    Sniffing looks at the first character after a BOM and whitespace: `{` is JSON, `<` XML.
    `max_areas` and `max_area_entries` bound the areas of the alert and the polygon, circle
    and geocode entries in them (413 `too_large` beyond).
    """
    limits = {"max_bytes": max_bytes, "max_areas": max_areas, "max_area_entries": max_area_entries}
    if content_type is not None:
        media = content_type.split(";", 1)[0].strip().lower()
        if media in CAP_TYPES:
            return parse_cap(body, **limits)
        if media in JSON_TYPES:
            return parse_json(body, **limits)
        raise IngestError(
            "unsupported_type",
            f"unsupported content type {content_type[:100]!r}; send application/cap+xml, "
            "application/xml, text/xml or application/json",
        )
    check_size(len(body), max_bytes)
    if body.startswith((b"\xff\xfe", b"\xfe\xff")):  # UTF-16 BOM: only XML comes so
        return parse_cap(body, **limits)
    start = _BLANK.match(body, 3 if body.startswith(b"\xef\xbb\xbf") else 0)
    first = body[start.end() : start.end() + 1] if start else b""
    if first in (b"{", b"["):  # a JSON array is JSON, if not an alert: let the JSON parser say so
        return parse_json(body, **limits)
    if first == b"<":
        return parse_cap(body, **limits)
    if not first:
        raise malformed("empty body")
    raise malformed("expected CAP XML or JSON: the body starts with neither '<' nor '{'")


_one_at_a_time: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary())


async def parse_off_loop(
    body: bytes,
    content_type: str | None = None,
    *,
    max_bytes: int = DEFAULT_MAX_BODY,
    max_areas: int = DEFAULT_MAX_AREAS,
    max_area_entries: int = DEFAULT_MAX_AREA_ENTRIES,
) -> Alert:
    """`parse_alert` in a worker thread, keeping the event loop free (see `off_loop`)."""
    limits = {"max_bytes": max_bytes, "max_areas": max_areas, "max_area_entries": max_area_entries}
    return await off_loop(len(body), parse_alert, body, content_type, **limits)


async def off_loop(size: int, work: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run `work(*args, **kwargs)`, which reads a body of `size` bytes (parses it, checks its
    signature), in a worker thread, keeping the event loop free; large bodies one at a time.

    A parsing thread and the loop take turns with the GIL; several threads parsing
    megabytes at once all took their turns before the loop got one (six 3.5 MB bodies at
    once stalled it ~60 ms, one at a time ~10 ms). Small bodies, which real alerts are,
    never wait behind large ones.
    """
    if size < LARGE_BODY:
        return await asyncio.to_thread(work, *args, **kwargs)
    loop = asyncio.get_running_loop()
    gate = _one_at_a_time.setdefault(loop, asyncio.Semaphore(1))
    async with gate:
        return await asyncio.to_thread(work, *args, **kwargs)
