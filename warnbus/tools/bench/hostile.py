"""`hostile`: how long the engine's event loop is held while hostile requests come in.

The engine runs as `warnbus serve` deploys it (every role, one process, see
`warnbus.tools.bench.server`), its Twilio and WeCom channels pointed at the shipped simulators, so
its webhooks are mounted and the alerts it accepts go out; the simulated officers never
answer. A probe in the engine's loop (`server --lag-file`) sleeps 10 ms again and again and
writes how late it woke: while a handler holds the loop nothing else runs, so that lateness
is the stall every webhook, ack and `/healthz` saw.

Each load (`warnbus.tools.bench.hostile_loads`) is sent with a few connections in flight; its
window runs from its first request until the engine is idle again (the waves of any alert
it accepted sent, their provider callbacks in). One load is not requests but a feed the
engine polls (`warnbus.tools.bench.hostile_feed`): its window runs from the entries' publication
until they are accepted and their waves sent. Per load: requests sent (entries published),
their statuses, the worst and the 99th-percentile stall in the window, and how many probe
samples were over the target (50 ms). An idle window first gives the machine's own noise.

On a shared machine a stall also holds the time the engine's loop thread was ready to run
but other processes had the CPUs; the probe reads that time (Linux schedstat) and
`worst_own_stall_ms` is the worst stall less it: the engine's own part. The target is for
the stall itself.
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
from warnbus.tools.bench.hostile_feed import FEED_MAX_BODY, HostileFeed
from warnbus.tools.bench.hostile_loads import FEED_LOADS, LOADS, SIZES, Target, build, feed_entries
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
    feed = HostileFeed(env.tmp)
    await feed.start()
    servers = Servers(env, stage.registry_dir, stage.port, stage.token, 0, world.configs,
                      args=("--lag-file", str(lags.path)), feeds=[feed.settings()])
    villages = tuple(sorted(code for code, r in stage.registry.data.regions.items()
                            if r.level is RegionLevel.VILLAGE))
    target = Target(stage.base, stage.token, villages, tuple(
        (name, str(cfg.get("type", ""))) for name, cfg in sorted(world.configs.items())))
    probe = Redis.from_url(env.redis.url)
    samples: list[dict[str, Any]] = []
    statuses: dict[str, Counter[str]] = {load: Counter() for load in LOADS}
    try:
        await servers.wait()
        for run in range(opts.runs):
            sample: dict[str, Any] = {k: {} for k in (
                "requests", "worst_stall_ms", "p99_stall_ms", "worst_own_stall_ms",
                "over_target", "window_s")}
            for load in ("idle", *LOADS):
                count = SIZES[load][opts.quick] if load != "idle" else 0
                if load in FEED_LOADS:
                    entries = [feed.sign(b) for b in feed_entries(target, count, run,
                                                                  FEED_MAX_BODY)]
                    start = time.time()
                    feed.publish(entries)
                    done = await feed.accepted(probe, entries, opts.timeout_s)
                    statuses[load].update({"accepted": done})
                    sent_n = len(entries)
                else:
                    requests = build(load, target, count, run) if count else []
                    start = time.time()
                    if requests:
                        sent = await post_all(requests, CONNECTIONS, opts.timeout_s)
                        statuses[load].update({str(k): n for k, n in sent.statuses.items()})
                    else:
                        await asyncio.sleep(IDLE_S[opts.quick])
                    sent_n = len(requests)
                await _settle(probe, world, opts.timeout_s)
                end = time.time()
                window = await lags.window(start, end, servers)
                stalls = [lag for lag, _ in window]
                sample["requests"][load] = sent_n
                sample["worst_stall_ms"][load] = round(max(stalls, default=0.0), 1)
                sample["p99_stall_ms"][load] = round(_percentile(stalls, 0.99), 1)
                sample["worst_own_stall_ms"][load] = round(
                    max((max(0.0, lag - waited) for lag, waited in window), default=0.0), 1)
                sample["over_target"][load] = sum(s > TARGET_MS for s in stalls)
                sample["window_s"][load] = round(end - start, 2)
            samples.append(sample)
    finally:
        await probe.aclose()
        servers.stop()
        await world.stop()
        await feed.stop()
    fixed = {
        "title": "worst event-loop stall of the engine (API and every role, one process) "
                 "under each hostile load",
        "loads": list(LOADS), "target_stall_ms": TARGET_MS,
        "probe_period_ms": 1000 * LAG_PERIOD_S, "connections": CONNECTIONS,
        "statuses": {load: dict(sorted(c.items()))
                     for load, c in statuses.items()},
        "feed_loads": sorted(FEED_LOADS),
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
    """The engine's loop-lag samples (`wall_time lag_ms waited_ms` lines, see
    `server.probe_loop_lag`), read window by window."""

    def __init__(self, path: Path) -> None:
        self.path = path

    async def window(self, start: float, end: float, servers: Servers
                     ) -> list[tuple[float, float]]:
        """The (stall, time waiting for a CPU) pairs (ms) sampled between `start` and `end`
        (wall clock), once written."""
        deadline = time.monotonic() + FLUSH_WAIT_S
        while True:
            if servers.exited() is not None:
                raise BenchError("the engine exited during the hostile loads")
            samples = await asyncio.to_thread(self._read)
            if samples and samples[-1][0] >= end:
                return [(lag, waited) for t, lag, waited in samples if start <= t <= end]
            if time.monotonic() > deadline:
                raise BenchError(f"no loop-lag samples after {end:.1f} in {self.path}")
            await asyncio.sleep(0.2)

    def _read(self) -> list[tuple[float, float, float]]:
        if not self.path.exists():
            return []
        text = self.path.read_text(encoding="ascii")
        out = []
        for line in text[: text.rfind("\n") + 1].splitlines():  # whole lines only
            fields = line.split()
            if len(fields) >= 2:
                waited = float(fields[2]) if len(fields) > 2 else 0.0
                out.append((float(fields[0]), float(fields[1]), waited))
        return out
