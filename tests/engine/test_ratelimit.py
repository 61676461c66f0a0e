"""Token buckets in Redis: one provider limit shared by every process."""

from __future__ import annotations

import time

from redis.asyncio import Redis

from warnbus.state import keys
from warnbus.state.ratelimit import TAKE_TOKENS, RateLimiter


async def test_bucket_is_shared_between_processes(redis: Redis) -> None:
    a = TAKE_TOKENS.bind(redis)
    b = TAKE_TOKENS.bind(redis)  # another process's handle, same bucket
    got, wait = await a({"bucket": keys.rate_bucket("sms")}, rate=10, burst=10, want=15)
    assert got == 10 and wait > 0
    got2, _ = await b({"bucket": keys.rate_bucket("sms")}, rate=10, burst=10, want=5)
    assert got2 == 0, "the burst was spent by the other process"
    got3, _ = await a({"bucket": keys.rate_bucket("voice")}, rate=10, burst=10, want=5)
    assert got3 == 5, "each channel has its own bucket"


async def test_acquire_waits_for_the_rate(redis: Redis) -> None:
    lim = RateLimiter(redis)
    start = time.monotonic()
    await lim.acquire("wecom", 50.0, 50)  # the burst: at once
    await lim.acquire("wecom", 50.0, 10)  # then 10 more at 50/s: about 0.2 s
    assert time.monotonic() - start >= 0.15
    await lim.acquire("unlimited", None, 10_000)  # no declared rate: no wait
