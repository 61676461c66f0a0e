"""`SharedLimit`: request limits shared in Redis, taken in batches per process (real Redis)."""

from __future__ import annotations

import asyncio
import time

from redis.asyncio import Redis

from warnbus.state.ratelimit import SharedLimit


async def test_processes_together_stay_within_the_rate(redis_url: str) -> None:
    """Three processes (instances) hammering one bucket for 1.2 s get about rate x time."""
    clients = [Redis.from_url(redis_url) for _ in range(3)]
    limits = [SharedLimit(c, hold_s=0.1) for c in clients]
    rate, burst = 200.0, 50.0
    granted = refused = 0
    bucket = f"test:shared:{time.time_ns()}"
    try:
        deadline = time.monotonic() + 1.2
        while time.monotonic() < deadline:
            for lim in limits:
                ok, wait_ms = await lim.take(bucket, rate, burst)
                if ok:
                    granted += 1
                else:
                    refused += 1
                    assert wait_ms >= 1
            await asyncio.sleep(0)
        # burst + rate x 1.2 s, and at most one unspent batch per process on top.
        assert refused > 0
        assert granted <= burst + rate * 1.2 + 3 * int(rate * 0.1) + 5, granted
        assert granted >= rate * 1.2 * 0.5, granted
    finally:
        for c in clients:
            await c.aclose()


async def test_batches_cut_redis_calls_and_expire_unspent(redis_url: str) -> None:
    client = Redis.from_url(redis_url)
    calls = 0
    lim = SharedLimit(client, hold_s=0.05)
    take = lim._take

    async def counting(keys: object, **kw: object) -> object:
        nonlocal calls
        calls += 1
        return await take(keys, **kw)

    lim._take = counting
    bucket = f"test:batch:{time.time_ns()}"
    try:
        for _ in range(100):
            assert (await lim.take(bucket, 1000.0, 1000.0))[0]
        assert calls == 2  # batches of 50 (1000/s x 50 ms)
        await asyncio.sleep(0.06)
        assert (await lim.take(bucket, 1000.0, 1000.0))[0]
        assert calls == 3  # what was held expired with its 50 ms: a fresh batch was taken
    finally:
        await client.aclose()


async def test_a_held_token_is_spent_without_redis(redis_url: str) -> None:
    """`spend_held` spends what `take` fetched, never more, and asks nothing of Redis."""
    client = Redis.from_url(redis_url)
    lim = SharedLimit(client, hold_s=10.0)
    bucket = f"test:held:{time.time_ns()}"
    try:
        assert not lim.spend_held(bucket)  # nothing held yet: `take` must ask
        assert (await lim.take(bucket, 5.0, 5.0))[0]  # fetches 5, spends 1
        await client.aclose()  # no Redis from here on
        assert [lim.spend_held(bucket) for _ in range(5)] == [True] * 4 + [False]
    finally:
        await client.aclose()
