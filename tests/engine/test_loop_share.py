"""What one process's roles do to each other's event loop: a first wave of long warnings is
sent and queued in pieces, and the planner uses the alert its API accepted, undecoded."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import msgspec
import pytest_asyncio

from channels.testing import TestChannel
from tests.engine.helpers import Harness, cap_alert, make_harness
from tests.engine.redis_monitor import Monitor
from tests.engine.test_tasks import Turns, hold
from warnbus.domain.models import Delivery, DeliveryKind, Receipt
from warnbus.flow.credentials import ENGINE
from warnbus.flow.intake import accept
from warnbus.runtime.tasks import STARTS_PER_TURN
from warnbus.state import keys
from warnbus.state.queue import PER_ENTRY, Lanes

COUNTY = ("430623",)


@pytest_asyncio.fixture
async def h(redis_url: str) -> AsyncIterator[Harness]:
    harness = await make_harness(redis_url)
    yield harness
    await harness.app.close()


class TurnChannel(TestChannel):
    """The test channel, noting the loop turn in which each send started; building each
    request holds the loop 2 ms, as a provider SDK's does for a long warning."""

    turns: Turns
    started: list[int]

    async def send(self, delivery: Delivery) -> Receipt:
        self.started.append(self.turns.n)
        hold(0.002)
        return await super().send(delivery)


async def test_a_chunk_of_sends_starts_a_few_per_loop_turn(h: Harness) -> None:
    """Every send of a chunk (64) used to start in one turn of the loop, each building its
    provider request; a webhook or timer of the process waited for all of them (here
    ~130 ms). Now a turn starts no more sends than fit the turn budget, after a first few."""
    sms = h.app.engine.dispatcher.channels["sms"]
    assert isinstance(sms, TestChannel)
    paced = TurnChannel("sms", sms.config)
    paced.turns, paced.started = Turns(), []
    h.app.engine.dispatcher.channels["sms"] = paced
    try:
        await accept(h.ctx, cap_alert(codes=COUNTY), ENGINE)
        await h.app.engine.inbox_once()
        entries = await h.ctx.lanes.read("sms", h.app.engine.consumer, 1000, 0)
        assert len(entries) > 2 * STARTS_PER_TURN * 4
        await h.app.engine.dispatcher.process("sms", entries)
    finally:
        paced.turns.stop()
    assert len(paced.sent) == len(entries)
    per_turn = [paced.started.count(t) for t in sorted(set(paced.started))]
    assert max(per_turn) <= STARTS_PER_TURN, per_turn
    # 2 ms each: two fit the 5 ms budget, after the first turn of each chunk
    chunks = -(-len(entries) // h.ctx.settings.engine.concurrency)
    assert sum(1 for n in per_turn if n > 2) <= chunks, per_turn


async def test_long_deliveries_are_queued_in_calls_of_bounded_size(h: Harness,
                                                                   redis_url: str) -> None:
    """A first wave of the longest warnings (11 KB a delivery) went to Redis in one call of
    ~10 MB, encoded and written while the loop waited; now a call carries about a MB."""
    res = await accept(h.ctx, cap_alert(codes=COUNTY), ENGINE)
    await h.app.engine.inbox_once()
    queued = await h.ctx.lanes.read("voice", h.app.engine.consumer, 1000, 0)
    long = [msgspec.structs.replace(e.delivery, id=f"{e.delivery.id}-{i}", text="暴" * 4000)
            for i, e in enumerate(queued[:5 * PER_ENTRY])]
    lanes = Lanes(h.ctx.redis, ["voice"])
    call_bytes = 1 << 20
    async with Monitor(redis_url) as mon:
        assert await lanes.enqueue(long, call_bytes=call_bytes) == len(long)
        commands = await mon.stop()
    calls = [c for c in commands if c.name in ("EVALSHA", "EVAL")]
    entry = len(msgspec.msgpack.encode(long[:PER_ENTRY]))
    assert len(calls) >= 3 and max(len(c.args[-1]) for c in calls) <= call_bytes + entry
    got = await lanes.read("voice", "other", 10 * len(long), 0)
    assert sorted(e.delivery.id for e in got) == sorted(d.id for d in long)
    assert res.created


async def test_the_planner_of_the_api_process_plans_the_alert_as_accepted(
        h: Harness, redis_url: str) -> None:
    """The alert the API accepted is handed to the planner of its process as it is, not
    read back and decoded (decoding the largest accepted alert held the loop ~40 ms)."""
    alert = cap_alert(codes=COUNTY)
    res = await accept(h.ctx, alert, ENGINE)
    async with Monitor(redis_url) as mon:
        assert await h.app.engine.inbox_once() == 1
        commands = await mon.stop()
    alerts_key = keys.campaign(res.campaign_id).alerts.encode()
    assert not [c for c in commands if alerts_key in c.args]
    assert [d for d in h.sent() if d.kind is DeliveryKind.WARNING] or await h.drain()


async def test_two_requests_racing_with_one_alert_keep_what_was_stored(h: Harness) -> None:
    """Two different bodies under one identifier, accepted at the same moment: the alert the
    planner is handed is the one the store kept."""
    first = cap_alert(codes=COUNTY)
    info = msgspec.structs.replace(first.infos[0], headline="另一个标题")
    second = msgspec.structs.replace(first, infos=(info,))
    got = await asyncio.gather(accept(h.ctx, first, ENGINE), accept(h.ctx, second, ENGINE))
    cid = got[0].campaign_id
    stored = await h.ctx.store.alert(cid, first.alert_id)
    assert stored in (first, second)
    assert await h.ctx.alert(cid, first.alert_id) == stored
