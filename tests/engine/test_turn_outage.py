"""Work a worker had read when Redis went away is done when Redis answers, not after the
sweep's lease: a lane batch whose record failed, an inbox item whose planning failed. A dead
worker's claims are resent at once by the worker that takes its entries over. Work that fails
for its own reason (an error Redis answers with) holds up nothing.

Each test's lease is an hour: only the fix under test can finish the work within it.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from redis.exceptions import ResponseError

from tests.engine.helpers import Harness, cap_alert, make_harness
from tests.waits import until
from warnbus.domain.models import Delivery, Receipt
from warnbus.domain.states import DeliveryState
from warnbus.flow.credentials import ENGINE
from warnbus.flow.intake import accept
from warnbus.runtime.services import ManagedService
from warnbus.state import keys
from warnbus.state.queue import PRIORITIES

HOUR = 3600.0


async def _pending(h: Harness, streams: list[str]) -> int:
    n = 0
    for s in streams:
        if await h.ctx.redis.exists(s):
            n += int((await h.ctx.redis.xpending(s, keys.GROUP))["pending"])
    return n


def _lanes(channel: str) -> list[str]:
    return [keys.lane(channel, p) for p in PRIORITIES]


class Gate:
    """Hold a channel's sends until opened (the provider call is under way meanwhile)."""

    def __init__(self, channel: Any) -> None:
        self.entered = asyncio.Event()
        self.open = asyncio.Event()
        self.calls = 0
        self._send = channel.send
        channel.send = self.send

    async def send(self, d: Delivery) -> Receipt:
        self.calls += 1
        self.entered.set()
        await self.open.wait()
        receipt: Receipt = await self._send(d)
        return receipt


async def test_a_lane_batch_whose_turn_failed_is_sent_when_redis_returns(
        redis_factory: Callable[..., ManagedService]) -> None:
    svc = redis_factory(appendfsync="always")
    h = await make_harness(svc.url, lease_s=HOUR)
    cid = (await accept(h.ctx, cap_alert(codes=("430623101000",)), ENGINE)).campaign_id
    await h.app.engine.inbox_once()  # planned: the first wave waits in the lanes
    gate = Gate(h.channels["voice"])
    stop = asyncio.Event()
    worker = asyncio.create_task(h.app.engine.dispatcher.run_channel("voice", stop))
    try:
        await asyncio.wait_for(gate.entered.wait(), 10)
        # The provider has the calls; Redis goes away before they are recorded.
        await asyncio.to_thread(svc.kill)
        gate.open.set()
        await asyncio.sleep(1.5)  # the turn fails, and its retry while Redis is away
        await asyncio.to_thread(svc.start)

        async def settled() -> bool:
            return await _pending(h, _lanes("voice")) == 0
        await until(settled, "the failed batch sent and acknowledged", within=20)
    finally:
        stop.set()
        await asyncio.wait_for(worker, 10)
    states = await h.ctx.store.delivery_states(cid)
    voice = list(h.channels["voice"].sent)
    assert voice and all(states[d.id] is not DeliveryState.SENDING for d in voice)
    # The chunk whose record was lost was called again, each call counted as a possible
    # duplicate; nobody was called a third time, and the rest of the batch once.
    times = Counter(d.id for d in voice)
    meta = await h.ctx.store.meta(cid)
    assert meta is not None and set(times.values()) == {1, 2}
    assert meta.duplicates == sum(1 for n in times.values() if n == 2)
    await h.app.close()


async def test_an_inbox_item_whose_planning_failed_is_planned_when_redis_returns(
        redis_factory: Callable[..., ManagedService],
        monkeypatch: pytest.MonkeyPatch) -> None:
    svc = redis_factory(appendfsync="always")
    h = await make_harness(svc.url, lease_s=HOUR)
    eng = h.app.engine
    handle = eng.lifecycle.handle
    entered, go = asyncio.Event(), asyncio.Event()

    async def held(campaign_id: str, alert_id: str) -> Any:
        entered.set()
        await go.wait()
        return await handle(campaign_id, alert_id)

    monkeypatch.setattr(eng.lifecycle, "handle", held)
    cid = (await accept(h.ctx, cap_alert(codes=("430623101000",)), ENGINE)).campaign_id
    loop = asyncio.create_task(eng._inbox_loop())
    try:
        await asyncio.wait_for(entered.wait(), 10)
        await asyncio.to_thread(svc.kill)
        go.set()
        await asyncio.sleep(1.5)
        await asyncio.to_thread(svc.start)

        async def planned() -> bool:
            return await _pending(h, [keys.INBOX]) == 0 and bool(await h.ctx.store.grids(cid))
        await until(planned, "the item planned once Redis answered", within=20)
    finally:
        eng._stop.set()
        await asyncio.wait_for(loop, 10)
    await h.drain()
    assert h.sent()
    await h.app.close()


