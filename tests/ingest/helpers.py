"""Paths and small helpers shared by the ingest tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from warnbus.domain.models import Alert
from warnbus.errors import IngestError

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "cap"
INVALID = FIXTURES / "invalid"
DEMO_ALERTS = REPO / "config" / "alerts"
SHARED = REPO / ".." / "shared" / "data" / "cap"

#: Every valid file the project ships: its own fixtures and the demo alerts.
VALID_FILES = sorted(
    [p for p in FIXTURES.iterdir() if p.is_file()] + sorted(DEMO_ALERTS.glob("*.xml"))
)
SHARED_FILES = sorted(p for p in SHARED.glob("*/*") if p.is_file()) if SHARED.is_dir() else []


def ids(paths: list[Path]) -> list[str]:
    return [p.name for p in paths]


def rejects(parse: Callable[[], Alert], code: str, field: str | None) -> IngestError:
    """Assert that `parse()` raises IngestError with this code and field; return it."""
    with pytest.raises(IngestError) as info:
        parse()
    err = info.value
    assert (err.code, err.field) == (code, field), str(err)
    assert "\n" not in str(err)
    return err
