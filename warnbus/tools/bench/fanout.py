"""`county` and `province`: a red warning for the whole area, accepted -> first wave handed over.

Engine-only: a `NullChannel` on every channel name (voice, sms, wecom, loudspeaker), so what
is measured is the engine's own path (accept, match, plan, enqueue on Redis streams, claim
Lua, send, record Lua, XACK) on a real Redis with AOF (fsync always by default). End to end
(county): the real Twilio, WeCom and MQTT loudspeaker channels against the shipped simulators
and a real mosquitto, with the HTTP API up for the simulators' status callbacks and
confirmations.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import resource
import sys
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web
from redis.asyncio import Redis

from warnbus.domain.models import Alert
from warnbus.flow.credentials import ENGINE
from warnbus.flow.intake import accept
from warnbus.plugin import Channel
from warnbus.registry import Registry, load_registry
from warnbus.runtime.app import DEFAULT_MEDIA, App, build_app, load_channels
from warnbus.runtime.clock import SystemClock
from warnbus.runtime.config import Settings
from warnbus.runtime.engine import ROLES
from warnbus.runtime.services import free_port
from warnbus.state import keys
from warnbus.tools.bench.alerts import geocode_area, red_alert
from warnbus.tools.bench.channels import NullChannel, SendMeter
from warnbus.tools.bench.env import (
    BenchEnv,
    BenchError,
    WaveTimes,
    close_app,
    command_us,
    key_bytes,
    lane_entries_added,
    pid_cpu,
    process_cpu,
    redis_commands,
    redis_cpu,
    release,
    wait_first_wave,
    wait_http,
    write_config,
)
from warnbus.tools.bench.world import officers
from warnbus.tools.simulation import start_world
from warnbus.web.api import make_web_app

CHANNELS = tuple(DEFAULT_MEDIA)  # the bundled policy's
SAMPLE_COUNTY_CODE = "430623"  # 华容县, the bundled sample county
PROVINCE_CODE = "430000"  # every generated county is under 43 (湖南省)
QUOTA_LIFT = 1000.0  # provider rates x1000: no simulated quota is reached


class Window(Protocol):
    def start(self) -> None: ...
    def stop(self) -> None: ...


@dataclass(frozen=True)
class FanoutOptions:
    scenario: str  # county | province
    counties: int
    runs: int
    e2e: bool
    timeout_s: float
    area_code: str  # the warning's area: a region code covering what is measured
    redis_max_connections: int | None = None  # what-if: the engine's Redis pool size
    world: str = "process"  # e2e simulators: in a process of their own, or "inproc"
    workers: int = 1  # engine-only: engine processes (this one + workers - 1 worker-only ones)
    api: str = "inproc"  # e2e: the HTTP API (provider callbacks) in this process or "process"


def rss_mb() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


async def run_fanout(opts: FanoutOptions, env: BenchEnv, window: Window) -> list[dict[str, Any]]:
    """All runs of the scenario: engine-only first (their peak RSS is the engine's), then e2e."""
    reg_dir = env.registry(opts.counties)
    registry = load_registry(reg_dir)
    samples: list[dict[str, Any]] = []
    for i in range(opts.runs):
        alert = red_alert(f"bench-{opts.scenario}-engine-{i}-{time.time_ns()}",
                          geocode_area(opts.area_code))
        sample = await engine_run(env, registry, reg_dir, alert, opts, window)
        sample["grids"] = len(registry.data.grids)
        samples.append(sample)
        # The closed engine (its matcher index alone is tens of MB) is cyclic garbage until
        # the collector runs: collect it now, so that the peak RSS of the runs is that of
        # one engine, as deployed, not of one engine plus the remains of the previous run.
        gc.collect()
    peak = rss_mb()
    for sample in samples:
        sample["rss_mb"] = peak
    if opts.e2e:
        for i, sample in enumerate(samples):
            alert = red_alert(f"bench-{opts.scenario}-e2e-{i}-{time.time_ns()}",
                              geocode_area(opts.area_code))
            sample.update(await e2e_run(env, registry, reg_dir, alert, opts))
    for sample in samples:
        mode = "e2e" if "e2e_first_wave_s" in sample else "engine"
        sample["first_wave_s"] = sample[f"{mode}_first_wave_s"]
        sample["first_wave_mode"] = mode
    return samples


def _settings(env: BenchEnv, reg_dir: Path, opts: FanoutOptions) -> Settings:
    """The engine's settings; `--redis-max-connections` overrides its Redis pool size."""
    if opts.redis_max_connections:
        return env.settings(reg_dir, redis_connections=opts.redis_max_connections)
    return env.settings(reg_dir)


async def engine_run(env: BenchEnv, registry: Registry, reg_dir: Path, alert: Alert,
                     opts: FanoutOptions, window: Window) -> dict[str, Any]:
    """One engine-only first wave on a freshly emptied Redis."""
    await env.flush()
    channels: dict[str, Channel] = {n: NullChannel(n, m) for n, m in DEFAULT_MEDIA.items()}
    meter = SendMeter()
    for ch in channels.values():
        meter.wrap(ch)
    async with _extra_workers(opts.workers - 1, env, reg_dir) as others:
        app = await build_app(_settings(env, reg_dir, opts), clock=SystemClock(),
                              channels=channels, registry=registry,
                              base_url="http://127.0.0.1:9")
        try:
            await app.engine.start()
            wave = await first_wave(app, alert, meter, opts.timeout_s, window,
                                    others=others)
        finally:
            closed = await close_app(app)
    if meter.failed:
        raise BenchError(f"{meter.failed} null-channel sends failed: the engine misbehaved")
    if wave["handed"] != wave["distinct"]:
        raise BenchError(f"{wave['handed']} sends of {wave['distinct']} deliveries: "
                         "some were sent twice, and nothing was killed")
    return {
        "deliveries": wave["handed"],
        "distinct_deliveries": wave["distinct"],
        # Entries of up to PER_ENTRY deliveries; more than deliveries / PER_ENTRY when the
        # alert was planned twice (the sweeper reclaimed an inbox item whose planning outlived
        # the lease) and the claims dropped the repeats.
        "lane_entries": wave["planned"],
        "engine_first_wave_s": wave["first_wave_s"],
        "accept_s": wave["accept_s"],
        "planned_s": wave["planned_s"],
        "recorded_s": wave["recorded_s"],
        # CPU over the same window: engine near wall time = CPU-bound in Python; well under
        # it = waiting on Redis round trips.
        "engine_cpu_s": wave["engine_cpu_s"],
        "workers_cpu_s": wave["workers_cpu_s"],  # the other engine processes (--workers)
        "redis_cpu_s": wave["redis_cpu_s"],
        "redis_us_by_command": wave["redis_us_by_command"],
        "engine_deliveries_per_s": round(wave["handed"] / wave["first_wave_s"], 1),
        "redis_bytes_per_delivery": round(wave["redis_bytes"] / wave["handed"], 1),
        "redis_bytes_by_key": {k: round(v / wave["handed"], 1)
                               for k, v in sorted(wave["redis_bytes_by_key"].items(),
                                                  key=lambda kv: -kv[1])},
        "by_channel": dict(meter.by_channel),
        "close_timeouts": int(not closed),
    }


async def e2e_run(env: BenchEnv, registry: Registry, reg_dir: Path, alert: Alert,
                  opts: FanoutOptions) -> dict[str, Any]:
    """One first wave through the real channels, the simulators and mosquitto."""
    await env.flush()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # QUOTA_LIFT lifts the simulated providers' quotas (Twilio 100/s, WeCom 40/s) out of
    # the way: with them the wave takes deliveries/quota seconds whatever the engine does
    # (reported as `quota_bound_s`); without them it shows what engine + channels can do.
    async with _world(opts.world, registry, reg_dir, base, env) as (channels, configs):
        meter = SendMeter()
        for ch in channels.values():
            meter.wrap(ch)
        split = opts.api == "process"
        async with _api_process(split, env, reg_dir, port, configs):
            runner: web.AppRunner | None = None
            # Split (the deployed layout, compose.yaml): the callbacks of the providers go to
            # an `--role api` process; this one plans and sends.
            roles = ("worker", "timer") if split else ROLES
            app = await build_app(_settings(env, reg_dir, opts), clock=SystemClock(),
                                  roles=roles, channels=channels, registry=registry,
                                  base_url=base)
            try:
                if not split:
                    runner = web.AppRunner(make_web_app(app), access_log=None)
                    await runner.setup()
                    await web.TCPSite(runner, "127.0.0.1", port).start()
                await app.engine.start()
                wave = await first_wave(app, alert, meter, opts.timeout_s, None)
            finally:
                if runner is not None:
                    await runner.cleanup()
                closed = await close_app(app)
    return {
        "e2e_first_wave_s": wave["first_wave_s"],
        "e2e_deliveries": wave["handed"],
        "e2e_failed_sends": wave["failed"],
        # The engine's process over the wave (channels; the API for the callbacks too unless
        # it runs apart); with the simulators in a process of their own, none of theirs.
        "e2e_engine_cpu_s": wave["engine_cpu_s"],
        "e2e_redis_cpu_s": wave["redis_cpu_s"],
        "e2e_close_timeouts": int(not closed),
        "e2e_by_channel": dict(meter.by_channel),
        "e2e_last_send_s": {name: round(at - wave["accepted_at"], 3)
                            for name, at in sorted(meter.last_by_channel.items())},
    }


@contextlib.asynccontextmanager
async def _world(mode: str, registry: Registry, reg_dir: Path, base: str, env: BenchEnv
                 ) -> AsyncIterator[tuple[dict[str, Channel], dict[str, dict[str, Any]]]]:
    """The real channels, pointed at simulators in their own process (default) or in this one."""
    if mode == "inproc":
        world = await start_world(registry.data, base_url=base, mqtt_url=env.mqtt_url,
                                  officers=officers(7), time_factor=QUOTA_LIFT)
        try:
            yield world.channels, world.configs
        finally:
            await world.stop()
        return
    log = (env.tmp / "world.log").open("ab")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "warnbus.tools.bench.world", str(reg_dir), base, env.mqtt_url,
        "--time-factor", str(QUOTA_LIFT), "--seed", "7",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=log)
    try:
        assert proc.stdout is not None and proc.stdin is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 120)
        if not line:
            raise BenchError(f"the simulator process exited: see {env.tmp / 'world.log'}")
        configs = json.loads(line)["configs"]
        yield load_channels(configs, base_url=base, mqtt_url=env.mqtt_url), configs
    finally:
        await release(proc)
        log.close()


