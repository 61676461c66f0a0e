"""A campaign's audit stream, read back: one event per entry (`Store.audit`)."""

from __future__ import annotations

from collections.abc import Mapping

from warnbus.state.replies import text_of

#: The fields an attempt's audit entry packs into its `a` field, in order (record.lua).
ATTEMPT_FIELDS = ("d", "tg", "ch", "st", "k", "n", "o", "s")


def audit_row(entry_id: str, fields: Mapping[bytes, bytes]) -> dict[str, str]:
    """One audit event as a dict of its fields and its entry `id`.

    An attempt written as one packed `a` field comes back as its eight fields (d, tg, ch, st,
    k, n, o, s), as attempts written before that change still are."""
    row = {text_of(k): text_of(v) for k, v in fields.items()}
    parts = row["a"].split("|") if "a" in row else ()
    # Registry ids hold no "|" (validate_registry); anything else stays packed, never lost.
    if len(parts) == len(ATTEMPT_FIELDS):
        del row["a"]
        row.update(zip(ATTEMPT_FIELDS, parts, strict=True))
    row["id"] = entry_id
    return row
