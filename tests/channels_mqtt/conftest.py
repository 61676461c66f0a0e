"""Fixtures of the MQTT loudspeaker tests (real mosquitto from the top-level fixtures)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from loudspeaker_kit import RecordingSink


@pytest.fixture
def prefix(unique_topic: Callable[[str], str]) -> str:
    """A topic prefix private to the test: retained messages outlive tests on the broker."""
    return unique_topic("wb/v1")


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()
