"""Shared by the signature tests: a throwaway PKI (test-only keys, made once per session)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.ingest.helpers import FIXTURES
from tests.ingest.signing import NOW, Identity, issue, sign


@pytest.fixture(scope="session")
def ca() -> Identity:
    return issue(
        "Test Met Root CA",
        ca=True,
        not_before=NOW - timedelta(days=1000),
        not_after=NOW + timedelta(days=3650),
    )


@pytest.fixture(scope="session")
def signer(ca: Identity) -> Identity:
    return issue("430623 county met office", issuer=ca)


@pytest.fixture(scope="session")
def other_ca() -> Identity:
    return issue("Some Other CA", ca=True)


@pytest.fixture(scope="session")
def signed(signer: Identity) -> bytes:
    return sign((FIXTURES / "rainstorm-red.xml").read_bytes(), signer)
