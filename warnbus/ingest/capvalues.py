"""CAP text values: coordinate lists, circles, references, numbers."""

from __future__ import annotations

import re

from warnbus.ingest.checks import invalid, show
from warnbus.models import Circle, Reference

_POINT_CHARS = re.compile(r"[^0-9.,+\-\s]", re.ASCII)
_TWO_COMMAS = re.compile(r",\S*,", re.ASCII)
_NO_COMMA = re.compile(r"(?:^|\s)[^\s,]+(?=\s|$)", re.ASCII)
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)", re.ASCII)
_INTEGER = re.compile(r"[+-]?\d+", re.ASCII)


def parse_points(text: str, field: str) -> tuple[tuple[float, float], ...]:
    """Parse "lat,lon lat,lon ..." into (lat, lon) pairs.

    The checks are regex scans and the conversion one `map(float)`, all in C: national feeds
    carry polygons of ~800 KB and a per-token Python loop would dominate the parse.
    """
    bad = _POINT_CHARS.search(text) or _TWO_COMMAS.search(text) or _NO_COMMA.search(text)
    flat = text.replace(",", " ").split()
    if bad or len(flat) != 2 * text.count(","):
        raise invalid(field, f"{show(text)} is not a list of 'lat,lon' pairs separated by spaces")
    try:
        numbers = list(map(float, flat))
    except ValueError:
        raise invalid(field, f"{show(text)} holds a coordinate that is not a number") from None
    pairs = iter(numbers)
    return tuple(zip(pairs, pairs, strict=True))


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
