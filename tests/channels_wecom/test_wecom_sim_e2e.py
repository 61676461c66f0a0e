"""End to end with the simulator: the channel sends a card, a simulated officer taps 确认收到,
the simulator posts the encrypted, signed callback, and the sink records the confirmation."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator

import pytest_asyncio
from wecom_kit import (
    AES_KEY,
    AGENT_ID,
    CORP_ID,
    CORP_SECRET,
    TOKEN,
    RecordingSink,
    channel_config,
    delivery,
    serve_hooks,
)

from channels.sim.officers import OfficerModel
from channels.sim.wecom_sim import CallbackResult, WeComSimulator
from channels.wecom import WeCom
from warnbus.domain.models import AckVia, DeliveryKind

EVERYONE_ANSWERS = OfficerModel(responsive=1.0, per_message=1.0, unreachable=0.0,
                                delay_s=(0.05, 0.15))


class World:
    def __init__(self, sim: WeComSimulator, channel: WeCom, sink: RecordingSink) -> None:
        self.sim, self.channel, self.sink = sim, channel, sink


@pytest_asyncio.fixture
async def world() -> AsyncIterator[World]:
    sim = WeComSimulator(CORP_ID, CORP_SECRET, TOKEN, AES_KEY, EVERYONE_ANSWERS,
                         agent_id=AGENT_ID)
    api = await sim.start()
    channel = WeCom.from_config("wecom", channel_config(api))
    sink = RecordingSink()
    async with serve_hooks(channel, sink) as hooks:
        sim.callback_url = f"{hooks}/callback"  # what the admin enters in WeCom's console
        try:
            yield World(sim, channel, sink)
        finally:
            await sim.stop()
            await channel.aclose()


async def test_officer_taps_confirm(world: World) -> None:
    d = delivery()
    await world.channel.send(d)
    await world.sim.drain(5.0)
    assert world.sink.confirms == [(d.campaign_id, d.target_id, AckVia.WECOM, d.id)]
    [result] = world.sim.callbacks
    assert result == CallbackResult(world.sim.sent[0].task_id or "", d.address, 200,
                                    "update_button", "已确认收到", result.at)


async def test_many_officers(world: World) -> None:
    ds = [delivery(target=f"p{i:05d}", address=f"u{i:05d}") for i in range(30)]
    await asyncio.gather(*(world.channel.send(d) for d in ds))
    await world.sim.drain(5.0)
    assert sorted(c[1] for c in world.sink.confirms) == sorted(d.target_id for d in ds)
    assert world.sim.tokens_issued == 1


async def test_nobody_clicks_a_text(world: World) -> None:
    await world.channel.send(delivery(kind=DeliveryKind.CANCEL))
    await world.sim.drain(5.0)
    assert world.sim.callbacks == [] and world.sink.untouched


async def test_silent_officers_do_not_confirm(world: World) -> None:
    world.sim.officers = OfficerModel(responsive=0.0)
    await world.channel.send(delivery())
    await world.sim.drain(5.0)
    assert world.sink.untouched


async def test_stop_cancels_pending_clicks(world: World) -> None:
    world.sim.officers = OfficerModel(responsive=1.0, per_message=1.0, unreachable=0.0,
                                      delay_s=(30.0, 30.0))
    await world.channel.send(delivery())
    started = time.monotonic()
    await world.sim.stop()
    assert time.monotonic() - started < 2.0
    assert world.sink.untouched


async def test_callback_to_nowhere_is_given_up(world: World) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed when the block ends: connections are refused
    world.sim.callback_url = f"http://127.0.0.1:{port}/hooks/wecom/callback"
    await world.channel.send(delivery())
    await world.sim.drain(5.0)
    [result] = world.sim.callbacks
    assert result.status is None and world.sink.untouched
