"""An extra engine-only worker process for the fan-out runs (`warnbus bench ... --workers N`).

`python -m warnbus.tools.bench.worker REDIS_URL REGISTRY_DIR` runs the `worker` role (inbox and
lanes) with a `NullChannel` on every channel of the bundled policy, exactly as `warnbus serve
--role worker` would with providers that answer at once. It prints `ready` when its lane
workers run, and
stops when its standard input closes or on SIGTERM. The engine is CPU-bound in one Python
process; these show what more processes on the same Redis add.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from warnbus.plugin import Channel
from warnbus.runtime.app import DEFAULT_MEDIA, build_app
from warnbus.runtime.clock import SystemClock
from warnbus.runtime.config import EngineSettings, Secret, Settings
from warnbus.runtime.logs import configure_logging
from warnbus.tools.bench.channels import NullChannel
from warnbus.tools.bench.env import ACK_SECRET, NO_BROKER, hold


async def run(redis_url: str, registry_dir: str, data_dir: str) -> None:
    settings = Settings(data_dir=data_dir, redis_url=redis_url, mqtt_url=NO_BROKER,
                        registry=registry_dir, ack_secret=Secret(ACK_SECRET),
                        log_level="warning", engine=EngineSettings())
    channels: dict[str, Channel] = {n: NullChannel(n, m) for n, m in DEFAULT_MEDIA.items()}
    app = await build_app(settings, clock=SystemClock(), roles=("worker",), channels=channels,
                          base_url="http://127.0.0.1:9")
    try:
        await app.engine.start()
        await hold("ready")
    finally:
        await asyncio.wait_for(app.close(), 15)


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m warnbus.tools.bench.worker")
    p.add_argument("redis_url")
    p.add_argument("registry_dir")
    p.add_argument("--data-dir", default=str(Path.cwd()))
    ns = p.parse_args()
    configure_logging(level="warning")
    asyncio.run(run(ns.redis_url, ns.registry_dir, ns.data_dir))


if __name__ == "__main__":
    main()
