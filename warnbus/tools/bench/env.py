"""What a scenario runs in: a temp dir, real Redis (AOF) and mosquitto, a registry.

Everything is started on 127.0.0.1 and stopped (and the temp dir removed) on exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TextIO

import aiohttp
import structlog
from redis.asyncio import Redis

from warnbus.errors import WarnbusError
from warnbus.runtime.app import App
from warnbus.runtime.config import EngineSettings, Secret, Settings
from warnbus.runtime.logs import configure_logging
from warnbus.runtime.services import ManagedService, start_mosquitto, start_redis
from warnbus.state import keys
from warnbus.state.queue import Lanes

log = structlog.get_logger("warnbus.tools.bench")

#: Where no broker is needed (engine-only runs): nothing listens there, nothing connects.
NO_BROKER = "mqtt://127.0.0.1:9"
ACK_SECRET = "bench-ack-secret-0123456789abcdef"


class BenchError(WarnbusError):
    """A benchmark could not produce a figure (timeout, wrong count, server failure)."""

    code = "bench"


@dataclass
class BenchEnv:
    """A scenario's servers and files; use `bench_env()` to get one."""

    tmp: Path
    redis: ManagedService
    mqtt: ManagedService | None = None
    log_level: str = "warning"
    _log: TextIO | None = field(default=None, repr=False)

    @property
    def mqtt_url(self) -> str:
        return self.mqtt.url if self.mqtt is not None else NO_BROKER

    @property
    def log_path(self) -> Path:
        return self.tmp / "engine.log"

    def settings(self, registry: Path, **engine: Any) -> Settings:
        """Engine settings on our Redis; defaults everywhere else (what production gets)."""
        return Settings(
            data_dir=str(self.tmp / "data"), redis_url=self.redis.url, mqtt_url=self.mqtt_url,
            registry=str(registry), ack_secret=Secret(ACK_SECRET), log_level=self.log_level,
            engine=EngineSettings(**engine),
        )

    def registry(self, counties: int, seed: int = 0) -> Path:
        """Generate a registry of `counties` counties with `warnbus registry generate`.

        In a child process, so the generator's memory never counts in the engine's peak RSS.
        """
        out = self.tmp / f"registry-{counties}-{seed}"
        if not (out / "grids.json").exists():
            cmd = [sys.executable, "-m", "warnbus.runtime.cli", "registry", "generate",
                   "--counties", str(counties), "--seed", str(seed), "--out", str(out)]
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
            if done.returncode != 0:
                raise BenchError(f"registry generation failed: {done.stderr.strip()[-500:]}")
        return out

    async def flush(self) -> None:
        """Empty Redis between runs, so each run starts from the same state."""
        client = Redis.from_url(self.redis.url)
        try:
            await client.flushall()
        finally:
            await client.aclose()


@contextlib.contextmanager
def bench_env(*, mqtt: bool = False, log_level: str = "warning",
              appendfsync: Literal["always", "everysec"] = "always") -> Iterator[BenchEnv]:
    """Start Redis (AOF, fsync `appendfsync`: the shipped default is always) and optionally
    mosquitto in a temp dir; stop both after."""
    with tempfile.TemporaryDirectory(prefix="warnbus-bench-") as raw:
        tmp = Path(raw)
        redis = start_redis(tmp / "redis", appendonly=True, appendfsync=appendfsync)
        broker: ManagedService | None = None
        env = BenchEnv(tmp, redis, log_level=log_level)
        try:
            if mqtt:
                broker = start_mosquitto(tmp / "mqtt")
                env.mqtt = broker
            env._log = env.log_path.open("a", encoding="utf-8")
            # Engine logs go to a file: the figures are the output, and at `info` level one
            # JSON line per attempt is part of the cost being measured, not screen noise.
            configure_logging(level=log_level, stream=env._log, json=True)
            yield env
        finally:
            if env._log is not None:
                env._log.close()
            if broker is not None:
                broker.stop()
            redis.stop()


# --------------------------------------------------------------------------- Redis probes