async def test_an_item_that_fails_for_its_own_reason_does_not_hold_up_the_inbox(
        redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    h = await make_harness(redis_url, lease_s=HOUR)
    eng = h.app.engine
    handle = eng.lifecycle.handle
    bad = (await accept(h.ctx, cap_alert("BAD", codes=("430623101000",)), ENGINE)).campaign_id

    async def poisoned(campaign_id: str, alert_id: str) -> Any:
        if campaign_id == bad:
            raise ResponseError("a script's error: it would come again")
        return await handle(campaign_id, alert_id)

    monkeypatch.setattr(eng.lifecycle, "handle", poisoned)
    good = (await accept(h.ctx, cap_alert("GOOD", codes=("430623102000",)), ENGINE)).campaign_id
    loop = asyncio.create_task(eng._inbox_loop())
    try:
        await until(lambda: h.ctx.store.grids(good), "the next alert planned", within=10)
    finally:
        eng._stop.set()
        await asyncio.wait_for(loop, 10)
    assert await _pending(h, [keys.INBOX]) == 1  # the bad one, left for the sweep
    await h.app.close()


async def test_a_dead_workers_claims_are_resent_by_its_heir_at_once(redis_url: str) -> None:
    h = await make_harness(redis_url, lease_s=HOUR)
    cid = (await accept(h.ctx, cap_alert(codes=("430623101000",)), ENGINE)).campaign_id
    await h.app.engine.inbox_once()
    store, lanes = h.ctx.store, h.ctx.lanes
    entries = await lanes.read("sms", "doomed", 1000, 0)
    assert entries
    by_c = {cid: [e.delivery for e in entries]}
    now = h.clock.now()
    claims = (await store.claim(by_c, now, HOUR, "doomed"))[cid]
    assert {code for code, _n in claims} == {1}
    # Another worker while the doomed one lives: in flight under its lease.
    assert {c for c, _n in (await store.claim(by_c, now, HOUR, "other"))[cid]} == {4}
    # Its heartbeat stopped: the claims it held count as expired, resent as attempt 2.
    again = (await store.claim(by_c, now, HOUR, "heir", frozenset({"doomed"})))[cid]
    assert set(again) == {(2, 2)}
    # The heir's own claims are not the dead one's: a third look is in flight again.
    assert {c for c, _n in (await store.claim(by_c, now, HOUR, "x", {"doomed"}))[cid]} == {4}
    meta = await store.meta(cid)
    assert meta is not None and meta.duplicates == len(claims)
    await h.app.close()


async def test_a_failed_turn_takes_back_only_its_own_claims(redis_url: str) -> None:
    """A turn that failed takes its batch again with its own claims expired; a claim another
    turn of the same process made meanwhile (the sweep took the batch after a short lease)
    stands: the failed turn once sent the chunk a third time (a CI run of the restart fault
    test, 72 duplicates where one chunk per channel may be)."""
    h = await make_harness(redis_url, lease_s=HOUR)
    cid = (await accept(h.ctx, cap_alert(codes=("430623101000",)), ENGINE)).campaign_id
    await h.app.engine.inbox_once()
    store = h.ctx.store
    entries = await h.ctx.lanes.read("sms", "w", 1000, 0)
    by_c = {cid: [e.delivery for e in entries]}
    now = h.clock.now()
    assert {c for c, _n in (await store.claim(by_c, now, 1.0, "w#1"))[cid]} == {1}
    # The lease ran out: the sweep (turn 2 of the same process) claims and sends again.
    assert {c for c, _n in (await store.claim(by_c, now + 2, HOUR, "w#2"))[cid]} == {2}
    # Turn 1 comes back: its claims were taken over, not its own to expire any more.
    again = (await store.claim(by_c, now + 2, HOUR, "w#1", frozenset({"w#1"})))[cid]
    assert {c for c, _n in again} == {4}
    # Had the process died, its heir expires every turn of it.
    heir = (await store.claim(by_c, now + 2, HOUR, "v#1", frozenset({"w"})))[cid]
    assert {c for c, _n in heir} == {2}
    await h.app.close()


async def test_a_batch_the_sweep_took_meanwhile_is_not_sent_a_third_time(
        redis_factory: Callable[..., ManagedService],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The loop and the sweep of one process are two turns: when the sweep takes a failed
    turn's batch first (its lease ran out during the outage) and is sending it again, the
    failed turn's retry finds those claims another turn's, and sends nothing."""
    svc = redis_factory(appendfsync="always")
    h = await make_harness(svc.url, lease_s=1.0)
    await accept(h.ctx, cap_alert(codes=("430623101000",)), ENGINE)
    await h.app.engine.inbox_once()
    dispatcher = h.app.engine.dispatcher
    gate = Gate(h.channels["voice"])
    process = dispatcher.process
    retry, retried = asyncio.Event(), asyncio.Event()

    async def retry_waits(*args: Any, **kwargs: Any) -> None:
        if kwargs.get("gone"):  # the failed turn's retry: after the sweep, here
            await retry.wait()
            await process(*args, **kwargs)
            retried.set()
            return
        await process(*args, **kwargs)

    monkeypatch.setattr(dispatcher, "process", retry_waits)
    stop = asyncio.Event()
    worker = asyncio.create_task(dispatcher.run_channel("voice", stop))
    sweep: asyncio.Task[int] | None = None
    try:
        await asyncio.wait_for(gate.entered.wait(), 10)
        await asyncio.to_thread(svc.kill)
        gate.open.set()
        await asyncio.sleep(1.5)  # the turn fails; the entries idle past the 1 s lease
        gate.open.clear()
        gate.entered.clear()
        await asyncio.to_thread(svc.start)
        h.clock.advance(5)  # the claims' lease has run out
        sweep = asyncio.create_task(dispatcher.sweep("voice"))
        await asyncio.wait_for(gate.entered.wait(), 10)  # the sweep is sending them again
        sending = gate.calls
        retry.set()

        async def retry_done_or_sending() -> bool:
            return retried.is_set() or gate.calls > sending
        await until(retry_done_or_sending, "the failed turn's retry to claim", within=10)
        gate.open.set()
        assert await sweep > 0

        async def settled() -> bool:
            return await _pending(h, _lanes("voice")) == 0
        await until(settled, "the batch acknowledged", within=20)
    finally:
        gate.open.set()
        stop.set()
        await asyncio.wait_for(worker, 10)
    times = Counter(d.id for d in h.channels["voice"].sent)
    assert max(times.values()) == 2, times.most_common(3)
    await h.app.close()
