"""`warnbus validate --signature ... [--trust PEM ...]`: same output contract as plain validate."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from tests.ingest.helpers import FIXTURES, VALID_FILES
from tests.ingest.signing import Identity
from warnbus.errors import ConfigError
from warnbus.ingest.validate_cmd import validate_paths
from warnbus.runtime.cli import main as cli_main

RAINSTORM = (FIXTURES / "rainstorm-red.xml").read_bytes()
PLACEHOLDER = FIXTURES / "signed-rainstorm.xml"


def run(paths: list[Path], **kw: object) -> tuple[int, list[str]]:
    out = io.StringIO()
    code = validate_paths([str(p) for p in paths], out, **kw)  # type: ignore[arg-type]
    return code, out.getvalue().splitlines()


@pytest.fixture
def files(tmp_path: Path, signed: bytes, ca: Identity, other_ca: Identity) -> dict[str, Path]:
    out = {
        "signed": signed,
        "tampered": signed.replace("万庾镇".encode(), "章华镇".encode(), 1),
        "unsigned": RAINSTORM,
        "json": (FIXTURES / "rainstorm-red.json").read_bytes(),
        "ca.pem": ca.pem,
        "other.pem": other_ca.pem,
    }
    for name, data in out.items():
        (tmp_path / name).write_bytes(data)
    return {name: tmp_path / name for name in out}


def test_validate_contract(files: dict[str, Path]) -> None:
    order = [files["signed"], files["tampered"], files["unsigned"], files["json"]]
    code, lines = run(order, signature="verify")
    assert code == 1
    assert lines[0] == f"ok {files['signed']}"
    assert lines[1].startswith(f"error {files['tampered']}: Signature: the digest does not match")
    assert lines[2:] == [f"ok {files['unsigned']}", f"ok {files['json']}"]

    code, lines = run(order, signature="require", trust=[str(files["ca.pem"])])
    assert code == 1
    assert lines[0] == f"ok {files['signed']}"
    assert lines[2].startswith(f"error {files['unsigned']}: Signature: the alert is not signed")
    assert lines[3].startswith(f"error {files['json']}: Signature: a JSON alert cannot carry")

    code, lines = run([files["signed"]], signature="require", trust=[str(files["other.pem"])])
    assert code == 1 and "does not chain" in lines[0]
    assert run([files["signed"]], signature="require", trust=[str(files["ca.pem"])]) == (
        0,
        [f"ok {files['signed']}"],
    )
    # Default: today's behaviour, signatures not looked at.
    assert run(order) == (0, [f"ok {p}" for p in order])


def test_validate_configuration_errors(files: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--trust needs --signature"):
        run([files["signed"]], trust=[str(files["ca.pem"])])
    with pytest.raises(ConfigError, match="cannot read trust store"):
        run([files["signed"]], signature="verify", trust=[str(tmp_path / "nope.pem")])
    with pytest.raises(ConfigError, match="holds no PEM certificate"):
        run([files["signed"]], signature="verify", trust=[str(files["unsigned"])])


def test_cli_options(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    signed, ca_pem = str(files["signed"]), str(files["ca.pem"])
    assert cli_main(["validate", "--signature", "require", "--trust", ca_pem, signed]) == 0
    assert capsys.readouterr().out == f"ok {signed}\n"
    assert cli_main(["validate", "--signature", "require", str(files["unsigned"])]) == 1
    assert "not signed" in capsys.readouterr().out
    assert cli_main(["validate", "--trust", ca_pem, signed]) == 2
    assert "--trust needs --signature" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli_main(["validate", "--signature", "sometimes", signed])


def test_project_files_under_verify() -> None:
    """Every valid file the project ships passes under verify but the placeholder signature."""
    code, lines = run(VALID_FILES, signature="verify")
    assert code == 1
    bad = [line for line in lines if line.startswith("error ")]
    assert bad == [line for line in lines if str(PLACEHOLDER) in line]
    assert len(bad) == 1


def test_shared_cap_files_under_verify(shared_cap_dir: Path) -> None:
    paths = sorted(p for p in shared_cap_dir.rglob("*") if p.suffix in (".xml", ".cap"))
    assert paths
    code, lines = run(paths, signature="verify")
    assert (code, lines) == (0, [f"ok {p}" for p in paths])
