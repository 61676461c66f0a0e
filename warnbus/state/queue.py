"""Durable queue and timers on Redis (DESIGN section 5).

- Lanes: one Redis Stream per (channel, priority), read by a consumer group. An entry holds
  up to `PER_ENTRY` deliveries of its lane (one XADD, one read, one XACK for all of them:
  per-entry stream work was a third of the engine's CPU when each delivery was an entry); it
  is XACKed (and deleted) only after the Attempts of all its deliveries are stored;
  XAUTOCLAIM reclaims entries of dead workers. Each delivery's claim in the campaign's state
  still decides whether it is sent, so a re-read entry never sends a delivery twice.
- Timers: one ZSET scored by absolute due time; one Lua script moves due members to a stream
  that timer workers read through a consumer group, so a timer fires at least once and an
  overdue timer fires once after a long pause, not once per missed tick.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import msgspec
from redis.exceptions import ResponseError

from warnbus.domain.models import Delivery, Level
from warnbus.state import keys, scripts
from warnbus.state.client import RedisClient
from warnbus.state.heartbeat import Heartbeats

_enc = msgspec.msgpack.Encoder()
_dec_delivery = msgspec.msgpack.Decoder(Delivery)
_dec_batch = msgspec.msgpack.Decoder(list[Delivery])

# The scripts of the lanes and timers, each in its .lua file beside this module.
ENQUEUE = scripts.load(__file__, "enqueue")
DONE = scripts.load(__file__, "done")
SCHEDULE = scripts.load(__file__, "schedule")
PROMOTE = scripts.load(__file__, "promote")
_TIMER_KEYS = {"timers": keys.TIMERS, "due": keys.TIMERS_DUE}

PRIORITIES = tuple(level.rank for level in Level)
#: Deliveries per lane entry: the engine's default send concurrency, so one entry is about
#: one chunk of claim -> send -> record. At a provider's rate of 40/s an entry takes 1.6 s,
#: far inside the 30-s lease after which an unacknowledged entry counts as abandoned.
PER_ENTRY = 64
#: Most bytes of lane entries appended by one call (see `Lanes.enqueue`).
CALL_BYTES = 1 << 20


def encode_delivery(delivery: Delivery) -> bytes:
    return _enc.encode(delivery)


def decode_delivery(blob: bytes) -> Delivery:
    return _dec_delivery.decode(blob)


def decode_entry(fields: Mapping[bytes, bytes]) -> list[Delivery]:
    """The deliveries of one lane entry: `b` a batch; `d` one delivery (the older format,
    still read so entries queued before an upgrade are sent)."""
    if b"b" in fields:
        return _dec_batch.decode(fields[b"b"])
    if b"d" in fields:
        return [decode_delivery(fields[b"d"])]
    return []


def _entries_for(deliveries: int) -> int:
    """How many whole lane entries hold about `deliveries` deliveries (at least one)."""
    return max(1, -(-deliveries // PER_ENTRY))


class LaneEntry(msgspec.Struct, frozen=True, gc=False):
    """One delivery read from a lane, with the entry it came in (for XACK)."""

    lane: str
    entry_id: bytes
    delivery: Delivery


class EntryTracker:
    """Which lane entries are done: an entry is acknowledged only once every delivery it
    holds is finished; one left in flight under another worker's lease keeps it pending."""

    def __init__(self, entries: Iterable[LaneEntry]) -> None:
        self._left: dict[tuple[str, bytes], int] = {}
        for e in entries:
            key = (e.lane, e.entry_id)
            self._left[key] = self._left.get(key, 0) + 1

    def finish(self, finished: Iterable[LaneEntry]) -> list[LaneEntry]:
        """Count `finished` deliveries; return one LaneEntry per entry now complete."""
        out: list[LaneEntry] = []
        for e in finished:
            key = (e.lane, e.entry_id)
            left = self._left[key] - 1
            self._left[key] = left
            if left == 0:
                out.append(e)
        return out


async def ensure_group(redis: RedisClient, stream: str) -> None:
    """Create the consumer group of `stream` (and the stream) if missing."""
    try:
        await redis.xgroup_create(stream, keys.GROUP, id="0", mkstream=True)
    except ResponseError as e:
        if "BUSYGROUP" not in str(e):
            raise


