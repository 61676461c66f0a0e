"""Provider rate limits as token buckets in Redis, shared by every process of a deployment."""

from __future__ import annotations

import asyncio
import time

from warnbus.state import keys, scripts
from warnbus.state.client import RedisClient

#: The token bucket script, in its .lua file beside this module.
TAKE_TOKENS = scripts.load(__file__, "take_tokens")


class RateLimiter:
    """Wait until `n` sends of a channel fit its declared rate (`Channel.rate_per_s`)."""

    def __init__(self, redis: RedisClient) -> None:
        self._take = TAKE_TOKENS.bind(redis)

    async def acquire(self, channel: str, rate_per_s: float | None, n: int) -> None:
        if not rate_per_s or n <= 0:
            return
        burst = max(1.0, rate_per_s)  # at most one second's worth at once
        left = n
        while left > 0:
            want = min(left, int(burst))
            got, wait_ms = await self._take({"bucket": keys.rate_bucket(channel)},
                                            rate=rate_per_s, burst=burst, want=want)
            left -= int(got)
            if left > 0:
                await asyncio.sleep(max(int(wait_ms), 1) / 1000)


class SharedLimit:
    """Request limits (token buckets in Redis, shared by every process) taken in small batches.

    One Redis call per request doubled the cost of a confirmation through an ack link. Each
    process takes up to `hold_s` worth of the rate at once (one fetch at a time per bucket, so
    a burst of requests does not drain the bucket in a stampede) and spends it locally; tokens
    not spent within `hold_s` are dropped, and after a refusal the bucket is known empty until
    it refills, so a flood costs no Redis call per request either.
    """

    def __init__(self, redis: RedisClient, hold_s: float = 0.1, max_batch: int = 100,
                 max_buckets: int = 10_000) -> None:
        self._take = TAKE_TOKENS.bind(redis)
        self.hold_s = hold_s
        self.max_batch = max_batch
        self.max_buckets = max_buckets
        self._state: dict[str, _Held] = {}

    def spend_held(self, bucket: str) -> bool:
        """Spend a token this process holds of `bucket`, if it holds one (no Redis, no
        waiting: the usual case of a burst); False means `take` must be asked."""
        held = self._state.get(bucket)
        return held is not None and held.spend()

    async def take(self, bucket: str, rate: float, burst: float) -> tuple[bool, int]:
        """(allowed, ms until the bucket refills) for one request."""
        held = self._held(bucket)
        if held.spend():
            return True, 0
        async with held.lock:  # one fetch at a time; the others then find its tokens
            if held.spend():
                return True, 0
            now = time.monotonic()
            if now < held.empty_until:
                return False, max(1, int(1000 * (held.empty_until - now)))
            batch = max(1, min(int(rate * self.hold_s), int(burst), self.max_batch))
            got, wait_ms = await self._take({"bucket": keys.rate_bucket(bucket)},
                                            rate=rate, burst=burst, want=batch)
            now = time.monotonic()
            if int(got) < 1:
                held.empty_until = now + int(wait_ms) / 1000
                return False, int(wait_ms)
            held.tokens, held.until = int(got) - 1, now + self.hold_s
            return True, 0

    def _held(self, bucket: str) -> _Held:
        held = self._state.get(bucket)
        if held is None:
            if len(self._state) >= self.max_buckets:  # per-address buckets of many clients
                now = time.monotonic()
                self._state = {b: h for b, h in self._state.items()
                               if h.lock.locked() or h.until > now or h.empty_until > now}
            held = self._state[bucket] = _Held()
        return held


class _Held:
    """What one process holds of one bucket."""

    __slots__ = ("empty_until", "lock", "tokens", "until")

    def __init__(self) -> None:
        self.tokens = 0
        self.until = 0.0  # monotonic time the held tokens lapse
        self.empty_until = 0.0  # the bucket refused us: do not ask again before this
        self.lock = asyncio.Lock()

    def spend(self) -> bool:
        if self.tokens > 0 and time.monotonic() < self.until:
            self.tokens -= 1
            return True
        return False
