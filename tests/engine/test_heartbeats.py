"""Who is dead: a process whose heartbeat stopped while the judge's own beats went through.

Redis's time on a real server; a TTL of 0.3 s so that the gaps are short.
"""

from __future__ import annotations

import asyncio
import uuid

from redis.asyncio import Redis

from warnbus.state.heartbeat import Heartbeats

TTL_S = 0.3


async def _beat_for(hb: Heartbeats, consumer: str, seconds: float) -> None:
    """Beat every tenth of the TTL for `seconds`, as the engine's heartbeat loop does."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while loop.time() < end:
        await hb.beat(consumer)
        await asyncio.sleep(TTL_S / 10)
    await hb.beat(consumer)


async def test_silence_is_death_only_when_the_judge_kept_beating(redis_url: str) -> None:
    a_name, b_name, never = (f"hb-{uuid.uuid4().hex[:8]}-{n}" for n in ("a", "b", "c"))
    redis = Redis.from_url(redis_url)
    a, b = Heartbeats(redis, TTL_S), Heartbeats(redis, TTL_S)
    try:
        await a.beat(a_name)
        await b.beat(b_name)
        assert await a.dead([b_name]) == [], "judged before its own beats went on for a TTL"

        # Redis away for longer than the TTL (every beat stops at once): the first process
        # back must not take the work of one that had no Redis to beat in either.
        await asyncio.sleep(TTL_S * 1.5)
        await a.beat(a_name)
        assert await a.dead([b_name]) == [], "a Redis outage was taken for a death"

        # a beats for a whole TTL, b stays silent: b is dead.
        await _beat_for(a, a_name, TTL_S * 1.2)
        assert await a.dead([b_name, never]) == [b_name]  # one that never beat: the lease

        await b.beat(b_name)
        assert await a.dead([b_name]) == [], "a live process judged dead"
        await b.stopped(b_name)  # stopped cleanly: taken over at once
        assert await a.dead([b_name]) == [b_name]
    finally:
        await redis.aclose()
