"""A process killed while it holds work: another takes it within seconds, not a lease.

Every engine process beats in Redis (`[engine] heartbeat_s`); the sweepers take the pending
entries of a process whose beat stopped at once, instead of after the 30-s lease, so a redial
it held is a few seconds late, not a lease late (issue 16, item 7), and a send it had claimed
is made again by its heir at once (the claim names its holder). Real processes on the
shipped lease: a doomed one and its heir in the same role (beside a worker for the timer
case); the county's first wave (worker) or its first-wave deadlines, all due together
(timer), and the doomed process is SIGKILLed while it holds some of them.
"""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from faultkit import FAST_POLICY, Worker, save_figures, start_worker, wait_for, write_config

from tests.engine.helpers import cap_alert, make_harness
from warnbus.flow.credentials import ENGINE
from warnbus.flow.intake import accept
from warnbus.state import keys
from warnbus.state.queue import PRIORITIES

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]
LEASE_S = 30.0  # the shipped lease
WITHIN_S = 10.0  # heartbeat_ttl_s (5) + sweep_s (0.5) + a loaded machine's slack
CHANNELS = ("voice", "sms", "wecom", "loudspeaker")


def _streams(role: str) -> list[str]:
    if role == "timer":
        return [keys.TIMERS_DUE]
    return [keys.lane(c, p) for c in CHANNELS for p in PRIORITIES]


async def _held(redis: Any, streams: list[str], consumer: str) -> list[tuple[str, bytes]]:
    """The entries `consumer` read and has not acknowledged, with their streams."""
    out: list[tuple[str, bytes]] = []
    for stream in streams:
        if not await redis.exists(stream):
            continue
        pending = await redis.xpending_range(stream, keys.GROUP, min="-", max="+",
                                             count=10_000, consumername=consumer)
        out += [(stream, p["message_id"]) for p in pending]
    return out


@pytest.mark.parametrize("role", ["timer", "worker"])
async def test_work_of_a_killed_process_is_taken_over_within_seconds(
    redis_url: str, tmp_path: Path, role: str,
) -> None:
    h = await make_harness(redis_url, policy=str(FAST_POLICY), start=time.time())
    # The worker case sends slowly (50 ms a send), so that the doomed worker holds entries.
    cfg = write_config(tmp_path, redis_url, delay=0.0 if role == "timer" else 0.05,
                       concurrency=64, lease_s=LEASE_S)
    streams = _streams(role)
    procs: list[Worker] = []
    try:
        if role == "timer":
            procs.append(start_worker(cfg, tmp_path, "worker", roles="worker"))
        doomed = start_worker(cfg, tmp_path, "doomed", roles=role)
        procs.append(doomed)
        procs.append(start_worker(cfg, tmp_path, "heir", roles=role))
        name = f"{socket.gethostname()}-{doomed.pid}"
        redis = h.ctx.redis

        async def beating() -> bool:
            return await redis.zscore(keys.HEARTBEATS, name) is not None

        await wait_for(beating, 60, f"the doomed {role} process to start and beat")
        sent = datetime.now(UTC).replace(microsecond=0)
        await accept(h.ctx, cap_alert(f"HB-{role}", codes=("430623",), sent=sent), ENGINE)

        async def holding() -> bool:
            return bool(await _held(redis, streams, name))

        await wait_for(holding, 60, f"the doomed {role} process to hold entries")
        doomed.kill()
        killed = time.monotonic()
        # What it held when it died (nobody else may claim it for the 5-s heartbeat TTL).
        held = await _held(redis, streams, name)
        assert held, "the killed process held nothing: nothing to take over"

        async def taken() -> bool:
            return not await _held(redis, streams, name)

        await wait_for(taken, LEASE_S, "another process to take the dead one's entries")
        took = time.monotonic() - killed
        assert took < WITHIN_S, f"taken over after {took:.1f} s, not within seconds"

        async def handled() -> bool:
            # An entry handled is acknowledged and deleted from its stream.
            for stream, entry_id in held:
                if await redis.xrange(stream, entry_id, entry_id):
                    return False
            return True

        await wait_for(handled, 60, "the dead process's entries handled by the heir")
        # Handled too within seconds: the claims the dead worker held count as expired for
        # the heir (they name their holder), not after the lease (the heir's sends of what
        # it took get 5 s more on a loaded machine; the lease is 30 s).
        done = time.monotonic() - killed
        assert done < WITHIN_S + 5, f"handled after {done:.1f} s, not within seconds"
        for p in procs:
            assert not p.tracebacks(), p.tracebacks()
        save_figures({"test": f"heartbeat_takeover_{role}", "held": len(held),
                      "taken_after_s": round(took, 2), "handled_after_s": round(done, 2),
                      "lease_s": LEASE_S})
    finally:
        for p in procs:
            p.kill()
        await h.app.close()
