"""`warnbus validate`: one line per file, exit 0 only when every file is ok."""

from __future__ import annotations

import io
from pathlib import Path

from tests.ingest.helpers import FIXTURES, INVALID, VALID_FILES
from warnbus.ingest import DEFAULT_MAX_BODY
from warnbus.ingest.validate_cmd import main, validate_paths


def run(paths: list[str]) -> tuple[int, list[str]]:
    out = io.StringIO()
    code = validate_paths(paths, out)
    return code, out.getvalue().splitlines()


def test_all_ok() -> None:
    paths = [str(p) for p in VALID_FILES]
    code, lines = run(paths)
    assert code == 0
    assert lines == [f"ok {p}" for p in paths]


def test_errors_name_the_file_and_field(tmp_path: Path) -> None:
    good = str(FIXTURES / "rainstorm-red.xml")
    bad = str(INVALID / "polygon-not-closed.xml")
    missing = str(tmp_path / "nope.xml")
    code, lines = run([good, bad, missing, str(tmp_path)])
    assert code == 1
    assert len(lines) == 4
    assert lines[0] == f"ok {good}"
    assert lines[1].startswith(f"error {bad}: info[0].area[1].polygon[0]: polygon is not closed")
    assert lines[2].startswith(f"error {missing}: cannot read file: ")
    assert lines[3].startswith(f"error {tmp_path}: cannot read file: ")


def test_every_invalid_fixture_is_one_error_line() -> None:
    paths = sorted(str(p) for p in INVALID.iterdir())
    code, lines = run(paths)
    assert code == 1
    assert len(lines) == len(paths)
    assert all(line.startswith(f"error {p}: ") for line, p in zip(lines, paths, strict=True))


def test_multiline_messages_stay_on_one_line(tmp_path: Path) -> None:
    path = tmp_path / "multi.xml"
    path.write_bytes(
        (FIXTURES / "rainstorm-red.xml")
        .read_bytes()
        .replace(b"<status>Actual</status>", b"<status>Actual\n  and more</status>")
    )
    code, lines = run([str(path)])
    assert code == 1 and len(lines) == 1 and lines[0].startswith(f"error {path}: status: ")


def test_huge_file_is_not_read(tmp_path: Path) -> None:
    path = tmp_path / "huge.xml"
    with path.open("wb") as fh:
        fh.truncate(DEFAULT_MAX_BODY + 1)
    code, lines = run([str(path)])
    assert code == 1 and "limit" in lines[0]


def test_no_files_and_main(capsys: object) -> None:
    assert run([]) == (0, [])
    assert main([str(FIXTURES / "cap11-gale.xml")]) == 0
