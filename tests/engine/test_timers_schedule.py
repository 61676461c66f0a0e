"""`Timers.schedule`: every timer lands with its due time, and a scheduled one keeps its own;
`schedule_joined`: one script call per loop turn, its outcome heard by every waiter."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis as AsyncRedis
from redis.exceptions import ConnectionError as RedisConnectionError

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


async def _script_calls(redis: AsyncRedis) -> int:
    stats = await redis.info("commandstats")
    return sum(int(v["calls"]) for k, v in stats.items()
               if k in ("cmdstat_evalsha", "cmdstat_eval"))


async def test_timers_joined_in_one_loop_turn_are_one_script_call(redis: AsyncRedis) -> None:
    timers = Timers(redis)
    await timers.schedule([(b"warm", 1.0)])  # the script is loaded: one EVALSHA from here on
    before = await _script_calls(redis)
    await asyncio.gather(*(timers.schedule_joined([(f"t{i}".encode(), 10.0 + i)])
                           for i in range(50)))
    assert await _script_calls(redis) - before == 1
    got = dict(await redis.zrange(keys.TIMERS, 0, -1, withscores=True))
    assert got == {b"warm": 1.0, **{f"t{i}".encode(): 10.0 + i for i in range(50)}}
    # A later turn is a batch of its own, and a scheduled timer still keeps its due time.
    await timers.schedule_joined([(b"t0", 999.0), (b"late", 3.0)])
    assert await _script_calls(redis) - before == 2
    assert await redis.zscore(keys.TIMERS, b"t0") == 10.0


async def test_a_cancelled_waiter_leaves_the_others_write(redis: AsyncRedis) -> None:
    timers = Timers(redis)
    first = asyncio.ensure_future(timers.schedule_joined([(b"a", 1.0)]))
    second = asyncio.ensure_future(timers.schedule_joined([(b"b", 2.0)]))
    await asyncio.sleep(0)  # both joined the turn's batch
    first.cancel()
    await second
    assert first.cancelled()
    assert await redis.zrange(keys.TIMERS, 0, -1) == [b"a", b"b"]


async def test_every_waiter_hears_that_the_write_failed(redis_url: str) -> None:
    dead = AsyncRedis.from_url(redis_url.rsplit(":", 1)[0] + ":1", socket_connect_timeout=0.5)
    timers = Timers(dead)
    results = await asyncio.gather(*(timers.schedule_joined([(b"x", 1.0)]) for _ in range(3)),
                                   return_exceptions=True)
    assert all(isinstance(r, RedisConnectionError) for r in results), results
    await dead.aclose()
