"""Several engine processes on one Redis; one is SIGKILLed and the others take over its work.

Three workers share a county-wide red campaign. One is killed while it holds entries it read
but never acknowledged (its pending list is checked before the kill counts); the survivors
reclaim them after the lease (XAUTOCLAIM in their sweepers) and the campaign completes with
nothing lost, the survivors having sent what the dead one held.
"""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from faultkit import (
    FAST_POLICY,
    FAST_SITES,
    lane_ids,
    open_work,
    progress,
    recorded,
    save_figures,
    start_worker,
    wait_for,
    write_config,
)

from tests.engine.helpers import Harness, cap_alert, make_harness
from warnbus.domain.states import GridState
from warnbus.flow.credentials import ENGINE
from warnbus.flow.intake import accept
from warnbus.state import keys

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


@pytest_asyncio.fixture
async def planner(redis_url: str) -> AsyncIterator[Harness]:
    h = await make_harness(redis_url, policy=str(FAST_POLICY), sites=str(FAST_SITES),
                           start=time.time())
    yield h
    await h.app.close()


async def _held_by(h: Harness, consumer: str) -> set[bytes]:
    held: set[bytes] = set()
    for lane in await h.ctx.lanes.depth():
        for p in await h.ctx.redis.xpending_range(lane, keys.GROUP, "-", "+", 10_000,
                                                  consumername=consumer):
            held.add(p["message_id"])
    return held


async def test_one_of_three_engines_killed_its_work_is_reclaimed(
    planner: Harness, redis_url: str, tmp_path: Path
) -> None:
    h, redis = planner, planner.ctx.redis
    from datetime import UTC, datetime

    res = await accept(h.ctx, cap_alert(codes=("430623",),
                                        sent=datetime.now(UTC).replace(microsecond=0)), ENGINE)
    await h.app.engine.inbox_once()
    expected = await lane_ids(redis, list(await h.ctx.lanes.depth()))
    cfg = write_config(tmp_path, redis_url, delay=0.05)
    workers = [start_worker(cfg, tmp_path, f"e{i}") for i in range(3)]
    victim = workers[0]
    consumer = f"{socket.gethostname()}-{victim.pid}"
    try:
        held: set[bytes] = set()

        async def victim_holds_work() -> bool:
            nonlocal held
            rows = await recorded(redis)
            if sum(1 for r in rows if r[6] == victim.pid) < 50:
                return False  # kill it mid-work, not before it started
            held = await _held_by(h, consumer)
            return len(held) >= 8

        await wait_for(victim_holds_work, 60, "the victim to hold unacknowledged entries")
        victim.kill()
        at_kill = int(await redis.llen("wbtest:sent"))

        async def done() -> bool:
            if sum((await h.ctx.lanes.depth()).values()):  # cheap checks first
                return False
            meta = await h.ctx.store.meta(res.campaign_id)
            return (meta is not None and sum(meta.grid_count(g) for g in GridState.OPEN) == 0
                    and not await open_work(h.ctx.store, res.campaign_id))

        # However slowly a loaded machine lets them go: it fails when the work stops.
        await wait_for(done, 60, "the survivors to finish the campaign", every=0.5,
                       moving=lambda: progress(redis, res.campaign_id))
        rows = await recorded(redis)
        assert expected <= {r[0] for r in rows}, "0 lost"
        after = rows[at_kill:]
        assert {r[6] for r in after} <= {workers[1].pid, workers[2].pid}
        assert not await _held_by(h, consumer), "nothing left pending under the dead consumer"
        for w in workers[1:]:
            assert not w.tracebacks(), w.tracebacks()[-2000:]
        dups = len(rows) - len({r[0] for r in rows})
        assert dups <= 4 * 8
        save_figures({"test": "multi-engine", "engines": 3, "held_by_victim": len(held),
                      "first_wave": len(expected), "sends": len(rows), "lost": 0,
                      "duplicates": dups, "by_pid": {str(p): sum(1 for r in rows if r[6] == p)
                                                     for p in {r[6] for r in rows}}})
    finally:
        for w in workers:
            w.kill()
