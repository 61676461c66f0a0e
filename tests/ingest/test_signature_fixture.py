"""The committed signed examples (tests/fixtures/cap/signed/) verify, and are what the script
makes."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from tests.fixtures.make_signed import OUT, build
from warnbus.errors import IngestError
from warnbus.ingest import parse_cap
from warnbus.ingest.signature import verify_signature
from warnbus.ingest.validate_cmd import validate_paths

CA = OUT / "ca.pem"
GOOD = [OUT / "rainstorm-red.signed.xml", OUT / "geohazard-orange.signed-sha1.xml"]
TAMPERED = OUT / "rainstorm-red-update.tampered.xml"


@pytest.mark.parametrize("path", GOOD, ids=[p.name for p in GOOD])
def test_committed_examples_verify(path: Path) -> None:
    body = path.read_bytes()
    parse_cap(body)
    assert verify_signature(body, "require").signed
    trusted = verify_signature(body, "require", [CA.read_bytes()])
    assert trusted.trusted and trusted.subject and "430623" in trusted.subject


def test_committed_tampered_example_fails() -> None:
    body = TAMPERED.read_bytes()
    parse_cap(body)  # still valid CAP: only the signature tells
    with pytest.raises(IngestError, match="digest does not match"):
        verify_signature(body, "verify", [CA.read_bytes()])


def test_validate_the_examples() -> None:
    out = io.StringIO()
    paths = [str(p) for p in [*GOOD, TAMPERED]]
    assert validate_paths(paths, out, signature="require", trust=[str(CA)]) == 1
    lines = out.getvalue().splitlines()
    assert lines[:2] == [f"ok {p}" for p in paths[:2]]
    assert lines[2].startswith(f"error {paths[2]}: Signature: the digest does not match")


def test_script_rebuilds_the_committed_files(tmp_path: Path) -> None:
    for path in build(tmp_path):
        assert path.read_bytes() == (OUT / path.name).read_bytes(), path.name
