"""Fixtures of the registry tests."""

from __future__ import annotations

import pytest

from warnbus.registry import Registry, default_registry_path, load_registry


@pytest.fixture(scope="session")
def sample() -> Registry:
    """The bundled sample county, loaded once."""
    return load_registry(default_registry_path())
