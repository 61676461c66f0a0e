"""Workers: lane -> claim -> channel.send -> Attempt -> sent / retry / fallback / dead-letter.

A batch read from a lane is claimed with one Lua call per campaign (the compare-and-set that
keeps a replayed or reclaimed entry from being sent twice), sent concurrently under a
per-channel limit, and recorded with one Lua call per campaign before the entries are
acknowledged. A worker killed anywhere in between leaves its entries pending; the sweeper of
any live worker reclaims them after the lease.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence

import structlog

from warnbus.domain.models import (
    Attempt,
    Delivery,
    DeliveryKind,
    Outcome,
    TargetKind,
)
from warnbus.domain.states import DeliveryState
from warnbus.errors import PermanentChannelError, TransientChannelError
from warnbus.flow.breaker import Breakers
from warnbus.flow.escalation import Retry, SpeakerCheck, encode_timer
from warnbus.flow.fallback import plan_fallbacks
from warnbus.plugin import Channel
from warnbus.runtime import metrics
from warnbus.runtime.context import Context
from warnbus.runtime.tasks import gather_paced
from warnbus.state.pinned import IO, pinned
from warnbus.state.queue import EntryTracker, LaneEntry
from warnbus.state.ratelimit import RateLimiter
from warnbus.state.store import Outcome as Stored

log = structlog.get_logger("warnbus.dispatch")
_stdlib_log = logging.getLogger("warnbus.dispatch")


def _info_enabled() -> bool:
    return _stdlib_log.isEnabledFor(logging.INFO)

SEND, RESEND, SKIP, CANCELLED, IN_FLIGHT = 1, 2, 0, 3, 4
# Read once per delivery: module names, not attribute lookups on the enum class (each of
# those costs about 0.15 µs in Python 3.11, a few per delivery).
_SENT, _DELIVERED, _RETRY = DeliveryState.SENT, DeliveryState.DELIVERED, DeliveryState.RETRY
_REACHED, _GAVE_UP = DeliveryState.REACHED, DeliveryState.GAVE_UP


class Dispatcher:
    def __init__(self, ctx: Context, channels: Mapping[str, Channel], consumer: str) -> None:
        self.ctx = ctx
        self.channels = dict(channels)
        self.consumer = consumer
        # One chunk's sends in flight per channel (a chunk holds at most `concurrency`): the
        # lane loop's and a sweep's chunks take turns.
        self._sending: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self.sent = 0  # deliveries handed to a provider by this process (for progress/bench)
        self._limiter = RateLimiter(ctx.redis)
        self.breakers = Breakers(ctx.clock.now)  # per provider, in memory (see breaker.py)

    async def run_channel(self, channel: str, stop: asyncio.Event) -> None:
        cfg = self.ctx.settings.engine
        impl = self.channels.get(channel)
        rate = impl.info.rate_per_s if impl is not None else None
        # Read about a second's worth under a provider rate, so entries do not sit idle in
        # this worker's pending list long enough to look abandoned; the channel's readers
        # share it (their sends take turns, so each batch waits on the others').
        count = cfg.batch if not rate else max(1, min(cfg.batch, int(rate)))
        count = max(1, count // cfg.lane_readers)
        async with pinned(self.ctx.redis, self.ctx.store, self.ctx.lanes) as io:
            while not stop.is_set():
                try:
                    entries = await io.lanes.read(channel, self.consumer, count, 500)
                    if entries:
                        await self.process(channel, entries, io)
                except asyncio.CancelledError:
                    raise
                except Exception:  # keep the worker alive; the entries stay pending for reclaim
                    log.exception("dispatch loop error", channel=channel)
                    await asyncio.sleep(1.0)

    async def sweep(self, channel: str) -> int:
        """Reclaim and process entries whose worker died (idle longer than the lease)."""
        idle_ms = int(self.ctx.settings.engine.lease_s * 1000 / self.ctx.settings.engine.clock_factor)
        entries = await self.ctx.lanes.reclaim(channel, self.consumer, max(idle_ms, 1000))
        if entries:
            log.warning("reclaimed entries of a dead worker", channel=channel, n=len(entries))
            await self.process(channel, entries)
        return len(entries)

    async def process(self, channel: str, entries: Sequence[LaneEntry], io: IO | None = None
                      ) -> None:
        """Claim, send and record `entries` in chunks of the channel's concurrency, then
        acknowledge the lane entries whose deliveries are all finished.

        Chunking bounds what a killed worker can leave half done (sent but not recorded, so
        sent again after the lease) to one chunk per channel: the in-flight window. The
        acknowledgement waits for the whole batch (one call, not one per chunk): an entry
        left unacknowledged by a crash or a failed chunk only costs a re-read after the
        lease, whose claims skip what is recorded.
        """
        io = io or IO(self.ctx.store, self.ctx.lanes)
        step = max(1, self.ctx.settings.engine.concurrency)
        impl = self.channels.get(channel)
        rate = impl.info.rate_per_s if impl is not None else None
        tracker = EntryTracker(entries)
        complete: list[LaneEntry] = []
        for i in range(0, len(entries), step):
            chunk = entries[i : i + step]
            # Wait for the provider's rate before claiming, so a lease never runs out in a queue.
            await self._limiter.acquire(channel, rate, len(chunk))
            complete += tracker.finish(await self._process_chunk(channel, chunk, io))
        await io.lanes.done(complete)

    async def _process_chunk(self, channel: str, entries: Sequence[LaneEntry], io: IO
                             ) -> list[LaneEntry]:
        """Claim, send and record `entries`; return those finished (not left in flight)."""
        ctx = self.ctx
        cfg = ctx.settings.engine
        now = ctx.clock.now()
        by_c: dict[str, list[LaneEntry]] = {}
        for e in entries:
            by_c.setdefault(e.delivery.campaign_id, []).append(e)
        claims = await io.store.claim(
            {c: [e.delivery for e in es] for c, es in by_c.items()}, now, cfg.lease_s
        )
        to_send: list[tuple[LaneEntry, int]] = []
        finished: list[LaneEntry] = []
        for cid, es in by_c.items():
            for e, (code, n) in zip(es, claims[cid], strict=True):
                if code in (SEND, RESEND):
                    to_send.append((e, n))
                if code != IN_FLIGHT:
                    finished.append(e)
        stored = await self._send_all(channel, [(e.delivery, n) for e, n in to_send])
        await io.store.record(stored, ctx.clock.now())
        # Counted per chunk: a labelled counter costs a lookup and a lock per increment.
        counts: Counter[tuple[str, str]] = Counter()
        errors: Counter[str] = Counter()
        for o in stored:
            counts[(o.delivery.kind.value, o.next_state)] += 1
            if o.attempt.error:
                errors["permanent" if o.attempt.outcome is Outcome.FAILED_PERM else "transient"] += 1
        for (kind, state), n in counts.items():
            metrics.DELIVERIES.labels(channel, kind, state).inc(n)
        for klass, n in errors.items():
            metrics.PROVIDER_ERRORS.labels(channel, klass).inc(n)
        await self._follow_up(stored)
        return finished

    async def _send_all(self, channel: str, sends: Sequence[tuple[Delivery, int]]
                        ) -> list[Stored]:
        """Send a chunk's claimed deliveries at once; return their attempts."""
        impl = self.channels.get(channel)
        if impl is None:
            at = self.ctx.clock.now()
            err = f"channel {channel} is not configured"
            return [Stored(d, Attempt(d.id, n, channel, at, Outcome.FAILED_PERM, error=err),
                           DeliveryState.FAILED) for d, n in sends]
        key = impl.info.breaker_key
        async with self._sending[channel]:
            # Asked when the sends start (all of them within a few loop turns, see
            # gather_paced): a breaker that opened while this chunk waited holds it.
            at = self.ctx.clock.now()
            go, wait = self.breakers.admit(key, len(sends))
            info = _info_enabled()  # one event per send: not even built when filtered out
            results = await gather_paced(self._send(impl, channel, d, n, at, info)
                                         for d, n in sends[:go])
        up = sum(1 for _o, ok in results if ok)
        self.breakers.record_many(key, up, len(results) - up)
        out = [o for o, _ok in results]
        for d, n in sends[go:]:
            # The provider is down: wait on the durable timers (jittered, so the retries
            # do not come back as one herd), not in memory. Each refusal is an attempt,
            # so a breaker that stays open ends in the dead letters and the policy's
            # fallback channel, as a failing provider would.
            held = wait or 0.0
            delay = held + random.uniform(0.0, min(held, 2.0))
            out.append(self._transient(d, n, at, f"circuit open: {key} is failing", delay))
        return out

    async def _send(self, impl: Channel, channel: str, d: Delivery, n: int, at: float,
                    info: bool) -> tuple[Stored, bool]:
        """One send: its attempt, and whether the provider answered (for the breaker)."""
        try:
            receipt = await impl.send(d)
        except TransientChannelError as e:
            # Spread a provider's Retry-After too: every refused send got the same one.
            after = e.retry_after * random.uniform(1.0, 1.25) if e.retry_after else None
            return self._transient(d, n, at, e.message, after), False
        except PermanentChannelError as e:
            # The provider answered: it is up.
            log.warning("permanent failure", delivery_id=d.id, channel=channel, error=e.message)
            return Stored(d, Attempt(d.id, n, channel, at, Outcome.FAILED_PERM,
                                     error=e.message), DeliveryState.FAILED), True
        except Exception as e:  # a channel bug must not lose the delivery: retry it
            log.exception("channel raised an unclassified error", channel=channel)
            return self._transient(d, n, at, f"{type(e).__name__}: {e}", None), False
        self.sent += 1
        state = _DELIVERED if receipt.outcome is Outcome.DELIVERED else _SENT
        if info:
            log.info("sent", delivery_id=d.id, campaign_id=d.campaign_id, channel=channel,
                     target=d.target_id, step=d.step, kind=d.kind.value, attempt=n)
        return Stored(d, Attempt(d.id, n, channel, at, receipt.outcome,
                                 provider_id=receipt.provider_id), state), True

    def _transient(self, d: Delivery, n: int, at: float, error: str, retry_after: float | None
                   ) -> Stored:
        cfg = self.ctx.settings.engine
        if n >= cfg.max_attempts:
            return Stored(d, Attempt(d.id, n, d.channel, at, Outcome.FAILED_TEMP, error=error),
                          DeliveryState.DEAD)
        backoff = min(cfg.retry_max_s, cfg.retry_base_s * 2 ** (n - 1))
        delay = retry_after if retry_after is not None else backoff * random.uniform(0.5, 1.0)
        return Stored(d, Attempt(d.id, n, d.channel, at, Outcome.FAILED_TEMP, error=error,
                                 retry_after=delay), DeliveryState.RETRY)

    async def _follow_up(self, stored: Sequence[Stored]) -> None:
        """Retries go to the timers; permanent failures and dead letters switch channel."""
        ctx = self.ctx
        retries = []
        switch: list[Delivery] = []
        dead = []
        for o in stored:
            d = o.delivery
            if (o.next_state in _REACHED and d.target_kind is TargetKind.DEVICE
                    and d.kind in (DeliveryKind.WARNING, DeliveryKind.UPDATE)):
                # Speakers must report playout in time, or their grid officer is put on notice.
                wait = ctx.rules.policy_for(d.level).speaker_deadline_s
                if wait:
                    check = SpeakerCheck(d.campaign_id, d.alert_id, d.address)
                    retries.append((encode_timer(check), o.attempt.at + wait))
            if o.next_state is _RETRY:
                due = o.attempt.at + (o.attempt.retry_after or 0.0)
                retries.append((encode_timer(Retry(o.delivery, o.attempt.n)), due))
            elif o.next_state in _GAVE_UP:
                switch.append(o.delivery)
                if o.next_state is DeliveryState.DEAD:
                    dead.append(o)
        if retries:
            await ctx.timers.schedule(retries)
        if dead:
            await ctx.lanes.dead_letter([(o.delivery, o.attempt.error or "") for o in dead])
            log.error("dead-lettered", n=len(dead), ids=[o.delivery.id for o in dead][:10])
        if switch:
            await ctx.lanes.enqueue(await plan_fallbacks(ctx, switch))
