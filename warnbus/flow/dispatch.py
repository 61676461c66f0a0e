"""Workers: lane -> claim -> channel.send -> Attempt -> sent / retry / fallback / dead-letter.

A batch read from a lane is claimed with one Lua call per campaign (the compare-and-set that
keeps a replayed or reclaimed entry from being sent twice), sent concurrently under a
per-channel limit, and recorded with one Lua call per campaign before the entries are
acknowledged. A worker killed anywhere in between leaves its entries pending; the sweeper of
any live worker reclaims them after the lease.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence

import msgspec
import structlog

from warnbus.domain.models import (
    Attempt,
    Delivery,
    Outcome,
    TargetKind,
)
from warnbus.domain.states import DeliveryState
from warnbus.errors import LimitedChannelError, PermanentChannelError, TransientChannelError
from warnbus.flow.breaker import Breakers
from warnbus.flow.durable import outage
from warnbus.flow.escalation import Retry, encode_timer
from warnbus.flow.fallback import Cause, plan_fallbacks
from warnbus.flow.reroute import LimitGate
from warnbus.flow.retry import backoff, next_try, out_of_attempts, spread
from warnbus.plugin import PERSON_FIELD, Channel
from warnbus.runtime import metrics
from warnbus.runtime.context import Context
from warnbus.runtime.tasks import gather_paced
from warnbus.state.pinned import IO, pinned
from warnbus.state.queue import EntryTracker, LaneEntry
from warnbus.state.ratelimit import RateLimiter
from warnbus.state.store import SendRecord

log = structlog.get_logger("warnbus.dispatch")
_stdlib_log = logging.getLogger("warnbus.dispatch")


def _info_enabled() -> bool:
    return _stdlib_log.isEnabledFor(logging.INFO)

SEND, RESEND, SKIP, CANCELLED, IN_FLIGHT = 1, 2, 0, 3, 4
# Read once per delivery: module names, not attribute lookups on the enum class (each of
# those costs about 0.15 µs in Python 3.11, a few per delivery).
_SENT, _DELIVERED, _RETRY = DeliveryState.SENT, DeliveryState.DELIVERED, DeliveryState.RETRY
_GAVE_UP = DeliveryState.GAVE_UP
_REROUTED = DeliveryState.REROUTED


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
        self.limits = LimitGate(ctx)  # per-number limits of provider accounts (reroute.py)
        self._turns = itertools.count(1)

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
            held: Sequence[LaneEntry] = ()  # a batch whose turn failed (Redis away, say)
            turn = ""
            while not stop.is_set():
                try:
                    if held:
                        # Failed with Redis away: processed again by the same turn as soon
                        # as it answers, not after the lease. What it recorded is skipped,
                        # and the claims this turn made count as expired (its sends had all
                        # returned when it failed); another turn's (a sweep's that took the
                        # batch meanwhile) stand.
                        await self.process(channel, held, io, gone=frozenset({turn}),
                                           holder=turn)
                        held = ()
                    held = await io.lanes.read(channel, self.consumer, count, 500)
                    if held:
                        turn = self._turn()
                        await self.process(channel, held, io, holder=turn)
                        held = ()
                except asyncio.CancelledError:
                    raise
                except Exception as e:  # keep the worker alive
                    log.exception("dispatch loop error", channel=channel)
                    if not outage(e):
                        # Another error would come again: the batch stays pending and the
                        # sweep takes it after the lease, while the lane goes on.
                        held = ()
                    await asyncio.sleep(1.0)

    async def sweep(self, channel: str) -> int:
        """Reclaim and process the entries of dead workers: at once for one whose heartbeat
        stopped (its claims count as expired), after the lease for one that stays idle."""
        engine = self.ctx.settings.engine
        taken, gone = await self.ctx.lanes.take_over(channel, self.consumer)
        if taken:
            log.warning("took over entries of a dead worker", channel=channel, n=len(taken),
                        workers=sorted(gone))
            await self.process(channel, taken, gone=gone)
        idle_ms = int(engine.lease_s * 1000 / engine.clock_factor)
        entries = await self.ctx.lanes.reclaim(channel, self.consumer, max(idle_ms, 1000))
        if entries:
            log.warning("reclaimed entries of a dead worker", channel=channel, n=len(entries))
            await self.process(channel, entries)
        return len(taken) + len(entries)

    def _turn(self) -> str:
        """A name for one turn's claims: this process's consumer name and the turn's number
        (a dead process's heir expires all of them, a failed turn only its own)."""
        return f"{self.consumer.replace('#', '_')}#{next(self._turns)}"

    async def process(self, channel: str, entries: Sequence[LaneEntry], io: IO | None = None,
                      gone: frozenset[str] = frozenset(), holder: str = "") -> None:
        """Claim, send and record `entries` in chunks of the channel's concurrency, then
        acknowledge the lane entries whose deliveries are all finished.

        Chunking bounds what a killed worker can leave half done (sent but not recorded, so
        sent again after the lease) to one chunk per channel: the in-flight window. The
        acknowledgement waits for the whole batch (one call, not one per chunk): an entry
        left unacknowledged by a crash or a failed chunk only costs a re-read after the
        lease, whose claims skip what is recorded. The claims name `holder` (a new turn
        when empty); those held by a name in `gone` (a dead worker, or the failed turn
        itself) are taken as expired.
        """
        holder = holder or self._turn()
        io = io or IO(self.ctx.store, self.ctx.lanes)
        step = max(1, self.ctx.settings.engine.concurrency)
        impl = self.channels.get(channel)
        rate = impl.info.rate_per_s if impl is not None else None
        tracker = EntryTracker(entries)
        complete: list[LaneEntry] = []
        for i in range(0, len(entries), step):
            chunk = entries[i : i + step]
            held = self.breakers.holding(impl.info.breaker_key, len(chunk)) if impl else None
            if held is not None:
                # The provider is down: neither claimed nor sent, and no attempt.
                await self._defer(channel, [(e.delivery, None) for e in chunk], held)
                complete += tracker.finish(chunk)
                continue
            # Wait for the provider's rate before claiming, so a lease never runs out in a queue.
            await self._limiter.acquire(channel, rate, len(chunk))
            complete += tracker.finish(
                await self._process_chunk(channel, chunk, io, gone, holder))
        await io.lanes.done(complete)

    async def _process_chunk(self, channel: str, entries: Sequence[LaneEntry], io: IO,
                             gone: frozenset[str] = frozenset(), holder: str = ""
                             ) -> list[LaneEntry]:
        """Claim, send and record `entries`; return those finished (not left in flight)."""
        ctx = self.ctx
        cfg = ctx.settings.engine
        now = ctx.clock.now()
        by_c: dict[str, list[LaneEntry]] = {}
        for e in entries:
            by_c.setdefault(e.delivery.campaign_id, []).append(e)
        claims = await io.store.claim(
            {c: [e.delivery for e in es] for c, es in by_c.items()}, now, cfg.lease_s,
            holder or self._turn(), gone,
        )
        to_send: list[tuple[LaneEntry, int]] = []
        finished: list[LaneEntry] = []
        for cid, es in by_c.items():
            for e, (code, n) in zip(es, claims[cid], strict=True):
                if code in (SEND, RESEND):
                    to_send.append((e, n))
                if code != IN_FLIGHT:
                    finished.append(e)
        stored, refused, wait = await self._send_all(channel,
                                                     [(e.delivery, n) for e, n in to_send])
        # A send its account's per-number limit would refuse went by no provider (`_send`),
        # nor did one the provider refused under its own limit: another path takes them.
        limited = [(o.delivery, o.attempt.n, o.attempt.error or "") for o in stored
                   if o.next_state is _REROUTED]
        if limited:
            stored = [o for o in stored if o.next_state is not _REROUTED]
            stored += await self.limits.reroute(limited)
        await io.store.record(stored, ctx.clock.now())
        if refused:
            await self._defer(channel, refused, wait)
        # Counted per chunk: a labelled counter costs a lookup and a lock per increment.
        counts: Counter[tuple[str, str]] = Counter()
        errors: Counter[str] = Counter()
        for o in stored:
            counts[(o.delivery.kind.value, o.next_state)] += 1
            if o.attempt.error:
                perm = o.attempt.outcome is Outcome.FAILED_PERM
                errors["permanent" if perm else "transient"] += 1
        for (kind, state), n in counts.items():
            metrics.DELIVERIES.labels(channel, kind, state).inc(n)
        for klass, n in errors.items():
            metrics.PROVIDER_ERRORS.labels(channel, klass).inc(n)
        await self._follow_up(stored)
        return finished

    async def _send_all(self, channel: str, sends: Sequence[tuple[Delivery, int]]
                        ) -> tuple[list[SendRecord], list[tuple[Delivery, int | None]], float]:
        """Send a chunk's claimed deliveries at once: their attempts, and those the breaker
        refused (not sent: no attempt) with how long it holds them."""
        impl = self.channels.get(channel)
        if impl is None:
            at = self.ctx.clock.now()
            err = f"channel {channel} is not configured"
            return [SendRecord(d, Attempt(d.id, n, channel, at, Outcome.FAILED_PERM, error=err),
                           DeliveryState.FAILED) for d, n in sends], [], 0.0
        key = impl.info.breaker_key
        async with self._sending[channel]:
            # Asked when the sends start (all of them within a few loop turns, see
            # gather_paced): a breaker that opened while this chunk waited holds it.
            at = self.ctx.clock.now()
            go, wait = self.breakers.admit(key, len(sends))
            info = _info_enabled()  # one event per send: not even built when filtered out
            # Settled: a send that raises (Redis away for a limit) leaves none of the chunk
            # still at its provider when the turn fails and the batch is sent again.
            results = await gather_paced((self._send(impl, channel, d, n, at, info)
                                          for d, n in sends[:go]), settle=True)
        up = sum(1 for _o, ok in results if ok is True)
        self.breakers.record_many(key, up, sum(1 for _o, ok in results if ok is False))
        return [o for o, _ok in results], list(sends[go:]), wait or 0.0

    async def _send(self, impl: Channel, channel: str, d: Delivery, n: int, at: float,
                    info: bool) -> tuple[SendRecord, bool | None]:
        """One send: its attempt, and whether the provider answered (for the breaker; None:
        not asked)."""
        current = self._readdressed(impl, d)
        if current is None:
            return SendRecord(d, Attempt(d.id, n, channel, at, Outcome.FAILED_PERM,
                                     error="no longer in the registry (or no address there)"),
                          DeliveryState.FAILED), True
        d = current
        # Taken from the account's per-number record right before the provider call, so the
        # provider counts it a request's latency later, not a chunk's (flow/reroute.py).
        over = await self.limits.take(channel, d, n)
        if over is not None:
            return SendRecord(d, Attempt(d.id, n, channel, at, Outcome.LIMITED, error=over),
                          _REROUTED), None
        try:
            receipt = await impl.send(d)
        except LimitedChannelError as e:
            # The provider's per-number limit: neither the person's failure nor an outage.
            return SendRecord(d, Attempt(d.id, n, channel, at, Outcome.LIMITED,
                                     error=f"refused by {channel}'s limit: {e.message}"),
                          _REROUTED), True
        except TransientChannelError as e:
            # Spread a provider's Retry-After too: every refused send got the same one.
            after = e.retry_after * random.uniform(1.0, 1.25) if e.retry_after else None
            return self._transient(d, n, at, e.message, after), False
        except PermanentChannelError as e:
            # The provider answered: it is up.
            log.warning("permanent failure", delivery_id=d.id, channel=channel, error=e.message)
            return SendRecord(d, Attempt(d.id, n, channel, at, Outcome.FAILED_PERM,
                                     error=e.message), DeliveryState.FAILED), True
        except Exception as e:  # a channel bug must not lose the delivery: retry it
            log.exception("channel raised an unclassified error", channel=channel)
            return self._transient(d, n, at, f"{type(e).__name__}: {e}", None), False
        self.sent += 1
        state = _DELIVERED if receipt.outcome is Outcome.DELIVERED else _SENT
        if info:
            log.info("sent", delivery_id=d.id, campaign_id=d.campaign_id, channel=channel,
                     target=d.target_id, step=d.step, kind=d.kind.value, attempt=n)
        return SendRecord(d, Attempt(d.id, n, channel, at, receipt.outcome,
                                 provider_id=receipt.provider_id), state), True

    def _readdressed(self, impl: Channel, d: Delivery) -> Delivery | None:
        """The delivery to the person's address in the registry served now: a registry
        change applied while the delivery waited on its lane or for a retry (a new phone)
        is what it goes to; None when the person, or their address, is gone."""
        if d.target_kind is not TargetKind.PERSON:
            return d
        person = self.ctx.person(d.target_id)
        address = PERSON_FIELD[impl.info.address](person) if person is not None else None
        if not address:
            return None
        return d if address == d.address else msgspec.structs.replace(d, address=address)

    def _transient(self, d: Delivery, n: int, at: float, error: str, retry_after: float | None
                   ) -> SendRecord:
        """A transient failure: tried again inside the delivery's horizon, else dead."""
        cfg = self.ctx.settings.engine
        delay = retry_after if retry_after is not None else backoff(cfg, n)
        due = None if out_of_attempts(cfg, n) else next_try(cfg, d, at, delay)
        if due is None:
            return SendRecord(d, Attempt(d.id, n, d.channel, at, Outcome.FAILED_TEMP, error=error),
                          DeliveryState.DEAD)
        return SendRecord(d, Attempt(d.id, n, d.channel, at, Outcome.FAILED_TEMP, error=error,
                                 retry_after=due - at), DeliveryState.RETRY)

    async def _defer(self, channel: str, items: Sequence[tuple[Delivery, int | None]],
                     wait: float) -> None:
        """Deliveries the breaker refused (`n`: the attempt number their claim gave, None when
        they were not claimed): back to retry on the durable timers after its next probe
        (jittered), or, past their horizon, given up (no attempt), dead-lettered and handed
        to a channel of another provider."""
        ctx = self.ctx
        cfg = ctx.settings.engine
        now = ctx.clock.now()
        later: list[tuple[Delivery, int | None, float]] = []
        over: list[tuple[Delivery, int | None]] = []
        for d, n in items:
            due = next_try(cfg, d, now, spread(wait))
            if due is None:
                over.append((d, n))
            else:
                later.append((d, n, due))
        why = f"circuit open: the provider of {channel} is failing"
        applied = await ctx.store.unsent(
            [(d, n, False, "") for d, n, _due in later if n is not None]
            + [(d, n, True, why) for d, n in over], now)
        released = iter(applied)
        retries = [(encode_timer(Retry(d, (n or 1) - 1)), due) for d, n, due in later
                   if n is None or next(released)]
        gave_up = [d for (d, _n), ok in zip(over, released, strict=True) if ok]
        if retries:
            await ctx.timers.schedule(retries)
        if gave_up:
            metrics.DELIVERIES.labels(channel, "any", DeliveryState.DEAD.value).inc(len(gave_up))
            await ctx.lanes.dead_letter([(d, why) for d in gave_up])
            log.error("gave up: the provider refused until the deadline", channel=channel,
                      n=len(gave_up), ids=[d.id for d in gave_up][:10])
            await ctx.lanes.enqueue(await plan_fallbacks(ctx, [(d, Cause.PROVIDER)
                                                               for d in gave_up]))

    async def _follow_up(self, stored: Sequence[SendRecord]) -> None:
        """Retries go to the timers; permanent failures and dead letters switch channel."""
        ctx = self.ctx
        retries = []
        switch: list[tuple[Delivery, Cause]] = []
        dead = []
        for o in stored:
            if o.next_state is _RETRY:
                due = o.attempt.at + (o.attempt.retry_after or 0.0)
                retries.append((encode_timer(Retry(o.delivery, o.attempt.n)), due))
            elif o.next_state in _GAVE_UP:
                if o.next_state is DeliveryState.DEAD:
                    dead.append(o)
                    # Failing until its deadline: the provider's doing while its breaker
                    # is not closed (it fails broadly), else this address's.
                    key = o.delivery.channel
                    impl = self.channels.get(key)
                    broad = impl is not None and self.breakers.failing(impl.info.breaker_key)
                    switch.append((o.delivery, Cause.PROVIDER if broad else Cause.ADDRESS))
                else:
                    switch.append((o.delivery, Cause.ADDRESS))
        if retries:
            await ctx.timers.schedule(retries)
        if dead:
            await ctx.lanes.dead_letter([(o.delivery, o.attempt.error or "") for o in dead])
            log.error("dead-lettered", n=len(dead), ids=[o.delivery.id for o in dead][:10])
        if switch:
            await ctx.lanes.enqueue(await plan_fallbacks(ctx, switch))
