"""The engine as `warnbus serve` processes of a benchmark run (see `warnbus.tools.bench.server`),
and the stage of the runs that confirm or attack through the providers' webhooks."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from channels.sim.officers import OfficerModel
from warnbus.registry import Registry, load_registry
from warnbus.runtime.app import DEFAULT_CHANNELS
from warnbus.runtime.services import free_port
from warnbus.tools.bench.env import (
    NO_BROKER,
    BenchEnv,
    BenchError,
    log_tail,
    pid_cpu,
    wait_http,
    write_config,
)
from warnbus.tools.bench.fanout import QUOTA_LIFT
from warnbus.tools.simulation import SimulatedWorld, start_world


@dataclass(frozen=True)
class Stage:
    """What a run with the simulated providers sets up before its engine starts: the
    registry, the engine's port and URL, a full-scope feed token, and the simulators."""

    registry_dir: Path
    registry: Registry
    port: int
    base: str
    token: str
    world: SimulatedWorld


async def silent_stage(env: BenchEnv, counties: int) -> Stage:
    """A registry of `counties`, and the simulators in this process with quotas lifted and
    officers who never answer by themselves (a run tells them to, or nobody confirms)."""
    reg = env.registry(counties)
    registry = load_registry(reg)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    silent = OfficerModel(seed=7, responsive=0.0, unreachable=0.0)
    world = await start_world(registry.data, base_url=base, mqtt_url=env.mqtt_url,
                              officers=silent, time_factor=QUOTA_LIFT, offline_speakers=0,
                              speaker_fail_rate=0.0)
    return Stage(reg, registry, port, base, secrets.token_urlsafe(24), world)


class Servers:
    """`warnbus serve` (every role) on our Redis, with test channels or the given ones, and
    `extra` more `--role api` processes on the same port (SO_REUSEPORT)."""

    def __init__(self, env: BenchEnv, registry: Path, port: int, token: str, extra: int,
                 configs: Mapping[str, Mapping[str, Any]] | None = None,
                 args: Sequence[str] = (), feeds: Sequence[Mapping[str, Any]] = ()) -> None:
        channels = configs or DEFAULT_CHANNELS
        cfg = write_config(env, registry, port, channels, "serve",
                           mqtt_url=env.mqtt_url if configs else NO_BROKER, feeds=feeds)
        self.env, self.base = env, f"http://127.0.0.1:{port}"
        self.ready = [env.tmp / f"api-{i}.ready" for i in range(extra)]
        self.procs: list[subprocess.Popen[bytes]] = []
        with (env.tmp / "serve.log").open("wb") as log:
            for i, roles in enumerate([[]] + [["--role", "api"]] * extra):
                ready = ["--ready-file", str(self.ready[i - 1])] if i else []
                self.procs.append(subprocess.Popen(
                    [sys.executable, "-m", "warnbus.tools.bench.server", str(cfg), str(port),
                     *roles, *ready, *(args if not i else ())],
                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                    env={**os.environ, "WARNBUS_API_TOKEN": token}))

    async def wait(self) -> None:
        log = self.env.tmp / "serve.log"
        await wait_http(f"{self.base}/healthz", self.exited, 60.0, f"warnbus serve (see {log})",
                        log)
        deadline = time.monotonic() + 60.0
        while not all(r.exists() for r in self.ready):
            if self.exited() is not None or time.monotonic() > deadline:
                raise BenchError(f"an extra API process did not start: {log_tail(log)}")
            await asyncio.sleep(0.1)

    def exited(self) -> int | None:
        """The exit code of a server process that has exited (None: all are running)."""
        return next((code for p in self.procs if (code := p.poll()) is not None), None)

    def cpu(self) -> float:
        return sum(pid_cpu(p.pid) for p in self.procs)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
