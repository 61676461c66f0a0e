"""Provider rate limits as token buckets in Redis, shared by every process of a deployment."""

from __future__ import annotations

import asyncio
from typing import Any

from warnbus import keys
from warnbus.queue import scripts


class RateLimiter:
    """Wait until `n` sends of a channel fit its declared rate (`Channel.rate_per_s`)."""

    def __init__(self, redis: Any) -> None:
        self._take = redis.register_script(scripts.TAKE_TOKENS)

    async def acquire(self, channel: str, rate_per_s: float | None, n: int) -> None:
        if not rate_per_s or n <= 0:
            return
        burst = max(1.0, rate_per_s)  # at most one second's worth at once
        left = n
        while left > 0:
            want = min(left, int(burst))
            got, wait_ms = await self._take(keys=[keys.rate_bucket(channel)],
                                            args=[rate_per_s, burst, want])
            left -= int(got)
            if left > 0:
                await asyncio.sleep(max(int(wait_ms), 1) / 1000)