@contextlib.asynccontextmanager
async def _api_process(split: bool, env: BenchEnv, reg_dir: Path, port: int,
                       configs: Mapping[str, Mapping[str, Any]]) -> AsyncIterator[None]:
    """With `split`, the HTTP API (`--role api`, the same channels) in a process of its own."""
    if not split:
        yield
        return
    cfg = write_config(env, reg_dir, port, configs, "api")
    log = (env.tmp / "api.log").open("ab")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "warnbus.tools.bench.server", str(cfg), str(port), "--role", "api",
        stdout=log, stderr=log)
    try:
        await wait_http(f"http://127.0.0.1:{port}/healthz", lambda: proc.returncode, 60,
                        f"the API process (see {env.tmp / 'api.log'})", env.tmp / "api.log")
        yield
    finally:
        await release(proc, terminate=True)
        log.close()


async def first_wave(app: App, alert: Alert, meter: SendMeter, timeout_s: float,
                     window: Window | None, *, others: Sequence[int] = ()) -> Mapping[str, Any]:
    """Accept `alert`, wait for its first wave, and time it (perf_counter seconds).

    The probes use a client of their own: the engine's connection pool is what is being
    measured, and a probe taking one of its connections could change the outcome.
    """
    probe = Redis.from_url(app.ctx.settings.redis_url)
    try:
        redis_cpu0, cpu0 = await redis_cpu(probe), process_cpu()
        others0 = sum(pid_cpu(pid) for pid in others)
        commands0 = await redis_commands(probe)
        if window is not None:
            window.start()
        t0 = time.perf_counter()
        try:
            await accept(app.ctx, alert, ENGINE)
            accepted = time.perf_counter()
            times = await wait_first_wave(probe, app.ctx.lanes, timeout_s)
            # Snapshot now: fallbacks and callbacks after the wave must not move its end.
            last, handed, failed = meter.last, meter.handed, meter.failed
        finally:
            if window is not None:
                window.stop()
        cpu = {"engine_cpu_s": round(process_cpu() - cpu0, 3),
               "workers_cpu_s": round(sum(pid_cpu(pid) for pid in others) - others0, 3),
               "redis_cpu_s": round(await redis_cpu(probe) - redis_cpu0, 3)}
        commands = await redis_commands(probe)
        if handed == 0:
            raise BenchError("the warning matched nothing: no delivery was sent")
        if others:
            # Other processes sent part of the wave: count the attempts they all recorded,
            # and end the wave when the last one was recorded (Redis saw it).
            handed = await _recorded_attempts(probe)
            last = times.recorded
        figures = await _wave_figures(probe, app, t0, accepted, times, last, handed, failed)
        # Where Redis spent its time (µs per delivery; a script's commands count inside it).
        figures["redis_us_by_command"] = command_us(commands0, commands, handed)
        return figures | cpu
    finally:
        await probe.aclose()


