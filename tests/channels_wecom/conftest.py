"""Fixtures of the WeCom tests: the simulator on a free port, a channel pointed at it, and the
channel's webhooks served on another port with a recording sink (real HTTP both ways)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest_asyncio
from wecom_kit import (
    AES_KEY,
    AGENT_ID,
    CORP_ID,
    CORP_SECRET,
    TOKEN,
    RecordingSink,
    channel_config,
    serve_hooks,
)

from channels.sim.officers import OfficerModel
from channels.sim.wecom_sim import WeComSimulator
from channels.wecom import WeCom

NOBODY_ANSWERS = OfficerModel(responsive=0.0)


@pytest_asyncio.fixture
async def sim() -> AsyncIterator[WeComSimulator]:
    s = WeComSimulator(CORP_ID, CORP_SECRET, TOKEN, AES_KEY, NOBODY_ANSWERS, agent_id=AGENT_ID)
    await s.start()
    try:
        yield s
    finally:
        await s.stop()


@pytest_asyncio.fixture
async def make_channel(sim: WeComSimulator) -> AsyncIterator[Callable[..., WeCom]]:
    """`make_channel(**config overrides)`: a WeCom channel on the simulator, closed afterwards."""
    made: list[WeCom] = []

    def make(**overrides: object) -> WeCom:
        channel = WeCom.from_config("wecom", channel_config(sim.base_url, **overrides))
        made.append(channel)
        return channel

    yield make
    for channel in made:
        await channel.aclose()


@pytest_asyncio.fixture
async def channel(make_channel: Callable[..., WeCom]) -> WeCom:
    return make_channel()


@pytest_asyncio.fixture
async def sink() -> RecordingSink:
    return RecordingSink()


@pytest_asyncio.fixture
async def hooks(channel: WeCom, sink: RecordingSink) -> AsyncIterator[str]:
    """Base URL of the channel's webhooks (`…/hooks/wecom`)."""
    async with serve_hooks(channel, sink) as base:
        yield base


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session
