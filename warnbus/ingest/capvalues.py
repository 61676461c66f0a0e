"""CAP text values: coordinate lists, circles, references, numbers."""

from __future__ import annotations

import re

from warnbus.domain.models import Circle, Reference
from warnbus.errors import IngestError
from warnbus.ingest.checks import invalid, show

_POINT_CHARS = re.compile(r"[^0-9.,+\-\s]", re.ASCII)
_TWO_COMMAS = re.compile(r",\S*,", re.ASCII)
_LONE_COMMA = re.compile(r"(?:^|\s),|,(?:\s|$)", re.ASCII)
_SPACE = re.compile(r"\s", re.ASCII)
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)", re.ASCII)
_INTEGER = re.compile(r"[+-]?\d+", re.ASCII)
#: Characters of a coordinate list handled by one round of C calls. Each call holds the
#: GIL (a thread parsing a national feed's 3 MB polygon would hold the event loop for
#: ~200 ms in one go); between rounds the interpreter can hand the GIL to the loop.
CHUNK = 64 * 1024


def parse_points(text: str, field: str) -> tuple[tuple[float, float], ...]:
    """Parse "lat,lon lat,lon ..." into (lat, lon) pairs.

    The checks are regex scans and the conversion one `map(float)`, all in C: national feeds
    carry polygons of ~800 KB and a per-token Python loop would dominate the parse. They run
    on pieces of about CHUNK characters cut at whitespace, so no token spans two pieces.
    Every token has exactly one comma with a number on each side: no character other than
    digits, signs, points, commas and whitespace; no token with two commas; no comma beside
    whitespace or an end; and as many numbers as twice the commas.
    """
    pairs: list[tuple[float, float]] = []
    start = 0
    while start < len(text):
        cut = _SPACE.search(text, start + CHUNK)
        end = cut.start() if cut else len(text)
        piece = text[start:end]
        start = end
        if _POINT_CHARS.search(piece) or _TWO_COMMAS.search(piece) or _LONE_COMMA.search(piece):
            raise _not_points(text, field)
        flat = piece.replace(",", " ").split()
        if len(flat) != 2 * piece.count(","):
            raise _not_points(text, field)
        try:
            numbers = iter(list(map(float, flat)))
        except ValueError:
            raise invalid(field, f"{show(text)} holds a coordinate that is not a number") from None
        pairs.extend(zip(numbers, numbers, strict=True))
    if not pairs and text.strip():
        raise _not_points(text, field)
    return tuple(pairs)


def _not_points(text: str, field: str) -> IngestError:
    return invalid(field, f"{show(text)} is not a list of 'lat,lon' pairs separated by spaces")


def parse_circle(text: str, field: str) -> Circle:
    """Parse "lat,lon radius" (radius in km)."""
    parts = text.split()
    if len(parts) != 2 or not _NUMBER.fullmatch(parts[1]):
        raise invalid(field, f"{show(text)} is not a circle like '29.52,112.60 20' (lat,lon km)")
    centre = parse_points(parts[0], field)
    if len(centre) != 1:
        raise invalid(field, f"{show(text)} is not a circle like '29.52,112.60 20' (lat,lon km)")
    return Circle(lat=centre[0][0], lon=centre[0][1], radius_km=float(parts[1]))


def parse_references(text: str) -> tuple[Reference, ...]:
    """Split space-separated `sender,identifier,sent` triples (checks.py validates the parts)."""
    refs = []
    for triple in text.split():
        parts = triple.split(",")
        if len(parts) != 3 or not all(parts):
            raise invalid("references", f"{show(triple)} is not sender,identifier,sent")
        refs.append(Reference(sender=parts[0], identifier=parts[1], sent=parts[2]))
    return tuple(refs)


def number(text: str, field: str) -> float:
    if not _NUMBER.fullmatch(text):
        raise invalid(field, f"{show(text)} is not a decimal number")
    return float(text)


def integer(text: str, field: str) -> int:
    try:
        if _INTEGER.fullmatch(text):
            return int(text)
    except ValueError:  # more digits than Python converts
        pass
    raise invalid(field, f"{show(text)} is not an integer")
