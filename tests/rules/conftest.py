"""Fixtures of the rules tests: the sample county and a matcher over it, built once."""

from __future__ import annotations

import pytest

from rules.match import Matcher
from warnbus.domain.models import RegistryData
from warnbus.registry import default_registry_path, load_registry


@pytest.fixture(scope="session")
def sample_data() -> RegistryData:
    return load_registry(default_registry_path()).data


@pytest.fixture(scope="session")
def matcher(sample_data: RegistryData) -> Matcher:
    return Matcher(sample_data)
