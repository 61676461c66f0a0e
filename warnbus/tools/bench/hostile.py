"""`hostile`: how long the engine's event loop is held while hostile requests come in.

The engine runs as `warnbus serve` deploys it (every role, one process, see
`warnbus.tools.bench.server`), its Twilio and WeCom channels pointed at the shipped simulators, so
its webhooks are mounted and the alerts it accepts go out; the simulated officers never
answer. A probe in the engine's loop (`server --lag-file`) sleeps 10 ms again and again and
writes how late it woke: while a handler holds the loop nothing else runs, so that lateness
is the stall every webhook, ack and `/healthz` saw.

Each load (`warnbus.tools.bench.hostile_loads`) is sent with a few connections in flight; its
window runs from its first request until the engine is idle again (the waves of any alert
it accepted sent, their provider callbacks in). Per load: requests sent, their statuses,
the worst and the 99th-percentile stall in the window, and how many probe samples were over
the target (50 ms). An idle window first gives the machine's own noise.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from warnbus.domain.models import RegionLevel
from warnbus.domain.states import CampaignState
from warnbus.state.queue import Lanes
from warnbus.state.store import Store
from warnbus.tools.bench.env import BenchEnv, BenchError, wait_first_wave
from warnbus.tools.bench.fanout import CHANNELS
from warnbus.tools.bench.hostile_loads import LOADS, SIZES, Target, build
from warnbus.tools.bench.loadgen import post_all
from warnbus.tools.bench.server import LAG_PERIOD_S
from warnbus.tools.bench.serving import Servers, silent_stage
from warnbus.tools.simulation import SimulatedWorld

TARGET_MS = 50.0  # the worst stall a load may cause (issue 14)
CONNECTIONS = 8
IDLE_S = (2.0, 1.0)  # the reference window without load (full, --quick)
FLUSH_WAIT_S = 5.0  # the probe flushes once a second


@dataclass(frozen=True)
class HostileOptions:
    counties: int
    runs: int
    quick: bool
    timeout_s: float


async def run_hostile(opts: HostileOptions, env: BenchEnv
                      ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Run every load `opts.runs` times against one engine; return per-run figures."""
    stage = await silent_stage(env, opts.counties)
    world = stage.world
    lags = LagFile(env.tmp / "loop-lag.txt")
    servers = Servers(env, stage.registry_dir, stage.port, stage.token, 0, world.configs,
                      args=("--lag-file", str(lags.path)))
    villages = tuple(sorted(code for code, r in stage.registry.data.regions.items()
                            if r.level is RegionLevel.VILLAGE))
    target = Target(stage.base, stage.token, villages, tuple(
        (name, str(cfg.get("type", ""))) for name, cfg in sorted(world.configs.items())))
    probe = Redis.from_url(env.redis.url)
    samples: list[dict[str, Any]] = []
    statuses: dict[str, Counter[int]] = {load: Counter() for load in LOADS}
    try:
        await servers.wait()
        for run in range(opts.runs):
            sample: dict[str, Any] = {k: {} for k in (
                "requests", "worst_stall_ms", "p99_stall_ms", "over_target", "window_s")}
            for load in ("idle", *LOADS):
                count = SIZES[load][opts.quick] if load != "idle" else 0
                requests = build(load, target, count, run) if count else []
                start = time.time()
                if requests:
                    sent = await post_all(requests, CONNECTIONS, opts.timeout_s)
                    statuses[load].update(sent.statuses)
                else:
                    await asyncio.sleep(IDLE_S[opts.quick])
                await _settle(probe, world, opts.timeout_s)
                end = time.time()
                stalls = await lags.window(start, end, servers)
                sample["requests"][load] = len(requests)
                sample["worst_stall_ms"][load] = round(max(stalls, default=0.0), 1)
                sample["p99_stall_ms"][load] = round(_percentile(stalls, 0.99), 1)
                sample["over_target"][load] = sum(s > TARGET_MS for s in stalls)
                sample["window_s"][load] = round(end - start, 2)
            samples.append(sample)
    finally:
        await probe.aclose()
        servers.stop()
        await world.stop()
    fixed = {
        "title": "worst event-loop stall of the engine (API and every role, one process) "
                 "under each hostile load",
        "loads": list(LOADS), "target_stall_ms": TARGET_MS,
        "probe_period_ms": 1000 * LAG_PERIOD_S, "connections": CONNECTIONS,
        "statuses": {load: {str(k): v for k, v in sorted(c.items())}
                     for load, c in statuses.items()},
    }
    return samples, fixed


def over_target(result: dict[str, Any]) -> list[str]:
    """The loads whose worst stall (median over the runs) is over the target."""
    return [load for load in result.get("loads", ())
            if result["worst_stall_ms"].get(load, 0.0) > result["target_stall_ms"]]


async def _settle(probe: Redis, world: SimulatedWorld, timeout_s: float) -> None:
    """Wait until what a load started is over, then end its campaigns (no redials later).

    The waves of accepted alerts are sent (inbox and lanes empty) and the simulators'
    callbacks about them are in; the campaigns are then ended as their expiry would end
    them, so no redial or escalation falls into a later load's window.
    """
    await wait_first_wave(probe, Lanes(probe, CHANNELS), timeout_s)
    await world.twilio.wait_idle(timeout_s)
    await world.wecom.drain(timeout_s)
    store = Store(probe)
    for cid in await store.active_campaigns():
        await store.finish(cid, CampaignState.EXPIRED, time.time())
    world.twilio.calls.clear()
    world.twilio.messages.clear()
    world.wecom.sent.clear()


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class LagFile:
    """The engine's loop-lag samples (`wall_time lag_ms` lines), read window by window."""

    def __init__(self, path: Path) -> None:
        self.path = path

    async def window(self, start: float, end: float, servers: Servers) -> list[float]:
        """The stalls (ms) sampled between `start` and `end` (wall clock), once written."""
        deadline = time.monotonic() + FLUSH_WAIT_S
        while True:
            if servers.exited() is not None:
                raise BenchError("the engine exited during the hostile loads")
            samples = await asyncio.to_thread(self._read)
            if samples and samples[-1][0] >= end:
                return [lag for t, lag in samples if start <= t <= end]
            if time.monotonic() > deadline:
                raise BenchError(f"no loop-lag samples after {end:.1f} in {self.path}")
            await asyncio.sleep(0.2)

    def _read(self) -> list[tuple[float, float]]:
        if not self.path.exists():
            return []
        text = self.path.read_text(encoding="ascii")
        out = []
        for line in text[: text.rfind("\n") + 1].splitlines():  # whole lines only
            t, _, lag = line.partition(" ")
            if lag:
                out.append((float(t), float(lag)))
        return out
