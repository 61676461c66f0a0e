"""The simulated providers in a process of their own, for the end-to-end fan-out runs.

`python -m warnbus.tools.bench.world REGISTRY_DIR BASE_URL MQTT_URL [--time-factor F] [--seed N]`
starts the Twilio and WeCom simulators, the simulated officers and the loudspeaker fleet
(`warnbus.tools.simulation.start_world`), prints one JSON line with the channel configurations
pointing at them, and runs until its standard input closes or it gets SIGTERM.

Real providers run on other machines: with the simulators in the engine's process, their
work (thousands of status callbacks, call events and speaker reports) was charged to the
engine's core. In a process of their own they take the other core, as a remote provider
would take none of the engine's.
"""

from __future__ import annotations

import argparse
import asyncio
import json

from channels.sim.officers import OfficerModel
from warnbus.registry import load_registry
from warnbus.runtime.logs import configure_logging
from warnbus.tools.bench.env import hold
from warnbus.tools.simulation import start_world


def officers(seed: int) -> OfficerModel:
    """The demo's officers: most answer, some late, a few unreachable (failure callbacks)."""
    return OfficerModel(seed=seed, responsive=0.85, per_message=0.55, unreachable=0.02,
                        delay_s=(0.3, 3.0))


async def run(registry_dir: str, base_url: str, mqtt_url: str, time_factor: float,
              seed: int) -> None:
    registry = load_registry(registry_dir)
    world = await start_world(registry.data, base_url=base_url, mqtt_url=mqtt_url,
                              officers=officers(seed), time_factor=time_factor)
    try:
        await hold(json.dumps({"configs": world.configs}))
    finally:
        await asyncio.wait_for(world.stop(), 10)


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m warnbus.tools.bench.world")
    p.add_argument("registry_dir")
    p.add_argument("base_url")
    p.add_argument("mqtt_url")
    p.add_argument("--time-factor", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=7)
    ns = p.parse_args()
    configure_logging(level="warning")
    asyncio.run(run(ns.registry_dir, ns.base_url, ns.mqtt_url, ns.time_factor, ns.seed))


if __name__ == "__main__":
    main()
