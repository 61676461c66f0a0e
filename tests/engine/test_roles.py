"""The production layout without containers: separate api, worker and timer processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import msgspec
import pytest
from redis.asyncio import Redis

from channels.testing import RECORD_KEY
from tests.cli.test_serve import _fresh
from tests.engine.test_processes import _config
from tests.waits import until
from warnbus.runtime.services import free_port

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "cap"


def _fresh_alert() -> bytes:
    return _fresh((FIXTURES / "rainstorm-red.xml").read_text(encoding="utf-8"))


def _serve(cfg: Path, tmp: Path, role: str, port: int, name: str = "") -> subprocess.Popen[bytes]:
    log = (tmp / f"{name or role}.log").open("wb")
    env = {**os.environ, "WARNBUS_LOG_LEVEL": "warning", "WARNBUS_API_TOKEN": "roles-token"}
    return subprocess.Popen(
        [sys.executable, "-m", "warnbus.runtime.cli", "serve", "--config", str(cfg), "--role", role,
         "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, env=env,
        start_new_session=True)


@pytest.mark.slow
async def test_api_worker_and_timer_processes_share_one_redis(
    redis_url: str, tmp_path: Path
) -> None:
    cfg = _config(tmp_path, redis_url, delay=0.0)
    ports = {role: free_port() for role in ("api", "worker", "timer")}
    procs = {role: _serve(cfg, tmp_path, role, port) for role, port in ports.items()}
    redis = Redis.from_url(redis_url)
    try:
        base = f"http://127.0.0.1:{ports['api']}"
        async with aiohttp.ClientSession() as http:
            async def serving() -> bool:
                try:
                    async with http.get(f"{base}/healthz") as r:
                        await r.read()
                        return True
                except aiohttp.ClientError:
                    return False

            await until(serving, "the api process to serve", within=30, every=0.1)
            hdr = {"Authorization": "Bearer roles-token", "Content-Type": "application/cap+xml"}
            async with http.post(f"{base}/api/v1/alerts", data=_fresh_alert(),
                                 headers=hdr) as r:
                assert r.status == 202, await r.text()
            # The worker sends the first wave; the timer fires ack deadlines (fast policy:
            # 3 s), and the redials it plans are sent by the worker.
            dec = msgspec.msgpack.Decoder(list)

            async def kinds() -> set[str]:
                return {dec.decode(b)[3] for b in await redis.lrange(RECORD_KEY, 0, -1)}

            async def redialled() -> set[str] | None:
                got = await kinds()
                return got if "redial" in got else None

            sent = await until(redialled, "a redial sent", within=60, every=0.2, detail=kinds)
            assert {"warning", "redial"} <= sent, sent
            for role in ("worker", "timer"):  # the other roles serve health and metrics only
                async with http.get(f"http://127.0.0.1:{ports[role]}/metrics") as r:
                    assert r.status == 200
                async with http.post(f"http://127.0.0.1:{ports[role]}/api/v1/alerts") as r:
                    assert r.status == 404
        pids = {dec.decode(b)[6] for b in await redis.lrange(RECORD_KEY, 0, -1)}
        assert pids == {procs["worker"].pid}, "only the worker process sends"
    finally:
        await redis.aclose()
        for p in procs.values():
            os.killpg(p.pid, signal.SIGTERM)
        for p in procs.values():
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)


@pytest.mark.slow
async def test_two_api_processes_serve_one_port_with_reuse_port(
    redis_url: str, tmp_path: Path
) -> None:
    """`[server] reuse_port`: a second `--role api` process binds the same port (without it
    the bind fails), and requests are served while either runs."""
    cfg = _config(tmp_path, redis_url, delay=0.0)
    assert "[server]" not in cfg.read_text()
    cfg.write_text(cfg.read_text() + "\n[server]\nreuse_port = true\n")
    port = free_port()
    first = _serve(cfg, tmp_path, "api", port)
    second = _serve(cfg, tmp_path, "api", port, "api2")
    try:
        async with aiohttp.ClientSession() as http:
            def serving() -> bool:
                assert second.poll() is None, (tmp_path / "api2.log").read_text()
                return b"serving on" in (tmp_path / "api2.log").read_bytes()

            await until(serving, "the second process to serve", within=60, every=0.1)
            os.killpg(first.pid, signal.SIGTERM)
            first.wait(timeout=20)
            async with http.get(f"http://127.0.0.1:{port}/healthz") as r:
                await r.read()
                assert r.status in (200, 503)  # answered by the second process
            assert second.poll() is None
    finally:
        for p in (first, second):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
                p.wait(timeout=20)
