"""The installed `warnbus` console script, as a user runs it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "cap"


def warnbus(*args: str, timeout: float = 120, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("warnbus") or str(Path(sys.executable).parent / "warnbus")
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=timeout, env=env)


def test_validate_every_shared_cap_file(shared_cap_dir: Path) -> None:
    files = sorted(str(p) for p in shared_cap_dir.rglob("*") if p.suffix in (".xml", ".cap"))
    assert len(files) >= 10
    r = warnbus("validate", *files)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert lines == [f"ok {f}" for f in files]


def test_validate_reports_each_bad_file_and_fails() -> None:
    good = str(FIXTURES / "rainstorm-red.xml")
    bad = str(FIXTURES / "invalid" / "bad-date.xml")
    r = warnbus("validate", good, bad, "/nonexistent.xml")
    assert r.returncode == 1
    out = r.stdout.splitlines()
    assert out[0] == f"ok {good}"
    assert out[1].startswith(f"error {bad}: ")
    assert out[2].startswith("error /nonexistent.xml: ")


def test_registry_generate_and_validate(tmp_path: Path) -> None:
    out = tmp_path / "reg"
    r = warnbus("registry", "generate", "--counties", "2", "--seed", "3", "--out", str(out))
    assert r.returncode == 0, r.stderr
    r = warnbus("registry", "validate", str(out))
    assert r.returncode == 0, r.stdout + r.stderr
    grids = json.loads((out / "grids.json").read_text(encoding="utf-8"))
    assert len(grids) == 2 * 777


def test_record_needs_a_redis_url(tmp_path: Path) -> None:
    r = warnbus("record", "al_x", env={"PATH": "/usr/bin:/bin"})
    assert r.returncode == 2 and "redis" in r.stderr.lower()


@pytest.mark.slow
def test_demo_runs_to_its_summary() -> None:
    r = warnbus("demo", "--fast", timeout=150)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "叫应 summary" in r.stdout
    assert "未叫醒 list" in r.stdout
    assert "Traceback" not in r.stderr


async def test_record_exports_csv_and_json(redis_url: str) -> None:
    import asyncio
    import os

    from tests.engine.helpers import cap_alert, make_harness
    from warnbus.domain.models import AckVia
    from warnbus.flow.acks import record_ack
    from warnbus.flow.credentials import ENGINE
    from warnbus.flow.intake import accept

    h = await make_harness(redis_url)
    try:
        res = await accept(h.ctx, cap_alert(), ENGINE)
        await h.drain()
        pid = h.sent("voice")[0].target_id
        await record_ack(h.ctx, res.campaign_id, pid, AckVia.DTMF)
    finally:
        await h.app.close()
    env = {**os.environ, "WARNBUS_REDIS_URL": redis_url, "WARNBUS_MQTT_URL": "mqtt://127.0.0.1:9"}
    r = await asyncio.to_thread(warnbus, "record", res.alert_id, env=env)
    assert r.returncode == 0, r.stderr
    rows = r.stdout.splitlines()
    assert rows[0].startswith('"person_id","name","role","grids","channel"')
    assert any(pid in row and "dtmf" in row for row in rows[1:])
    r = await asyncio.to_thread(warnbus, "record", res.alert_id, "--format", "json", env=env)
    data = json.loads(r.stdout)
    assert data["alert_id"] == res.alert_id and len(data["rows"]) == len(rows) - 1
