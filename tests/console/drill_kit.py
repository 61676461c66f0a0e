"""A county drill on the provider simulators, driven on a ManualClock.

The engine runs in this process on the real channels (the official Twilio, Aliyun and Tencent
SDKs, WeCom over HTTP) against the simulators of a provider set (`--providers twilio|cn`,
`warnbus.tools.simulation`); its web app listens on a real
port, so the simulators' receipts, key presses, SMS replies and card clicks come back through
the same hooks as in production. The clock moves only when the drill says so; between moves
the engine and the simulators run until neither has anything left to do.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import msgspec
from aiohttp import web

from channels.sim.officers import OfficerModel
from channels.testing import TestChannel, TestChannelConfig
from tests.engine.helpers import T0, Harness
from warnbus.plugin import Medium
from warnbus.registry import Registry, default_registry_path, load_registry
from warnbus.runtime.app import build_app, token_hash
from warnbus.runtime.clock import ManualClock
from warnbus.runtime.config import EngineSettings, ServerSettings, Settings, TokenSettings
from warnbus.runtime.services import free_port
from warnbus.tools.simulation import ProviderWorld, start_providers
from warnbus.web.api import make_web_app

TOKEN = "record-test-county-token"


@dataclass
class Drill:
    h: Harness
    world: ProviderWorld
    base: str  # the engine's URL
    registry: Registry

    @property
    def clock(self) -> ManualClock:
        return self.h.clock

    async def settle(self) -> None:
        """Run the engine and the simulators until neither has anything left to do now."""
        for _ in range(50):
            n = await self.h.drain()
            for server in self.world.servers:
                await server.wait_idle(10.0)
            await self.world.wecom.drain(10.0)
            if n == 0 and await self.h.drain() == 0:
                return
        raise AssertionError("the drill did not settle")

    async def run_until(self, t: float, step_s: float = 10.0) -> None:
        """Move the clock to `t` in steps of `step_s`, settling after each."""
        while self.clock.now() < t:
            self.clock.set(min(t, self.clock.now() + step_s))
            await self.settle()

    def http(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(self.base, cookie_jar=aiohttp.CookieJar(unsafe=True))


@contextlib.asynccontextmanager
async def drill(redis_url: str, officers: OfficerModel, providers: str
                ) -> AsyncIterator[Drill]:
    """The sample county's engine on a provider set's simulators (no loudspeakers on MQTT:
    the speakers are a test channel here, their rows are not a provider's)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    registry = load_registry(default_registry_path())
    clock = ManualClock(T0.timestamp())
    no_speakers = msgspec.structs.replace(registry.data, devices={})
    world = await start_providers(providers, no_speakers, base_url=base,
                                  mqtt_url="mqtt://127.0.0.1:9", officers=officers,
                                  clock=clock.now)
    channels = {**world.channels, "loudspeaker": TestChannel(
        "loudspeaker", TestChannelConfig(medium=Medium.LOUDSPEAKER))}
    settings = Settings(redis_url=redis_url, mqtt_url="mqtt://127.0.0.1:9",
                        server=ServerSettings(port=port), engine=EngineSettings(),
                        routes=world.routes, limits=world.limits)
    app = await build_app(settings, channels=channels, clock=clock, registry=registry,
                          base_url=base)
    app.tokens = (TokenSettings("county", token_hash(TOKEN), roles=("officer",)),)
    await app.engine.setup()
    runner = web.AppRunner(make_web_app(app), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    h = Harness(app, clock, channels)  # type: ignore[arg-type]
    try:
        yield Drill(h, world, base, registry)
    finally:
        await runner.cleanup()
        await app.close()
        await world.stop()