class Lanes:
    """The delivery lanes of all channels."""

    def __init__(self, redis: RedisClient, channels: Iterable[str],
                 heartbeats: Heartbeats | None = None) -> None:
        # redis-py's reply types are unions of every RESP shape; we decode replies ourselves.
        self.redis: Any = redis
        self.channels = tuple(channels)
        self.heartbeats = heartbeats or Heartbeats(redis)
        self._enqueue = ENQUEUE.bind(redis)
        self._done = DONE.bind(redis)

    def lanes_of(self, channel: str) -> list[str]:
        return [keys.lane(channel, p) for p in PRIORITIES]

    async def setup(self) -> None:
        for channel in self.channels:
            for lane in self.lanes_of(channel):
                await ensure_group(self.redis, lane)

    async def enqueue(self, deliveries: Sequence[Delivery], chunk: int = 1000,
                      call_bytes: int = CALL_BYTES) -> int:
        """Append deliveries to their lanes, `PER_ENTRY` deliveries per entry and up to
        `chunk` entries or `call_bytes` (at least one entry) per Lua call. Replays are
        harmless: the claim script skips a delivery already in flight or done.

        Each call is encoded when it is sent: a first wave of long warnings (11 KB a
        delivery) made one call of ~10 MB, and encoding and writing it held the event loop
        ~30 ms.
        """
        by_lane: dict[tuple[str, Level], list[Delivery]] = {}
        for d in deliveries:
            by_lane.setdefault((d.channel, d.level), []).append(d)
        for (channel, level), ds in by_lane.items():
            lane = keys.lane(channel, level.rank)
            blobs: list[bytes] = []
            size = 0
            for i in range(0, len(ds), PER_ENTRY):
                blob = _enc.encode(ds[i : i + PER_ENTRY])
                if blobs and (len(blobs) >= chunk or size + len(blob) > call_bytes):
                    await self._enqueue({"lane": lane}, batch=scripts.pack_args(blobs))
                    blobs, size = [], 0
                blobs.append(blob)
                size += len(blob)
            if blobs:
                await self._enqueue({"lane": lane}, batch=scripts.pack_args(blobs))
        return len(deliveries)

    async def read(
        self, channel: str, consumer: str, count: int, block_ms: int
    ) -> list[LaneEntry]:
        """Read about `count` new deliveries of a channel (whole entries), most urgent first."""
        streams: dict[Any, Any] = {lane: ">" for lane in self.lanes_of(channel)}
        reply = await self.redis.xreadgroup(
            keys.GROUP, consumer, streams, count=_entries_for(count),
            block=block_ms or None,
        )
        return _entries(reply)

    async def take_over(self, channel: str, consumer: str, count: int = 500
                        ) -> tuple[list[LaneEntry], frozenset[str]]:
        """Take over at once the entries of workers whose heartbeat stopped (about `count`
        deliveries per lane and dead worker), with the names of those workers: their claims
        count as expired (`Deliveries.claim`'s `gone`)."""
        out: list[LaneEntry] = []
        gone: set[str] = set()
        for lane in self.lanes_of(channel):
            taken = await self.heartbeats.take_over(lane, consumer, _entries_for(count))
            for entry_id, fields in taken.entries:
                out += [LaneEntry(lane, entry_id, d) for d in decode_entry(fields or {})]
            gone |= taken.gone
        return out, frozenset(gone)

    async def reclaim(
        self, channel: str, consumer: str, min_idle_ms: int, count: int = 500
    ) -> list[LaneEntry]:
        """Take over entries a dead (or stuck) worker read but never acknowledged for
        `min_idle_ms` (the lease; a dead worker's are taken at once by `take_over`): about
        `count` deliveries per lane (whole entries), so that what one sweep takes is sent
        well inside a lease even at a provider's rate, and is not reclaimed again meanwhile."""
        out: list[LaneEntry] = []
        entries = _entries_for(count)
        for lane in self.lanes_of(channel):
            reply: Any = await self.redis.xautoclaim(
                lane, keys.GROUP, consumer, min_idle_time=min_idle_ms, start_id="0-0",
                count=entries,
            )
            # reply: [next_id, [(id, fields), ...], deleted_ids]
            for entry_id, fields in reply[1]:
                out += [LaneEntry(lane, entry_id, d) for d in decode_entry(fields or {})]
            # Entries deleted while pending cannot be sent: just drop them from the PEL.
            if len(reply) > 2 and reply[2]:
                await self.redis.xack(lane, keys.GROUP, *reply[2])
        return out

    async def done(self, entries: Sequence[LaneEntry]) -> None:
        """Acknowledge and delete the entries of `entries` (each once): every delivery they
        hold has its outcome stored (see `EntryTracker`)."""
        if not entries:
            return
        by_lane: dict[str, set[bytes]] = {}
        for e in entries:
            by_lane.setdefault(e.lane, set()).add(e.entry_id)
        for lane, ids in by_lane.items():
            await ack_delete(self._done, lane, list(ids))

    async def dead_letter(self, failed: Sequence[tuple[Delivery, str]]) -> None:
        """Keep deliveries whose transient failures ran out, with their last error, in
        `keys.DEAD` (visible, never silent)."""
        pipe = self.redis.pipeline(transaction=False)
        for delivery, error in failed:
            pipe.xadd(keys.DEAD, {"d": encode_delivery(delivery), "e": error})
        await pipe.execute()

    async def depth(self) -> dict[str, int]:
        pipe = self.redis.pipeline(transaction=False)
        names = [lane for c in self.channels for lane in self.lanes_of(c)]
        for lane in names:
            pipe.xlen(lane)
        return dict(zip(names, await pipe.execute(), strict=True))


