"""Durable queue and timers on Redis (DESIGN section 5).

- Lanes: one Redis Stream per (channel, priority), read by a consumer group; an entry is
  XACKed (and deleted) only after its Attempt is stored; XAUTOCLAIM reclaims entries of dead
  workers.
- Timers: one ZSET scored by absolute due time; one Lua script moves due members to a stream
  that timer workers read through a consumer group, so a timer fires at least once and an
  overdue timer fires once after a long pause, not once per missed tick.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import msgspec
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from warnbus import keys
from warnbus.models import Delivery, Level
from warnbus.queue import scripts

_enc = msgspec.msgpack.Encoder()
_dec_delivery = msgspec.msgpack.Decoder(Delivery)

PRIORITIES = tuple(level.rank for level in Level)


def encode_delivery(delivery: Delivery) -> bytes:
    return _enc.encode(delivery)


def decode_delivery(blob: bytes) -> Delivery:
    return _dec_delivery.decode(blob)


class LaneEntry(msgspec.Struct, frozen=True):
    """One delivery read from a lane, with where it came from (for XACK)."""

    lane: str
    entry_id: bytes
    delivery: Delivery


async def ensure_group(redis: Redis, stream: str) -> None:
    """Create the consumer group of `stream` (and the stream) if missing."""
    try:
        await redis.xgroup_create(stream, keys.GROUP, id="0", mkstream=True)
    except ResponseError as e:
        if "BUSYGROUP" not in str(e):
            raise


class Lanes:
    """The delivery lanes of all channels."""

    def __init__(self, redis: Redis, channels: Iterable[str]) -> None:
        # redis-py's reply types are unions of every RESP shape; we decode replies ourselves.
        self.redis: Any = redis
        self.channels = tuple(channels)
        self._enqueue = redis.register_script(scripts.ENQUEUE)

    def lanes_of(self, channel: str) -> list[str]:
        return [keys.lane(channel, p) for p in PRIORITIES]

    async def setup(self) -> None:
        for channel in self.channels:
            for lane in self.lanes_of(channel):
                await ensure_group(self.redis, lane)

    async def enqueue(self, deliveries: Sequence[Delivery], chunk: int = 1000) -> int:
        """Append deliveries to their lanes, `chunk` entries per lane in one Lua call. Replays
        are harmless: the claim script skips a delivery already in flight or done."""
        by_lane: dict[str, list[bytes]] = {}
        for d in deliveries:
            by_lane.setdefault(keys.lane(d.channel, d.priority), []).append(encode_delivery(d))
        for lane, blobs in by_lane.items():
            for i in range(0, len(blobs), chunk):
                await self._enqueue(keys=[lane], args=[scripts.pack_args(blobs[i : i + chunk])])
        return len(deliveries)

    async def read(
        self, channel: str, consumer: str, count: int, block_ms: int
    ) -> list[LaneEntry]:
        """Read new entries of a channel, most urgent lane first."""
        streams: dict[Any, Any] = {lane: ">" for lane in self.lanes_of(channel)}
        reply = await self.redis.xreadgroup(
            keys.GROUP, consumer, streams, count=count, block=block_ms or None
        )
        return _entries(reply)

    async def reclaim(
        self, channel: str, consumer: str, min_idle_ms: int, count: int = 500
    ) -> list[LaneEntry]:
        """Take over entries a dead (or stuck) worker read but never acknowledged."""
        out: list[LaneEntry] = []
        for lane in self.lanes_of(channel):
            reply: Any = await self.redis.xautoclaim(
                lane, keys.GROUP, consumer, min_idle_time=min_idle_ms, start_id="0-0", count=count
            )
            # reply: [next_id, [(id, fields), ...], deleted_ids]
            for entry_id, fields in reply[1]:
                if fields and b"d" in fields:
                    out.append(LaneEntry(lane, entry_id, decode_delivery(fields[b"d"])))
            # Entries deleted while pending cannot be sent: just drop them from the PEL.
            if len(reply) > 2 and reply[2]:
                await self.redis.xack(lane, keys.GROUP, *reply[2])
        return out

    async def done(self, entries: Sequence[LaneEntry]) -> None:
        """Acknowledge and delete entries whose outcome is stored."""
        if not entries:
            return
        by_lane: dict[str, list[bytes]] = {}
        for e in entries:
            by_lane.setdefault(e.lane, []).append(e.entry_id)
        pipe = self.redis.pipeline(transaction=False)
        for lane, ids in by_lane.items():
            pipe.xack(lane, keys.GROUP, *ids)
            pipe.xdel(lane, *ids)
        await pipe.execute()

    async def depth(self) -> dict[str, int]:
        pipe = self.redis.pipeline(transaction=False)
        names = [lane for c in self.channels for lane in self.lanes_of(c)]
        for lane in names:
            pipe.xlen(lane)
        return dict(zip(names, await pipe.execute(), strict=True))


def _entries(reply: Any) -> list[LaneEntry]:
    out: list[LaneEntry] = []
    if not reply:
        return out
    items = reply.items() if isinstance(reply, dict) else reply
    for stream, messages in items:
        lane = stream.decode() if isinstance(stream, bytes) else str(stream)
        for entry_id, fields in messages:
            if fields and b"d" in fields:
                out.append(LaneEntry(lane, entry_id, decode_delivery(fields[b"d"])))
    out.sort(key=lambda e: e.delivery.priority)
    return out


# --------------------------------------------------------------------------- timers


class TimerEntry(msgspec.Struct, frozen=True):
    entry_id: bytes
    member: bytes


class Timers:
    """Timers scored by absolute due time, promoted atomically, consumed by a group."""

    def __init__(self, redis: Redis) -> None:
        # redis-py's reply types are unions of every RESP shape; we decode replies ourselves.
        self.redis: Any = redis
        self._promote = redis.register_script(scripts.PROMOTE)

    async def setup(self) -> None:
        await ensure_group(self.redis, keys.TIMERS_DUE)

    async def schedule(self, items: Sequence[tuple[bytes, float]]) -> None:
        """Add timers; a member already scheduled keeps its due time (idempotent)."""
        if items:
            await self.redis.zadd(keys.TIMERS, {m: due for m, due in items}, nx=True)

    async def cancel(self, members: Sequence[bytes]) -> None:
        if members:
            await self.redis.zrem(keys.TIMERS, *members)

    async def promote(self, now: float, limit: int = 1000) -> int:
        n = await self._promote(keys=[keys.TIMERS, keys.TIMERS_DUE], args=[now, limit])
        return int(n)

    async def read_due(self, consumer: str, count: int, block_ms: int) -> list[TimerEntry]:
        reply: Any = await self.redis.xreadgroup(
            keys.GROUP, consumer, {keys.TIMERS_DUE: ">"}, count=count, block=block_ms or None
        )
        out: list[TimerEntry] = []
        for _stream, messages in (reply.items() if isinstance(reply, dict) else reply or []):
            for entry_id, fields in messages:
                out.append(TimerEntry(entry_id, fields[b"m"]))
        return out

    async def reclaim(self, consumer: str, min_idle_ms: int, count: int = 500) -> list[TimerEntry]:
        reply: Any = await self.redis.xautoclaim(
            keys.TIMERS_DUE, keys.GROUP, consumer, min_idle_time=min_idle_ms, start_id="0-0",
            count=count,
        )
        return [TimerEntry(i, f[b"m"]) for i, f in reply[1] if f]

    async def done(self, entries: Sequence[TimerEntry]) -> None:
        if entries:
            ids = [e.entry_id for e in entries]
            pipe = self.redis.pipeline(transaction=False)
            pipe.xack(keys.TIMERS_DUE, keys.GROUP, *ids)
            pipe.xdel(keys.TIMERS_DUE, *ids)
            await pipe.execute()

    async def pending(self) -> int:
        return int(await self.redis.zcard(keys.TIMERS))
