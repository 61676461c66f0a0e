"""`warnbus serve` with no configuration: the embedded default of DESIGN section 10."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import aiohttp
import pytest

from tests.waits import until
from warnbus.runtime.services import free_port

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "cap"


def _fresh(xml: str) -> bytes:
    """The fixture with its times moved to now (it carries fixed example times)."""
    now = datetime.now(timezone(timedelta(hours=8))).replace(microsecond=0)
    later = now + timedelta(hours=6)
    xml = re.sub(r"<(sent|effective|onset)>[^<]+<", lambda m: f"<{m[1]}>{now.isoformat()}<", xml)
    xml = re.sub(r"<expires>[^<]+<", f"<expires>{later.isoformat()}<", xml)
    return xml.encode()


@pytest.mark.slow
async def test_serve_on_the_embedded_default(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "WARNBUS_DATA_DIR": str(tmp_path), "WARNBUS_LOG_LEVEL": "warning"}
    env.pop("WARNBUS_API_TOKEN", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "warnbus.runtime.cli", "serve", "--port", str(port),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env,
        start_new_session=True)
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            raw = await asyncio.wait_for(proc.stdout.readline(), 60)  # type: ignore[union-attr]
            line = raw.decode()
            lines.append(line)
            if "serving on" in line or not line:
                break
        out = "".join(lines)
        assert "redis-server" in out and "AOF" in out, out
        assert "mosquitto" in out, out
        token = re.search(r"API token \(full scope, generated for this run\): (\S+)", out)
        assert token, out
        # The embedded broker takes no anonymous client, and its password is never printed.
        conf = (tmp_path / "mqtt" / "mosquitto.conf").read_text()
        assert "allow_anonymous false" in conf and "acl_file" in conf
        broker_port = int(re.search(r"^listener (\d+)", conf, re.M)[1])  # type: ignore[index]
        assert await asyncio.to_thread(_anonymous_connack, broker_port) != 0
        assert not re.search(r"mqtt://warnbus:(?!\*\*\*@)", out), out
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/healthz") as r:
                assert r.status == 200, await r.text()
            hdr = {"Authorization": f"Bearer {token.group(1)}",
                   "Content-Type": "application/cap+xml"}
            body = _fresh((FIXTURES / "rainstorm-red.xml").read_text(encoding="utf-8"))
            async with http.post(f"{base}/api/v1/alerts", data=body, headers=hdr) as r:
                assert r.status == 202, await r.text()
                res = await r.json()

            async def counts() -> dict[str, int]:
                async with http.get(f"{base}/api/v1/alerts/{res['alert_id']}",
                                    headers=hdr) as r:
                    return (await r.json())["counts"]  # type: ignore[no-any-return]

            async def all_sent() -> bool:
                got = await counts()
                return got["sent"] >= got["targets"] > 0

            await until(all_sent, "the first wave sent", within=30, every=0.1, detail=counts)
        aof = await asyncio.to_thread(lambda: list(tmp_path.rglob("appendonly*")))
        assert aof, "the embedded Redis keeps an AOF"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            rc = await asyncio.wait_for(proc.wait(), 20)
        except TimeoutError:
            os.killpg(proc.pid, signal.SIGKILL)  # never leave a server behind
            await proc.wait()
            raise AssertionError("warnbus serve did not stop on SIGTERM within 20 s") from None
    assert rc == 0, "serve exits cleanly on SIGTERM"


def _anonymous_connack(port: int) -> int:
    from tests.mqtt_probe import Probe

    with Probe(port) as probe:
        return probe.connect()
