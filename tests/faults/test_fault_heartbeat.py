"""A timer process killed while it holds due timers: another takes them within seconds.

Every engine process beats in Redis (`[engine] heartbeat_s`); the sweepers take the pending
entries of a process whose beat stopped at once, instead of after the 30-s lease, so a redial
it held is a few seconds late, not a lease late (issue 16, item 7). Real processes on the
shipped lease: a worker, and two timer processes; the whole county's first-wave deadlines come
due together, and one timer process is SIGKILLed while it holds some of them.
"""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from faultkit import FAST_POLICY, Worker, save_figures, start_worker, wait_for, write_config

from tests.engine.helpers import cap_alert, make_harness
from warnbus.flow.credentials import ENGINE
from warnbus.flow.intake import accept
from warnbus.state import keys

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]
LEASE_S = 30.0  # the shipped lease
WITHIN_S = 10.0  # heartbeat_ttl_s (5) + sweep_s (2) + a loaded machine's slack


async def _pending(redis: object, consumer: str) -> int:
    summary = await redis.xpending(keys.TIMERS_DUE, keys.GROUP)  # type: ignore[attr-defined]
    for c in summary.get("consumers") or []:
        name = c["name"].decode() if isinstance(c["name"], bytes) else c["name"]
        if name == consumer:
            return int(c["pending"])
    return 0


async def test_timers_of_a_killed_timer_process_are_taken_over_within_seconds(
    redis_url: str, tmp_path: Path,
) -> None:
    h = await make_harness(redis_url, policy=str(FAST_POLICY), start=time.time())
    cfg = write_config(tmp_path, redis_url, delay=0.0, concurrency=64, lease_s=LEASE_S)
    procs: list[Worker] = []
    try:
        procs.append(start_worker(cfg, tmp_path, "worker", roles="worker"))
        doomed = start_worker(cfg, tmp_path, "doomed", roles="timer")
        procs.append(doomed)
        procs.append(start_worker(cfg, tmp_path, "heir", roles="timer"))
        name = f"{socket.gethostname()}-{doomed.pid}"
        redis = h.ctx.redis

        async def beating() -> bool:
            return await redis.zscore(keys.HEARTBEATS, name) is not None

        await wait_for(beating, 60, "the timer process to start and beat")
        sent = datetime.now(UTC).replace(microsecond=0)
        await accept(h.ctx, cap_alert("HB-1", codes=("430623",), sent=sent), ENGINE)

        async def holding() -> bool:
            return await _pending(redis, name) > 0

        await wait_for(holding, 60, "the doomed timer process to hold due timers")
        doomed.kill()
        killed = time.monotonic()
        # What it held when it died (nobody else may claim it for the 5-s heartbeat TTL).
        held = [p["message_id"] for p in await redis.xpending_range(
            keys.TIMERS_DUE, keys.GROUP, min="-", max="+", count=10_000, consumername=name)]
        assert held, "the killed process held no due timer: nothing to take over"

        async def taken() -> bool:
            return await _pending(redis, name) == 0

        await wait_for(taken, LEASE_S, "another timer process to take the dead one's timers")
        took = time.monotonic() - killed
        assert took < WITHIN_S, f"taken over after {took:.1f} s, not within seconds"

        async def handled() -> bool:
            # A timer handled is acknowledged and deleted from the due stream.
            for entry_id in held:
                if await redis.xrange(keys.TIMERS_DUE, entry_id, entry_id):
                    return False
            return True

        await wait_for(handled, 30, "the dead process's timers handled by the heir")
        for p in procs:
            assert not p.tracebacks(), p.tracebacks()
        save_figures({"test": "heartbeat_takeover", "held": len(held),
                      "taken_after_s": round(took, 2), "lease_s": LEASE_S})
    finally:
        for p in procs:
            p.kill()
        await h.app.close()
