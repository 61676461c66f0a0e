"""`Timers.schedule`: every timer lands with its due time, and a scheduled one keeps its own."""

from __future__ import annotations

from redis.asyncio import Redis as AsyncRedis

from warnbus.state import keys
from warnbus.state.queue import Timers


async def test_many_timers_land_with_their_due_times(redis: AsyncRedis) -> None:
    # More than one call's worth (10,000 pairs), and an odd number inside the last call.
    items = [(b"\x93\xa1t" + str(i).encode() + b"\xff\x00", 1_700_000_000.125 + i)
             for i in range(10_123)]
    await Timers(redis).schedule(items)
    got = dict(await redis.zrange(keys.TIMERS, 0, -1, withscores=True))
    assert got == dict(items)


async def test_a_scheduled_timer_keeps_its_due_time(redis: AsyncRedis) -> None:
    timers = Timers(redis)
    await timers.schedule([(b"deadline", 100.5)])
    await timers.schedule([(b"deadline", 999.0), (b"retry", 7.25)])
    assert await redis.zrange(keys.TIMERS, 0, -1, withscores=True) == [
        (b"retry", 7.25), (b"deadline", 100.5)]
    await timers.schedule([])
    assert await timers.pending() == 2
