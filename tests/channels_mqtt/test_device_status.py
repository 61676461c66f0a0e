"""Speaker status (online/offline, last heartbeat) is kept in Redis by the process that runs
the loudspeaker channel, and shown by a console that runs no such channel (`--role api`).

Real mosquitto and redis-server; simulated speakers go offline (their LWT) and come back.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from loudspeaker_kit import KEY, RecordingSink, channel
from redis.asyncio import Redis

from channels.loudspeaker import Loudspeakers
from channels.loudspeaker_status import DeviceStatusSink
from channels.sim.speakers import SpeakerFleet
from tests.console.console_kit import add_users, sign_in
from tests.engine.helpers import Harness, make_harness
from tests.waits import until
from warnbus.runtime.app import build_app
from warnbus.runtime.config import Settings
from warnbus.state.devices import DeviceStatusBook
from warnbus.web.api import make_web_app

pytestmark = pytest.mark.timeout(60)

Device = tuple[str, str]  # (device id, its village code)


class StatusSink(RecordingSink):
    """The worker's sink: keeps device status the way the engine does (warnbus.state.devices)."""

    def __init__(self, redis: Redis) -> None:
        super().__init__()
        self.book = DeviceStatusBook(redis)
        self.kept: list[str] = []  # device ids, as each report is written

    async def device_status(self, device_id: str, state: str | None, since: float, seen: float,
                            area: str | None) -> None:
        await self.book.device_status(device_id, state, since, seen, area)
        self.kept.append(device_id)


@pytest_asyncio.fixture
async def console_app(redis_url: str) -> AsyncIterator[tuple[TestClient, Harness]]:  # type: ignore[type-arg]
    """The api process: the console with the engine's test channels, no MQTT channel."""
    h = await make_harness(redis_url)
    assert not any(hasattr(ch, "devices_status") for ch in h.app.engine.channels.values())
    await add_users(h)
    client = TestClient(TestServer(make_web_app(h.app)))
    await client.start_server()
    await sign_in(client, "dora")
    yield client, h
    await client.close()
    await h.app.close()


@pytest_asyncio.fixture
async def worker_redis(redis_url: str) -> AsyncIterator[Redis]:
    r = Redis.from_url(redis_url)
    yield r
    await r.aclose()


async def listening(mqtt_url: str, prefix: str, sink: StatusSink) -> Loudspeakers:
    ch = channel(mqtt_url, prefix)
    assert isinstance(sink, DeviceStatusSink)
    await ch.start(sink)
    return ch


def two_speakers(h: Harness) -> list[Device]:
    devices = sorted(h.ctx.registry.data.devices.values(), key=lambda d: d.id)
    return [(d.id, d.region) for d in devices[:2]]


async def shown(client: TestClient) -> dict[str, dict[str, Any]]:  # type: ignore[type-arg]
    r = await client.get("/console/registry/devices?format=json")
    assert r.status == 200
    return {d["id"]: d for d in (await r.json())["devices"]}


async def test_console_without_the_channel_shows_lwt_and_heartbeats(
    mqtt_url: str, prefix: str, worker_redis: Redis, console_app: tuple[TestClient, Harness],
) -> None:
    client, h = console_app
    (a, area_a), (b, area_b) = devices = two_speakers(h)
    assert (await shown(client))[a]["state"] == "unknown"
    ch = await listening(mqtt_url, prefix, StatusSink(worker_redis))
    fleet = SpeakerFleet(mqtt_url, devices, command_key=KEY, topic_prefix=prefix, heartbeat_s=0.3)
    await fleet.start()
    try:
        async def both_online() -> dict[str, dict[str, Any]] | None:
            s = await shown(client)
            ok = all(s[d]["state"] == "online" and s[d]["last_heartbeat"] for d in (a, b))
            return s if ok else None

        first = (await until(both_online, "both speakers online",
                             within=10.0))[a]["last_heartbeat"]
        assert time.time() - 10 < first <= time.time()

        async def beat() -> bool:
            return bool((await shown(client))[a]["last_heartbeat"] > first)

        await until(beat, "a later heartbeat of a", within=10.0)
        # a's network is cut: mosquitto publishes its LWT (offline, retained).
        cut = time.time()
        await fleet.drop(a)

        async def a_offline() -> dict[str, dict[str, Any]] | None:
            s = await shown(client)
            return s if s[a]["state"] == "offline" else None

        s = await until(a_offline, "a offline (LWT)", within=10.0)
        last = s[a]["last_heartbeat"]
        assert s[b]["state"] == "online" and last is not None and first < last <= cut + 0.1
        assert s[a]["since"] >= cut - 0.5
        r = await client.get("/console/registry/devices", headers={"Accept": "text/html"})
        page = await r.text()
        assert f'data-dev="{a}"><b class="errc">离线</b>' in page
        assert f'data-dev="{b}"><b class="okc">在线</b>' in page and "最后心跳" in page
        # The worker restarts: its new channel hears a's retained LWT but no heartbeat of
        # it; the last heartbeat kept in Redis stays.
        await ch.aclose()
        restarted = StatusSink(worker_redis)
        ch = await listening(mqtt_url, prefix, restarted)
        await until(lambda: a in ch.devices_status() and a in restarted.kept,
                    "the new channel to hear a's status and keep it", within=10.0)
        s = await shown(client)
        assert s[a]["state"] == "offline" and s[a]["last_heartbeat"] == last
        # Back online: the console shows it again, with a fresh heartbeat.
        await fleet.revive(a)

        async def a_back() -> bool:
            s = await shown(client)
            return s[a]["state"] == "online" and s[a]["last_heartbeat"] > last

        await until(a_back, "a online again", within=10.0)
        assert area_a and area_b
    finally:
        await fleet.stop()
        await ch.aclose()


async def test_worker_process_and_api_process_share_device_status(
    redis_url: str, mqtt_url: str, prefix: str,
) -> None:
    settings = Settings(redis_url=redis_url, mqtt_url=mqtt_url, channels={
        "loudspeaker": {"type": "mqtt-loudspeaker", "topic_prefix": prefix,
                        "command_key": KEY}})
    worker = await build_app(settings, roles=("worker",))
    api = await build_app(settings, roles=("api",))
    fleet: SpeakerFleet | None = None
    try:
        await worker.engine.start()
        device = sorted(api.ctx.registry.data.devices.values(), key=lambda d: d.id)[0]
        fleet = SpeakerFleet(mqtt_url, [(device.id, device.region)], command_key=KEY,
                             topic_prefix=prefix)
        await fleet.start()

        async def kept() -> bool:
            rec = (await DeviceStatusBook(api.ctx.redis).all()).get(device.id)
            return rec is not None and rec.state.value == "online"

        await until(kept, "the worker to keep the speaker's status", within=5.0)
        await fleet.drop(device.id)

        async def offline() -> bool:
            rec = (await DeviceStatusBook(api.ctx.redis).all()).get(device.id)
            return rec is not None and rec.state.value == "offline" and rec.seen > 0

        await until(offline, "the LWT to reach the api process", within=5.0)
    finally:
        if fleet is not None:
            await fleet.stop()
        await api.close()
        await worker.close()