async def _recorded_attempts(probe: Redis) -> int:
    """Attempts recorded by every process (the `attempts` counter of the campaigns' meta)."""
    total = 0
    async for key in probe.scan_iter(match=f"{keys.PREFIX}:{{c:*}}:meta", count=1000):
        total += int(await probe.hget(key, "attempts") or 0)
    return total


async def _distinct_deliveries(probe: Redis) -> int:
    """Deliveries ever claimed: one state per delivery id, however often it was sent."""
    total = 0
    async for key in probe.scan_iter(match=f"{keys.PREFIX}:{{c:*}}:dstate", count=1000):
        total += int(await probe.hlen(key))
    return total


@contextlib.asynccontextmanager
async def _extra_workers(n: int, env: BenchEnv, reg_dir: Path) -> AsyncIterator[list[int]]:
    """`n` worker-only engine processes on the scenario's Redis, running while in the block
    (yields their process ids)."""
    procs: list[asyncio.subprocess.Process] = []
    log = (env.tmp / "workers.log").open("ab")
    try:
        for _ in range(n):
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "warnbus.tools.bench.worker", env.redis.url, str(reg_dir),
                "--data-dir", str(env.tmp / "data"),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=log)
            procs.append(proc)
        for proc in procs:
            assert proc.stdout is not None
            if not await asyncio.wait_for(proc.stdout.readline(), 120):
                raise BenchError(f"a worker process exited: see {env.tmp / 'workers.log'}")
        yield [proc.pid for proc in procs]
    finally:
        await asyncio.gather(*(release(proc, within_s=20) for proc in procs))
        log.close()


async def _wave_figures(probe: Redis, app: App, t0: float, accepted: float, times: WaveTimes,
                        last: float, handed: int, failed: int) -> dict[str, Any]:
    stored = await key_bytes(probe)
    return {
        "accepted_at": accepted,
        "accept_s": round(accepted - t0, 6),
        "planned_s": round(times.planned - accepted, 6),
        "first_wave_s": round(last - accepted, 6),
        "recorded_s": round(times.recorded - accepted, 6),
        "planned": await lane_entries_added(probe, app.ctx.lanes),
        "redis_bytes": sum(stored.values()),
        "redis_bytes_by_key": stored,
        "handed": handed,
        "failed": failed,
        "distinct": await _distinct_deliveries(probe),
    }