async def key_bytes(redis: Any) -> dict[str, int]:
    """Bytes each kind of key holds (`MEMORY USAGE key SAMPLES 0`), summed over the database.

    Per key rather than an `INFO memory` delta: the allocator keeps freed pages and FLUSHALL
    leaves a few hundred KB behind, which made deltas drift by 20 % between runs. Run on a
    database that holds one campaign only, this is what the campaign costs.
    """
    names: list[bytes] = [k async for k in redis.scan_iter(count=2000)]
    sizes: dict[str, int] = {}
    for i in range(0, len(names), 5000):
        chunk = names[i : i + 5000]
        pipe = redis.pipeline(transaction=False)
        for name in chunk:
            pipe.memory_usage(name, samples=0)
        for name, used in zip(chunk, await pipe.execute(), strict=True):
            kind = keys.family_of(name.decode())
            sizes[kind] = sizes.get(kind, 0) + int(used or 0)
    return sizes


def pid_cpu(pid: int) -> float:
    """User + system CPU seconds of another process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_cpu() -> float:
    """User + system CPU seconds of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def redis_cpu(redis: Any) -> float:
    """CPU seconds redis-server has used so far (INFO cpu)."""
    info = await redis.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


async def redis_commands(redis: Any) -> dict[str, float]:
    """Microseconds redis-server has spent per command so far (INFO commandstats)."""
    info = await redis.info("commandstats")
    return {name.removeprefix("cmdstat_"): float(v["usec"]) for name, v in info.items()}


def command_us(before: Mapping[str, float], after: Mapping[str, float], per: int,
               top: int = 8) -> dict[str, float]:
    """The commands that took most of Redis's time between two snapshots, in µs per `per`."""
    spent = {k: v - before.get(k, 0.0) for k, v in after.items()}
    ranked = sorted(((k, v) for k, v in spent.items() if v > 0), key=lambda kv: -kv[1])
    return {k: round(v / max(per, 1), 2) for k, v in ranked[:top]}


async def lane_entries_added(redis: Any, lanes: Lanes) -> int:
    """How many entries were ever added to the lanes (XINFO STREAM entries-added, Redis 7)."""
    total = 0
    for channel in lanes.channels:
        for lane in lanes.lanes_of(channel):
            info = await redis.xinfo_stream(lane)
            value = info.get("entries-added", info.get(b"entries-added"))
            if value is None:
                raise BenchError("Redis has no XINFO entries-added: Redis 7 or later is needed")
            total += int(value)
    return total


async def close_app(app: App, timeout_s: float = 5.0) -> bool:
    """Close an engine, giving up after `timeout_s`; return whether it closed.

    The MQTT loudspeaker channel's `aclose` can wait forever on its listener task (seen
    about one run in five, see docs/benchmarks.md); a benchmark must still end.
    """
    task = asyncio.ensure_future(app.close())
    done, _ = await asyncio.wait({task}, timeout=timeout_s)
    if not done:
        log.warning("engine did not close in time; left behind", timeout_s=timeout_s)
    return bool(done)


@dataclass(frozen=True)
class WaveTimes:
    """perf_counter times at which the inbox was planned and every lane entry was recorded."""

    planned: float
    recorded: float


# The inbox's length, then the lanes' total (one round trip and one small reply per poll).
# Bench-only, on the bench's single Redis: its keys span cluster slots, which the engine's
# scripts never do (tests/engine/test_cluster_slots.py checks those).
_DEPTHS = """
local lanes = 0
for i = 2, #KEYS do lanes = lanes + redis.call('XLEN', KEYS[i]) end
return {redis.call('XLEN', KEYS[1]), lanes}
"""