async def ack_delete(done: scripts.BoundScript, stream: str, ids: Sequence[bytes]) -> None:
    """XACK and XDEL `ids` of `stream` with the DONE script (`done`), a thousand at a time."""
    for i in range(0, len(ids), 1000):
        await done({"stream": stream}, *ids[i : i + 1000], group=keys.GROUP)


def _entries(reply: Any) -> list[LaneEntry]:
    out: list[LaneEntry] = []
    if not reply:
        return out
    items = reply.items() if isinstance(reply, dict) else reply
    for stream, messages in items:
        lane = stream.decode() if isinstance(stream, bytes) else str(stream)
        for entry_id, fields in messages:
            out += [LaneEntry(lane, entry_id, d) for d in decode_entry(fields or {})]
    out.sort(key=lambda e: e.delivery.priority)
    return out


# --------------------------------------------------------------------------- inbox


class InboxItem(msgspec.Struct, frozen=True, gc=False):
    """An accepted message to plan; an entry deleted while pending names none ("")."""

    entry_id: bytes
    campaign_id: str
    alert_id: str


class Inbox:
    """Accepted messages waiting to be planned (`keys.INBOX`, written at acceptance by
    `Store.messages.accept`), read through a consumer group: an item is deleted only after
    its planning finished, so a dead worker's item is planned again by another."""

    def __init__(self, redis: RedisClient, heartbeats: Heartbeats | None = None) -> None:
        # redis-py's reply types are unions of every RESP shape; we decode replies ourselves.
        self.redis: Any = redis
        self.heartbeats = heartbeats or Heartbeats(redis)

    async def setup(self) -> None:
        await ensure_group(self.redis, keys.INBOX)

    async def read(self, consumer: str, block_ms: int) -> list[InboxItem]:
        """The next item (one at a time: planning a province-wide alert takes a while, and
        items waiting in this worker's pending list would look abandoned to the sweepers)."""
        reply = await self.redis.xreadgroup(keys.GROUP, consumer, {keys.INBOX: ">"}, count=1,
                                            block=block_ms or None)
        return [_inbox_item(i, f) for _s, msgs in (reply or []) for i, f in msgs]

    async def reclaim(self, consumer: str, min_idle_ms: int, count: int = 50) -> list[InboxItem]:
        """Take over items a dead worker read and never finished (at once when its
        heartbeat stopped, else after `min_idle_ms`)."""
        taken = await self.heartbeats.take_over(keys.INBOX, consumer, count)
        reply = await self.redis.xautoclaim(keys.INBOX, keys.GROUP, consumer,
                                            min_idle_time=min_idle_ms, start_id="0-0",
                                            count=count)
        return [_inbox_item(i, f) for i, f in [*taken.entries, *reply[1]]]

    async def keep(self, consumer: str, entry_id: bytes) -> None:
        """Reset an item's idle time: it is being planned, no sweeper may take it."""
        await self.redis.xclaim(keys.INBOX, keys.GROUP, consumer, 0, [entry_id], justid=True)

    async def done(self, entry_id: bytes) -> None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.xack(keys.INBOX, keys.GROUP, entry_id)
        pipe.xdel(keys.INBOX, entry_id)
        await pipe.execute()


def _inbox_item(entry_id: bytes, fields: Mapping[bytes, bytes] | None) -> InboxItem:
    if not fields:
        return InboxItem(entry_id, "", "")
    return InboxItem(entry_id, fields[b"c"].decode(), fields[b"a"].decode())


# --------------------------------------------------------------------------- timers


class TimerEntry(msgspec.Struct, frozen=True, gc=False):
    entry_id: bytes
    member: bytes


