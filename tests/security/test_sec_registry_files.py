"""Broken registry files are refused as a whole, every problem named, phone numbers masked.

The function-level checks are in tests/registry; this edits the real sample county on disk
(duplicate ids, a grid pointing at a person who does not exist, numbers that are not mobile
numbers) and runs what an operator runs: `warnbus registry validate DIR` and `serve`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from warnbus.errors import RegistryError
from warnbus.registry import load_registry

COUNTY = Path(__file__).resolve().parents[2] / "config" / "county"


def _broken(tmp: Path) -> tuple[Path, str]:
    out = tmp / "county"
    shutil.copytree(COUNTY, out)
    persons = json.loads((out / "persons.json").read_text(encoding="utf-8"))
    grids = json.loads((out / "grids.json").read_text(encoding="utf-8"))
    persons.append(dict(persons[5]))  # a duplicate id
    bad_phone = "+8612345678901"
    persons[6]["phone"] = bad_phone  # +86 but not a mobile number
    persons[7]["phone"] = "138 0013 8000"  # not E.164
    grids[0]["primary"] = "p-nobody"  # a dangling reference
    (out / "persons.json").write_text(json.dumps(persons, ensure_ascii=False), encoding="utf-8")
    (out / "grids.json").write_text(json.dumps(grids, ensure_ascii=False), encoding="utf-8")
    return out, bad_phone


def test_broken_registry_is_refused_with_every_problem(tmp_path: Path) -> None:
    path, bad_phone = _broken(tmp_path)
    try:
        load_registry(path)
    except RegistryError as e:
        text = "\n".join(e.problems)
    else:
        raise AssertionError("a broken registry was loaded")
    assert "p-nobody" in text and "does not exist" in text
    assert "duplicate" in text.lower()
    assert "not a Chinese mobile number" in text and "is not E.164" in text
    assert bad_phone not in text, "phone numbers are masked in problem messages"
    run = subprocess.run([sys.executable, "-m", "warnbus.runtime.cli", "registry", "validate",
                          str(path)], capture_output=True, text=True, timeout=60)
    assert run.returncode != 0
    assert "p-nobody" in run.stdout + run.stderr and bad_phone not in run.stdout + run.stderr


def test_serve_does_not_start_on_a_broken_registry(tmp_path: Path) -> None:
    path, bad_phone = _broken(tmp_path)
    env = {**os.environ, "WARNBUS_REGISTRY": str(path), "WARNBUS_REDIS_URL": "redis://127.0.0.1:9",
           "WARNBUS_MQTT_URL": "mqtt://127.0.0.1:9", "WARNBUS_LOG_LEVEL": "warning"}
    run = subprocess.run([sys.executable, "-m", "warnbus.runtime.cli", "serve", "--port", "0"],
                         capture_output=True, text=True, timeout=60, env=env)
    out = run.stdout + run.stderr
    assert run.returncode != 0, out[-2000:]
    assert "registry" in out.lower() and bad_phone not in out
    assert "Traceback" not in out, "a message for the operator, not a crash"
