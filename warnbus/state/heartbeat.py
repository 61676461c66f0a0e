"""Heartbeats: which engine processes live, so that a dead one's work is taken over at once.

Each process beats every `[engine] heartbeat_s` (its consumer name in `keys.HEARTBEATS`,
scored by Redis's time). A consumer of a stream (a lane, the due timers, the inbox) whose
beat is older than the engine's `heartbeat_ttl_s` (or that said it stopped) is dead: the
sweepers claim its pending entries without waiting for the lease. A consumer that never beat
(an older version, a test driving the engine by hand) is left to the lease, as before.

A process judges others only after its own beats have gone through for `heartbeat_ttl_s`
without a gap: when Redis stalls or restarts every beat stops at once, and the first sweeper
back must not take the work of processes that simply had no Redis to beat in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from warnbus.state import keys
from warnbus.state.client import RedisClient
from warnbus.state.replies import text_of

#: How long a dead process's name is kept (its entries were taken long before).
FORGET_AFTER_S = 86400.0


class Taken(NamedTuple):
    """Entries taken over from dead consumers."""

    entries: list[Any]  # XCLAIM's (id, fields) pairs
    gone: frozenset[str]  # the dead consumers they were taken from


class Heartbeats:
    def __init__(self, redis: RedisClient, dead_after_s: float = 5.0) -> None:
        # redis-py's reply types are unions of every RESP shape; we decode replies ourselves.
        self.redis: Any = redis
        self.dead_after_s = dead_after_s
        # Redis's time (ms) of this process's last beat, and since when its beats have come
        # through without a gap of `dead_after_s`; None: it never beat (never judges).
        self._last_beat: float | None = None
        self._beating_since: float | None = None

    async def _now_ms(self) -> float:
        sec, usec = await self.redis.time()
        return float(sec) * 1000 + float(usec) / 1000

    async def beat(self, consumer: str) -> None:
        now = await self._now_ms()
        await self.redis.zadd(keys.HEARTBEATS, {consumer: now})
        last = self._last_beat
        if last is None or now - last > self.dead_after_s * 1000:
            self._beating_since = now  # a gap: Redis (or this process) was away
        self._last_beat = now

    def _may_judge(self, now: float) -> bool:
        """Whether this process has beaten without a gap for a whole TTL up to now: only
        then is another's silence its own, not Redis's."""
        ttl = self.dead_after_s * 1000
        return (self._beating_since is not None and self._last_beat is not None
                and now - self._beating_since >= ttl and now - self._last_beat <= ttl)

    async def stopped(self, consumer: str) -> None:
        """A process that stops cleanly: what it leaves pending is taken over at once."""
        gone = await self._now_ms() - self.dead_after_s * 1000 - 1
        await self.redis.zadd(keys.HEARTBEATS, {consumer: gone})

    async def dead(self, consumers: Sequence[str]) -> list[str]:
        """Those of `consumers` whose beat stopped (never-beating ones are not judged, nor
        anyone while this process's own beats have not gone through for a TTL)."""
        if not consumers:
            return []
        now = await self._now_ms()
        if not self._may_judge(now):
            return []
        scores = await self.redis.zmscore(keys.HEARTBEATS, list(consumers))
        limit = now - self.dead_after_s * 1000
        return [c for c, at in zip(consumers, scores, strict=True)
                if at is not None and float(at) < limit]

    async def take_over(self, stream: str, consumer: str, count: int) -> Taken:
        """Claim for `consumer` up to `count` entries (per dead consumer) that dead
        consumers of `stream`'s group left pending."""
        try:
            infos = await self.redis.xinfo_consumers(stream, keys.GROUP)
        except Exception as e:  # no such stream or group yet: nothing pending
            if "no such key" in str(e).lower() or "nogroup" in str(e).lower():
                return Taken([], frozenset())
            raise
        holders = [text_of(i["name"]) for i in infos if int(i["pending"]) > 0]
        out: list[Any] = []
        gone: set[str] = set()
        for dead in await self.dead([h for h in holders if h != consumer]):
            pending = await self.redis.xpending_range(stream, keys.GROUP, min="-", max="+",
                                                      count=count, consumername=dead)
            ids = [p["message_id"] for p in pending]
            if ids:
                out += await self.redis.xclaim(stream, keys.GROUP, consumer, 0, ids)
                gone.add(dead)
        return Taken(out, frozenset(gone))

    async def forget_old(self) -> None:
        """Drop the names of processes dead for a day."""
        now = await self._now_ms()
        await self.redis.zremrangebyscore(keys.HEARTBEATS, "-inf",
                                          now - FORGET_AFTER_S * 1000)
