"""A short coverage-guided fuzz run of the CAP and JSON parsers (tests/fuzz/fuzz_cap.py).

Runs only where atheris is installed (a binary wheel for CPython on x86-64/aarch64 Linux and
macOS; the `test` extra pulls it there). The long run and its figures: docs/reliability.md.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

HARNESS = Path(__file__).with_name("fuzz_cap.py")
RUNS = int(os.environ.get("WARNBUS_ATHERIS_RUNS", "3000"))

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("atheris") is None,
    reason="atheris is not installed (no wheel for this platform); the hypothesis fuzz "
    "tests in tests/ingest/test_fuzz.py still run",
)


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(HARNESS), *args, f"-artifact_prefix={tmp_path}/",
         "-print_final_stats=1"],
        capture_output=True, text=True, timeout=240, cwd=tmp_path,
        env={**os.environ, "WARNBUS_FUZZ_DIR": str(tmp_path)},
    )


def test_a_bounded_fuzz_run_finds_no_crash(tmp_path: Path) -> None:
    r = _run(tmp_path, f"-runs={RUNS}", "-max_total_time=120", "-seed=1")
    assert r.returncode == 0, r.stderr[-4000:]
    assert f"stat::number_of_executed_units: {RUNS}" in r.stderr, r.stderr[-2000:]
    assert not list(tmp_path.glob("crash-*")) and not list(tmp_path.glob("timeout-*"))


def test_the_harness_reports_an_untyped_error_as_a_crash(tmp_path: Path) -> None:
    """The property has teeth: an exception other than IngestError fails the run."""
    crash = tmp_path / "input"
    crash.write_bytes(b"\x00" + (Path(__file__).parents[1] / "fixtures" / "cap"
                                 / "rainstorm-red.xml").read_bytes())
    env = {**os.environ, "WARNBUS_FUZZ_SELFTEST": "1", "WARNBUS_FUZZ_DIR": str(tmp_path)}
    r = subprocess.run(
        [sys.executable, str(HARNESS), f"-artifact_prefix={tmp_path}/", str(crash)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env,
    )
    out = r.stdout + r.stderr
    assert r.returncode != 0, out[-2000:]
    assert "Uncaught Python exception" in out and "RuntimeError: self-test" in out, out[-2000:]
