"""An alert being planned is not taken over by a sweeper while its worker is alive."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.engine.helpers import cap_alert, make_harness
from warnbus.domain.models import DeliveryKind
from warnbus.flow.credentials import ENGINE
from warnbus.flow.intake import accept
from warnbus.state import keys


async def test_long_planning_keeps_its_inbox_item(redis_url: str) -> None:
    h = await make_harness(redis_url, lease_s=1.0)
    try:
        await accept(h.ctx, cap_alert(), ENGINE)
        real = h.app.engine.lifecycle.handle

        async def slow(*args: Any) -> None:  # a province-sized plan
            await asyncio.sleep(2.5)
            await real(*args)

        h.app.engine.lifecycle.handle = slow  # type: ignore[method-assign]
        work = asyncio.create_task(h.app.engine.inbox_once())
        await asyncio.sleep(1.8)  # longer than the lease: idle unless kept claimed
        reply = await h.ctx.redis.xautoclaim(keys.INBOX, keys.GROUP, "sweeper", 1000, "0-0")
        assert reply[1] == [], "a live worker's item was taken over"
        assert await work == 1
        assert h.sent() == [] and sum((await h.ctx.lanes.depth()).values()) > 0
    finally:
        await h.app.close()


async def test_a_first_wave_whose_write_failed_is_finished_by_the_replay(redis_url: str) -> None:
    """Chunks are written while the next is planned: one lost write fails the planning, the
    inbox item stays pending, and the replay queues what is missing, each delivery once."""
    h = await make_harness(redis_url, lease_s=1.0)
    try:
        eng = h.app.engine
        eng.lifecycle.plan_chunk = 40  # the sample county's ~740 officers in ~19 chunks
        real = h.ctx.lanes.enqueue
        calls = 0

        async def flaky(deliveries: Any, *args: Any, **kw: Any) -> int:
            nonlocal calls
            calls += 1
            if calls == 6:
                raise ConnectionError("Redis went away mid-wave")
            return await real(deliveries, *args, **kw)

        h.ctx.lanes.enqueue = flaky  # type: ignore[method-assign]
        res = await accept(h.ctx, cap_alert(codes=("430623",)), ENGINE)
        with pytest.raises(ConnectionError):
            await eng.inbox_once()
        pending = await h.ctx.redis.xpending(keys.INBOX, keys.GROUP)
        assert pending["pending"] == 1, "the failed planning must leave its item to a replay"

        h.ctx.lanes.enqueue = real  # type: ignore[method-assign]
        await asyncio.sleep(1.1)  # past the lease: the sweeper's reclaim takes it
        assert await eng.inbox_once(reclaim_idle_ms=1000) == 1
        await h.drain()
        persons = {d.target_id for d in h.sent("voice") if d.kind is DeliveryKind.WARNING}
        targets = await h.ctx.store.targets(res.campaign_id)
        callable_ = {t for t in targets if h.ctx.person(t) and h.ctx.person(t).phone}  # type: ignore[union-attr]
        assert len(targets) > 700 and persons == callable_
        ids = [d.id for d in h.sent()]
        assert len(ids) == len(set(ids)), "a delivery queued before the failure went twice"
    finally:
        await h.app.close()
