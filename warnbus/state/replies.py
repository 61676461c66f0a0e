"""Decode Redis replies (the clients return bytes; the state layer reads text)."""

from __future__ import annotations


def text_of(v: bytes | str | None) -> str:
    """Decode a Redis reply value ("" for none)."""
    if v is None:
        return ""
    return v.decode() if isinstance(v, bytes) else v
