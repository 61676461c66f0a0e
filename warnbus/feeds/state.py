"""A feed's state in Redis: the polling lease, HTTP validators, seen entries, health.

All of it lives in Redis so that another process taking over a feed keeps its validators,
knows what was fetched already and continues its backoff.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from redis.asyncio import Redis

from warnbus.feeds.errors import public_text
from warnbus.state import keys
from warnbus.state.replies import text_of

SEEN_TTL_S = 30 * 24 * 3600.0  # an entry not listed for this long may be fetched again
COUNTS = ("accepted", "duplicate", "skipped", "rejected", "errors")

# Take the lease if it is free, or extend it if it is ours: one round trip, no race.
_HOLD = """
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not v then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class FeedState:
    def __init__(self, redis: Redis, name: str) -> None:
        self.redis: Any = redis  # redis-py reply types are unions; replies are decoded here
        self.keys = keys.feed(name)
        self._hold = redis.register_script(_HOLD)
        self._release = redis.register_script(_RELEASE)

    # ----------------------------------------------------------------- lease

    async def hold(self, token: str, lease_s: float) -> bool:
        """Take or renew the polling lease; False when another process holds it."""
        ms = max(1, int(lease_s * 1000))
        return bool(int(await self._hold(keys=[self.keys.lease], args=[token, ms])))

    async def release(self, token: str) -> None:
        await self._release(keys=[self.keys.lease], args=[token])

    async def holder(self) -> str:
        return text_of(await self.redis.get(self.keys.lease))

    # ----------------------------------------------------------------- validators, health

    async def read(self) -> dict[str, str]:
        raw = await self.redis.hgetall(self.keys.state)
        return {text_of(k): text_of(v) for k, v in raw.items()}

    async def validators(self) -> tuple[str, str]:
        etag, modified = await self.redis.hmget(self.keys.state, ["etag", "last_modified"])
        return text_of(etag), text_of(modified)

    async def success(
        self, now: float, counts: Mapping[str, int], validators: tuple[str, str] | None
    ) -> None:
        """Record a poll that read the feed (or a 304); store validators only when given."""
        fields: dict[str, Any] = {"last_success": now, "failures": 0}
        if validators is not None:
            fields["etag"], fields["last_modified"] = validators
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(self.keys.state, mapping=fields)
        for name, n in counts.items():
            if n:
                pipe.hincrby(self.keys.state, name, n)
        await pipe.execute()

    async def failure(self, now: float, error: str) -> int:
        """Record a failed poll; return the consecutive failures (the backoff exponent)."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(self.keys.state, mapping={"last_error": public_text(error),
                                            "last_error_at": now})
        pipe.hincrby(self.keys.state, "failures", 1)
        pipe.hincrby(self.keys.state, "poll_errors", 1)
        return int((await pipe.execute())[1])

    async def count(self, name: str, n: int = 1) -> None:
        await self.redis.hincrby(self.keys.state, name, n)

    # ----------------------------------------------------------------- seen entries

    async def unseen(self, entry_keys: Sequence[str], now: float) -> list[bool]:
        """Which entries were never handled; those still listed are kept from ageing out."""
        if not entry_keys:
            return []
        scores = await self.redis.zmscore(self.keys.seen, list(entry_keys))
        known = {k: now for k, sc in zip(entry_keys, scores, strict=True) if sc is not None}
        pipe = self.redis.pipeline(transaction=False)
        if known:
            pipe.zadd(self.keys.seen, known, xx=True)
        pipe.zremrangebyscore(self.keys.seen, "-inf", now - SEEN_TTL_S)
        await pipe.execute()
        return [sc is None for sc in scores]

    async def mark_seen(self, entry_key: str, now: float) -> None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.zadd(self.keys.seen, {entry_key: now})
        # The whole set goes when the feed is gone from the configuration for a TTL.
        pipe.expire(self.keys.seen, int(SEEN_TTL_S))
        await pipe.execute()
