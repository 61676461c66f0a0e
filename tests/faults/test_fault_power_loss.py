"""Power loss under each AOF fsync setting: what a confirmation answered 2xx can lose.

A power cut loses what Redis wrote to its AOF but the disk had not yet been told to keep
(fsync). The test confirms officers one after another while sampling the AOF's size; at the
cut Redis is frozen (nothing more reaches the file), the AOF is cut back to what the last
fsync had kept, Redis is killed and restarted from it:
- `always` (the shipped default of `services.start_redis`, `serve`'s embedded Redis and
  deploy/redis.conf): Redis fsyncs before it answers, so the file as it stands
  holds every answered write: no confirmation answered before the cut is lost;
- `everysec`: the last fsync may be a second old: confirmations answered in the last second
  before the cut are lost (the file is cut to its size a second earlier), none older.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from faultkit import save_figures

from tests.engine.helpers import cap_alert, make_harness
from warnbus.domain.models import AckVia
from warnbus.flow.acks import record_ack
from warnbus.flow.credentials import ENGINE
from warnbus.flow.intake import accept
from warnbus.runtime.services import ManagedService

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]
LAST_FSYNC_S = {"always": 0.0, "everysec": 1.0}  # how old the last fsync may be at the cut


def _incr_aof(data_dir: Path) -> Path:
    """The AOF file Redis appends to now (Redis 7: appendonlydir/<name>.<n>.incr.aof)."""
    files = sorted((data_dir / "appendonlydir").glob("*.incr.aof"),
                   key=lambda p: int(p.name.split(".")[-3]))
    assert files, "no AOF increment file"
    return files[-1]


@pytest.mark.parametrize("setting", ["shipped default", "everysec"])
async def test_power_loss_loses_only_what_the_fsync_setting_says(
    redis_factory: Callable[..., ManagedService], setting: str,
) -> None:
    svc = redis_factory() if setting == "shipped default" else redis_factory(appendfsync=setting)
    h = await make_harness(svc.url)
    try:
        got = await h.ctx.redis.config_get("appendfsync")
        fsync = {(k.decode() if isinstance(k, bytes) else k): v for k, v in got.items()
                 }["appendfsync"]
        fsync = fsync.decode() if isinstance(fsync, bytes) else fsync
        cid = (await accept(h.ctx, cap_alert(codes=("430623",)), ENGINE)).campaign_id
        await h.drain()
        persons = sorted(await h.ctx.store.holders(cid))
        aof = _incr_aof(svc.data_dir)
        sizes: list[tuple[float, int]] = []
        answered: dict[str, float] = {}
        stop = asyncio.Event()

        async def sample() -> None:
            while not stop.is_set():
                sizes.append((time.monotonic(), aof.stat().st_size))
                await asyncio.sleep(0.02)

        sampler = asyncio.create_task(sample())
        started = time.monotonic()
        for pid in persons:
            res = await record_ack(h.ctx, cid, pid, AckVia.SMS)
            assert res.recorded
            answered[pid] = time.monotonic()
            if answered[pid] - started > 3.0:
                break
            await asyncio.sleep(0.005)
        assert svc.pid is not None
        os.kill(svc.pid, signal.SIGSTOP)  # the cut: nothing more reaches the file
        cut = time.monotonic()
        stop.set()
        await sampler
        kept_at = cut - LAST_FSYNC_S[fsync]
        kept = max((size for at, size in sizes if at <= kept_at), default=0)
        if fsync == "always":
            kept = aof.stat().st_size  # fsynced before each answer: the file as it stands
        os.truncate(aof, kept)
        await asyncio.to_thread(svc.kill)
        await asyncio.to_thread(svc.start)
        lost = [p for p in answered if not await h.ctx.store.is_acked(cid, p)]
        if setting == "shipped default":
            assert fsync == "always" and lost == [], (
                f"{len(lost)} confirmations answered 2xx were lost under {fsync}")
        else:
            assert all(answered[p] > kept_at - 0.1 for p in lost), (
                "only the last second before the cut is lost")
        last_second = [p for p, at in answered.items() if at > cut - 1.0]
        save_figures({"test": f"power_loss_{fsync}", "answered": len(answered),
                      "answered_in_last_second": len(last_second), "lost": len(lost)})
    finally:
        await h.app.close()
