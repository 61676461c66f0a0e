"""The engine as a process of its own for the `acks` scenario: `warnbus serve`, plus one knob.

`python -m warnbus.bench.server CONFIG PORT [--lift-limits] [--role R ...]` runs every role (or
the given ones) and the HTTP API
exactly as `warnbus serve --config CONFIG --port PORT` does. With `--lift-limits` the public
rate limits of the API (per client address and in total, see `warnbus.web.api.PUBLIC_LIMITS`)
are raised out of reach but still evaluated, so their Redis cost stays in the figure: a load
generator on one address would otherwise measure the per-address limit, not the engine.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import signal
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from aiohttp import web

from warnbus.app import build_app
from warnbus.config import load_settings
from warnbus.engine import ROLES
from warnbus.logs import configure_logging
from warnbus.web import api

LIFTED = (1e9, 1e9)  # requests/s, burst


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


async def serve(config: str, port: int, lift_limits: bool, roles: Iterable[str] = ROLES,
                ready: Path | None = None) -> None:
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
    if ready is not None:
        await asyncio.to_thread(ready.write_text, "serving\n")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        await app.close()


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m warnbus.bench.server")
    p.add_argument("config")
    p.add_argument("port", type=int)
    p.add_argument("--lift-limits", action="store_true")
    p.add_argument("--role", action="append", choices=sorted(ROLES),
                   help="run only these roles (repeatable; default all), as `warnbus serve --role`")
    p.add_argument("--ready-file", type=Path, help="written once the port is served")
    ns = p.parse_args()
    asyncio.run(serve(ns.config, ns.port, ns.lift_limits, ns.role or ROLES, ns.ready_file))


if __name__ == "__main__":
    main()