async def wait_first_wave(redis: Any, lanes: Lanes, timeout_s: float) -> WaveTimes:
    """Wait until the inbox is empty (planned) and every lane is empty (all recorded).

    The inbox item of an alert is deleted only after its planning finished, and a lane entry
    only after its attempt is stored; so both empty means the first wave is done. The poll
    runs in the engine's own event loop, so it polls every 1 % of the time waited so far
    (2-20 ms): the times it reports are within 1 % and it takes little of the engine's CPU.
    """
    names = [keys.INBOX] + [lane for c in lanes.channels for lane in lanes.lanes_of(c)]
    start = time.perf_counter()
    deadline = start + timeout_s
    planned = 0.0
    while True:
        inbox, queued = await redis.eval(_DEPTHS, len(names), *names)
        now = time.perf_counter()
        if inbox == 0:
            planned = planned or now
            if queued == 0:
                return WaveTimes(planned, now)
        if now > deadline:
            raise BenchError(f"first wave not done after {timeout_s:g}s: inbox {inbox}, "
                             f"lane entries {queued}")
        await asyncio.sleep(min(0.02, max(0.002, (now - start) / 100)))


async def hold(announce: str) -> None:
    """In a child process of a benchmark: tell the parent we are ready (one line on standard
    output, which it waits for), then return when it releases us (`until_released`)."""
    sys.stdout.write(announce + "\n")
    sys.stdout.flush()
    await until_released()


async def until_released() -> None:
    """In a child process of a benchmark: return when the parent closes our standard input
    (it is done, or died) or on SIGTERM / SIGINT."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    eof = asyncio.ensure_future(reader.read())
    waiting = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({eof, waiting}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        eof.cancel()
        waiting.cancel()


def write_config(env: BenchEnv, registry: Path, port: int,
                 channels: Mapping[str, Mapping[str, Any]], name: str, *,
                 mqtt_url: str | None = None, feeds: Sequence[Mapping[str, Any]] = ()) -> Path:
    """A `warnbus serve` TOML file for an engine process on the scenario's Redis: the API on
    `port`, the given channel (and feed) configurations, the benchmarks' ack secret."""
    top = {"data_dir": str(env.tmp / f"{name}-data"), "redis_url": env.redis.url,
           "mqtt_url": mqtt_url or env.mqtt_url, "registry": str(registry),
           "ack_secret": ACK_SECRET, "log_level": env.log_level}
    lines = [f"{k} = {_toml(v)}" for k, v in top.items()]
    lines += ["[server]", 'host = "127.0.0.1"', f"port = {port}",
              f'public_url = "http://127.0.0.1:{port}"']
    for channel, fields in channels.items():
        lines.append(f"[channels.{channel}]")
        lines += [f"{k} = {_toml(v)}" for k, v in fields.items()]
    for feed in feeds:
        lines.append("[[feeds]]")
        lines += [f"{k} = {_toml(v)}" for k, v in feed.items()]
    path = env.tmp / f"{name}.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _toml(value: Any) -> str:
    """A TOML value for a string, number, boolean or a list of them (JSON strings are TOML
    basic strings, JSON arrays of them TOML arrays)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value, ensure_ascii=False)


async def release(proc: asyncio.subprocess.Process, *, terminate: bool = False,
                  within_s: float = 15.0) -> None:
    """End a child process of a benchmark: close its standard input (children that wait in
    `until_released` leave), SIGTERM it with `terminate`, and kill it after `within_s`."""
    if proc.stdin is not None:
        proc.stdin.close()
    if terminate and proc.returncode is None:
        proc.terminate()
    try:
        await asyncio.wait_for(proc.wait(), within_s)
    except TimeoutError:
        proc.kill()
        await proc.wait()


def log_tail(path: Path, size: int = 2000) -> str:
    """The end of a child process's log ('' if it has none)."""
    return path.read_text(errors="replace")[-size:] if path.exists() else ""


async def wait_http(url: str, exited: Callable[[], int | None], timeout_s: float,
                    what: str, log: Path | None = None) -> None:
    """Wait until `url` answers (any status: /healthz is 503 without a broker); fail at once
    if the process serving it has exited (`exited` returns its exit code), quoting the end
    of its `log` (the bench's temporary directory is gone by the time anyone looks)."""
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            code = exited()
            if code is not None:
                tail = log_tail(log) if log else ""
                raise BenchError(f"{what} exited with {code}" + (f":\n{tail}" if tail else ""))
            try:
                async with http.get(url) as resp:
                    await resp.read()
                    return
            except aiohttp.ClientError:
                await asyncio.sleep(0.1)
    raise BenchError(f"{what} did not answer within {timeout_s:g}s")