class Timers:
    """Timers scored by absolute due time, promoted atomically, consumed by a group."""

    def __init__(self, redis: RedisClient, heartbeats: Heartbeats | None = None) -> None:
        # redis-py's reply types are unions of every RESP shape; we decode replies ourselves.
        self.redis: Any = redis
        self.heartbeats = heartbeats or Heartbeats(redis)
        self._promote = PROMOTE.bind(redis)
        self._schedule = SCHEDULE.bind(redis)
        self._done = DONE.bind(redis)
        # Timers joined in this loop turn, written by one script call (`schedule_joined`).
        self._joined: tuple[list[tuple[bytes, float]], asyncio.Future[None]] | None = None
        self._writes: set[asyncio.Task[None]] = set()  # kept referenced until done

    async def setup(self) -> None:
        await ensure_group(self.redis, keys.TIMERS_DUE)

    async def schedule(self, items: Sequence[tuple[bytes, float]]) -> None:
        """Add timers; a member already scheduled keeps its due time (idempotent)."""
        args: list[str | bytes] = []
        for member, due in items:
            args += (member, repr(float(due)))
        for i in range(0, len(args), 20_000):
            await self._schedule(_TIMER_KEYS, batch=scripts.pack_args(args[i : i + 20_000]))

    async def schedule_joined(self, items: Sequence[tuple[bytes, float]]) -> None:
        """`schedule`, in one script call with what other tasks of this process join in the
        same loop turn; returns once all of it is written, raises what the write raised.

        For paths run once per confirmation: a call of its own per confirmation was about a
        quarter of a confirmation's CPU under load (concurrent confirmations resume together)."""
        if self._joined is None:
            loop = asyncio.get_running_loop()
            self._joined = ([], loop.create_future())
            loop.call_soon(self._write_joined)
        batch, written = self._joined
        batch.extend(items)
        # Shielded: one waiter cancelled does not cancel the others' write.
        await asyncio.shield(written)

    def _write_joined(self) -> None:
        assert self._joined is not None
        batch, written = self._joined
        self._joined = None

        async def write() -> None:
            try:
                await self.schedule(batch)
            except asyncio.CancelledError:
                written.cancel()
                raise
            except Exception as e:  # every waiter hears it, as it would have alone
                written.set_exception(e)
            else:
                written.set_result(None)

        task = asyncio.ensure_future(write())
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)
        # Nobody waiting any more (all cancelled): the exception is not "never retrieved".
        written.add_done_callback(lambda f: f.cancelled() or f.exception())

    async def cancel(self, members: Sequence[bytes]) -> None:
        if members:
            await self.redis.zrem(keys.TIMERS, *members)

    async def promote(self, frame: tuple[float, float, float], limit: int = 1000) -> int:
        """Move timers due by Redis's time (TIME in the script) to the due stream.

        `frame`, the engine clock's (`runtime.clock.Frame`): its time as a function of
        Redis's, `at + (redis_now - redis_at) * factor`."""
        at, redis_at, factor = frame
        n = await self._promote(_TIMER_KEYS, at=repr(float(at)), redis_at=repr(float(redis_at)),
                                factor=repr(float(factor)), limit=limit)
        return int(n)

    async def read_due(self, consumer: str, count: int, block_ms: int,
                       *, after: bytes | None = None) -> list[TimerEntry]:
        """Due timers not yet read by anyone; with `after`, instead those this consumer read
        and never acknowledged, from after that entry id (b"0": all of them)."""
        reply: Any = await self.redis.xreadgroup(
            keys.GROUP, consumer, {keys.TIMERS_DUE: ">" if after is None else after},
            count=count, block=None if after is not None else (block_ms or None),
        )
        out: list[TimerEntry] = []
        for _stream, messages in (reply.items() if isinstance(reply, dict) else reply or []):
            for entry_id, fields in messages:
                if fields:  # an id still pending whose entry is gone reads without fields
                    out.append(TimerEntry(entry_id, fields[b"m"]))
        return out

    async def reclaim(self, consumer: str, min_idle_ms: int, count: int = 500) -> list[TimerEntry]:
        """Take over due timers a dead timer process read and never handled: at once when
        its heartbeat stopped (a redial a few seconds late, not a lease), else after
        `min_idle_ms`."""
        taken = await self.heartbeats.take_over(keys.TIMERS_DUE, consumer, count)
        reply: Any = await self.redis.xautoclaim(
            keys.TIMERS_DUE, keys.GROUP, consumer, min_idle_time=min_idle_ms, start_id="0-0",
            count=count,
        )
        return [TimerEntry(i, f[b"m"]) for i, f in [*taken.entries, *reply[1]] if f]

    async def done(self, entries: Sequence[TimerEntry]) -> None:
        await ack_delete(self._done, keys.TIMERS_DUE, [e.entry_id for e in entries])

    async def pending(self) -> int:
        return int(await self.redis.zcard(keys.TIMERS))
