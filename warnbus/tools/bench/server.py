"""The engine as a process of its own for the `acks` scenario: `warnbus serve`, plus one knob.

`python -m warnbus.tools.bench.server CONFIG PORT [--lift-limits] [--role R ...]` runs every
role (or the given ones) and the HTTP API exactly as `warnbus serve --config CONFIG --port
PORT` does. With `--lift-limits` the public
rate limits of the API (per client address and in total, see `warnbus.web.api.PUBLIC_LIMITS`)
are raised out of reach but still evaluated, so their Redis cost stays in the figure: a load
generator on one address would otherwise measure the per-address limit, not the engine.
With `--lag-file PATH` a probe in the engine's event loop writes how late each of its 10 ms
sleeps wakes up (the loop's stall), for the `hostile` scenario.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import signal
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO

from aiohttp import web

from warnbus.runtime.app import build_app
from warnbus.runtime.config import load_settings
from warnbus.runtime.engine import ROLES
from warnbus.runtime.logs import configure_logging
from warnbus.web import api

LIFTED = (1e9, 1e9)  # requests/s, burst
LAG_PERIOD_S = 0.01  # the lag probe's sleep


def public_limits() -> dict[str, Any]:
    """The shipped public limits by route prefix: {prefix: {"total": rate, "per_client": rate}}."""
    out: dict[str, Any] = {}
    for lim in getattr(api, "PUBLIC_LIMITS", ()):
        out[lim.prefix] = {"total_per_s": lim.total[0],
                           "per_client_per_s": lim.per_client[0] if lim.per_client else None}
    return out


def lift(web_app: web.Application) -> None:
    key = getattr(api, "LIMITS", None)
    if key is None:
        return  # an engine without public limits: nothing to lift
    web_app[key] = tuple(
        dataclasses.replace(lim, per_client=LIFTED if lim.per_client else None, total=LIFTED)
        for lim in web_app[key])


async def probe_loop_lag(path: Path, period_s: float = LAG_PERIOD_S) -> None:
    """Append `wall_time lag_ms waited_ms` for each `period_s` sleep of this loop: how late
    it woke, and how much of the sleep and the lateness the loop's thread spent ready to run
    but waiting for a CPU (other processes had them; Linux only, 0 elsewhere).

    Nothing on the loop runs while a handler holds it, so the lag is the stall every other
    request saw. Lines are written to the buffer at each wake and flushed once a second.
    """
    loop = asyncio.get_running_loop()
    with path.open("a", encoding="ascii") as out, contextlib.closing(_RunQueue()) as waited:
        flushed = loop.time()
        while True:
            start, queued = loop.time(), waited.ms()
            await asyncio.sleep(period_s)
            now = loop.time()
            out.write(f"{time.time():.4f} {1000 * (now - start - period_s):.3f} "
                      f"{waited.ms() - queued:.3f}\n")
            if now - flushed >= 1.0:
                out.flush()
                flushed = now


class _RunQueue:
    """The time this thread has spent ready to run but not running (/proc schedstat)."""

    def __init__(self) -> None:
        try:
            self._file: BinaryIO | None = open("/proc/thread-self/schedstat", "rb",  # noqa: SIM115
                                               buffering=0)
        except OSError:
            self._file = None

    def close(self) -> None:
        if self._file is not None:
            self._file.close()

    def ms(self) -> float:
        if self._file is None:
            return 0.0
        self._file.seek(0)
        return int(self._file.read().split()[1]) / 1e6


async def serve(config: str, port: int, lift_limits: bool, roles: Iterable[str] = ROLES,
                ready: Path | None = None, lag_file: Path | None = None) -> None:
    settings = load_settings(config)
    configure_logging(level=settings.log_level)
    app = await build_app(settings, roles=roles, base_url=f"http://127.0.0.1:{port}")
    await app.engine.start()
    web_app = api.make_web_app(app)
    if lift_limits:
        lift(web_app)
    runner = web.AppRunner(web_app, access_log=None)
    await runner.setup()
    # reuse_port: more API processes of a run may serve the same port (acks --api-processes)
    await web.TCPSite(runner, "127.0.0.1", port, reuse_port=True).start()
    probe = asyncio.create_task(probe_loop_lag(lag_file)) if lag_file is not None else None
    if ready is not None:
        await asyncio.to_thread(ready.write_text, "serving\n")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        if probe is not None:
            probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await probe
        await runner.cleanup()
        await app.close()


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m warnbus.tools.bench.server")
    p.add_argument("config")
    p.add_argument("port", type=int)
    p.add_argument("--lift-limits", action="store_true")
    p.add_argument("--role", action="append", choices=sorted(ROLES),
                   help="run only these roles (repeatable; default all), as `warnbus serve --role`")
    p.add_argument("--ready-file", type=Path, help="written once the port is served")
    p.add_argument("--lag-file", type=Path, help="the event loop's stalls are written here")
    ns = p.parse_args()
    asyncio.run(serve(ns.config, ns.port, ns.lift_limits, ns.role or ROLES, ns.ready_file,
                      ns.lag_file))


if __name__ == "__main__":
    main()
