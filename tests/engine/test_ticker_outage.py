"""Due timers a tick had read when Redis went away are handled when it returns, not after the
sweep's lease; a timer that fails for its own reason does not hold up the others."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from tests.engine.helpers import cap_alert, make_harness
from warnbus.flow.credentials import ENGINE
from warnbus.flow.intake import accept
from warnbus.runtime.services import ManagedService
from warnbus.state import keys
from warnbus.state.queue import TimerEntry


async def _pending_due(url: str) -> int:
    client = Redis.from_url(url)
    try:
        info = await client.xpending(keys.TIMERS_DUE, keys.GROUP)
        return int(info["pending"])
    finally:
        await client.aclose()


async def test_timers_read_before_an_outage_are_handled_when_redis_returns(
        redis_factory: Callable[..., ManagedService]) -> None:
    svc = redis_factory(appendfsync="always")
    # The sweep's lease is long: only the ticker itself can handle them within the test.
    h = await make_harness(svc.url, lease_s=3600.0)
    await accept(h.ctx, cap_alert(codes=("430623101000",)), ENGINE)
    await h.drain()
    ticker = h.app.engine.ticker
    h.clock.advance(3600)  # every first deadline is due
    await h.ctx.timers.promote(h.ctx.clock.frame())
    # A tick reads them, and Redis goes away before it has handled them.
    read = await h.ctx.timers.read_due(ticker.consumer, 200, 0)
    assert read
    await asyncio.to_thread(svc.kill)
    with pytest.raises(RedisConnectionError):
        await ticker.tick()
    await asyncio.to_thread(svc.start)
    assert await ticker.tick() >= len(read)
    assert await _pending_due(svc.url) == 0
    # They were handled: the redials and escalations they make are in the lanes.
    assert await h.drain() > 0


async def test_a_timer_that_fails_alone_does_not_hold_up_the_batch(redis_url: str) -> None:
    h = await make_harness(redis_url)
    await accept(h.ctx, cap_alert(codes=("430623101000",)), ENGINE)
    await h.drain()
    await h.ctx.timers.schedule([(b"\x00not a timer", h.clock.now() - 1)])
    h.clock.advance(3600)
    handled = await h.app.engine.ticker.tick()
    assert handled > 1
    # Only the bad one is left pending (for the sweep); the batch's others are acknowledged.
    assert await _pending_due(redis_url) == 1


async def test_an_error_redis_answers_is_one_timers_not_an_outage(
        redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A script's error (a ResponseError, a RedisError too) would come again at once: taken
    for an outage, it stopped every tick at the same timer for good."""
    h = await make_harness(redis_url)
    await accept(h.ctx, cap_alert(codes=("430623101000",)), ENGINE)
    await h.drain()
    ticker = h.app.engine.ticker
    handle_one = ticker._handle_one
    seen: list[bytes] = []

    async def first_fails(e: TimerEntry) -> None:
        seen.append(e.entry_id)
        if e.entry_id == seen[0]:
            raise ResponseError("ERR a script's own error")
        await handle_one(e)

    monkeypatch.setattr(ticker, "_handle_one", first_fails)
    h.clock.advance(3600)
    assert await ticker.tick() > 1
    while await ticker.tick():  # the next ticks are not held at it
        pass
    assert await _pending_due(redis_url) == 1  # the one that failed, for the sweep
