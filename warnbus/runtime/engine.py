"""The engine's roles as asyncio tasks: worker (inbox + lanes), timer, sweeper.

One process runs every role by default; `--role` splits them and any number of processes
share one Redis (DESIGN section 8).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import socket
import sys
import time
from collections.abc import Iterable, Mapping

import structlog

from warnbus.feeds import FeedManager
from warnbus.flow.dispatch import Dispatcher
from warnbus.flow.durable import UNAVAILABLE, outage, replay
from warnbus.flow.events import EngineSink
from warnbus.flow.lifecycle import CampaignLifecycle
from warnbus.flow.ticker import Ticker
from warnbus.plugin import Channel, ListeningChannel
from warnbus.runtime import metrics
from warnbus.runtime.clock import RedisTime
from warnbus.runtime.context import Context
from warnbus.runtime.journal import Journal
from warnbus.runtime.live_registry import LiveRegistry
from warnbus.runtime.tasks import within
from warnbus.state.queue import Inbox, InboxItem

log = structlog.get_logger("warnbus.runtime.engine")

ROLES = frozenset({"api", "worker", "timer"})
#: How often (real seconds) a journal that holds something is replayed while Redis is away,
#: and how often the directory is searched for journals that stopped processes left.
JOURNAL_REPLAY_S = 1.0
#: How often (real seconds) the offset of this process's clock to Redis's is measured again.
CLOCK_SYNC_S = 30.0
ORPHANS_EVERY_S = 30.0
#: The longest a thread waits for the GIL while another keeps running Python (or C that
#: holds the GIL). Worker threads parse, match and check signatures beside the event loop;
#: each time the loop lets the GIL go (every socket call, every select) such a thread may
#: keep it this long before the loop gets it back. At Python's 5 ms, a loop turn of a few
#: dozen socket calls waited up to ~0.1 s behind one thread parsing a 5 MB feed entry
#: (the convoy effect); at 1 ms the hostile loads' worst waits for the GIL about halved.
SWITCH_INTERVAL_S = 0.001


def consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class Engine:
    def __init__(
        self,
        ctx: Context,
        channels: Mapping[str, Channel],
        roles: Iterable[str] = ROLES,
        consumer: str | None = None,
    ) -> None:
        self.ctx = ctx
        self.channels = dict(channels)
        self.roles = frozenset(roles)
        self.consumer = consumer or consumer_name()
        self.inbox = Inbox(ctx.redis, ctx.lanes.heartbeats)
        self.lifecycle = CampaignLifecycle(ctx)
        self.dispatcher = Dispatcher(ctx, self.channels, self.consumer)
        self.ticker = Ticker(ctx, self.consumer)
        self.sink = EngineSink(ctx)
        self.feeds = FeedManager(ctx, self.consumer)
        self.registry = LiveRegistry(ctx)
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._timer_task: asyncio.Task[None] | None = None

    async def setup(self) -> None:
        await self.ctx.lanes.setup()
        await self.ctx.timers.setup()
        await self.inbox.setup()

    async def start(self) -> None:
        await self.setup()
        self._stop.clear()
        spawn = self._tasks.append
        source = self.ctx.clock.source()
        if source is not None:
            await self._check_clock(source)
            spawn(asyncio.create_task(self._clock_loop(source), name="clock"))
        if "worker" in self.roles:
            for ch in self.channels.values():
                if isinstance(ch, ListeningChannel):
                    await ch.start(self.sink)
            spawn(asyncio.create_task(self._inbox_loop(), name="inbox"))
            for name in self.channels:
                for i in range(self.ctx.settings.engine.lane_readers):
                    spawn(asyncio.create_task(self.dispatcher.run_channel(name, self._stop),
                                              name=f"lane-{name}-{i}"))
        if "timer" in self.roles:
            self._timer_task = asyncio.create_task(self.ticker.run(self._stop), name="timers")
            spawn(self._timer_task)
            await self.feeds.start()
        if self.roles & {"worker", "timer"}:
            await self.ctx.lanes.heartbeats.beat(self.consumer)  # alive before it reads
            spawn(asyncio.create_task(self._heartbeat_loop(), name="heartbeat"))
            spawn(asyncio.create_task(self._sweep_loop(), name="sweeper"))
        if self.ctx.journal is not None:
            spawn(asyncio.create_task(self._journal_loop(self.ctx.journal), name="journal"))
        # Every role serves the registry version Redis holds (a change applied while running).
        spawn(asyncio.create_task(self.registry.run(self._stop), name="registry"))
        # What is alive now (the registry, the matcher's index, every module) lives as long
        # as the process: keep it out of the cyclic collector's full passes, which walked it
        # all each time (about a tenth of the CPU of a county's first wave).
        gc.freeze()
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL_S))
        log.info("engine started", roles=sorted(self.roles), consumer=self.consumer,
                 channels=sorted(self.channels))

    async def stop(self) -> None:
        # A process that starts several engines (tests, the benchmarks) must be able to
        # collect the cyclic garbage of the stopped ones.
        gc.unfreeze()
        self._stop.set()
        await self.feeds.stop()
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._tasks and self.roles & {"worker", "timer"}:
            # What this process leaves pending is taken over at once by the others.
            with contextlib.suppress(Exception):
                await within(self.ctx.lanes.heartbeats.stopped(self.consumer), 2.0)
        self._tasks.clear()
        for name, ch in self.channels.items():
            # A provider connection that does not close must not keep the process alive.
            try:
                await asyncio.wait_for(ch.aclose(), 5.0)
            except Exception:  # includes the timeout
                log.warning("channel did not close cleanly", channel=name)

    # ----------------------------------------------------------------- inbox

    async def inbox_once(self, block_ms: int = 0, *, reclaim_idle_ms: int | None = None) -> int:
        """Plan what is waiting in the inbox; with reclaim, take over a dead worker's items."""
        if reclaim_idle_ms is not None:
            items = await self.inbox.reclaim(self.consumer, reclaim_idle_ms)
        else:
            items = await self.inbox.read(self.consumer, block_ms)
        n = len(items)
        await self._plan(items)
        return n

    async def _plan(self, items: list[InboxItem]) -> None:
        """Plan `items` in order, each removed once planned and acknowledged: a turn that
        fails (Redis away) leaves in `items` exactly what is still to do."""
        while items:
            item = items[0]
            if item.alert_id:
                beat = asyncio.create_task(self._keep_claimed(item.entry_id))
                try:
                    await self.lifecycle.handle(item.campaign_id, item.alert_id)
                finally:
                    beat.cancel()
            await self.inbox.done(item.entry_id)
            items.pop(0)

    async def _keep_claimed(self, entry_id: bytes) -> None:
        """Reset the idle time of an inbox item while it is being planned, so no sweeper
        reclaims (and plans again) work that is alive; a dead worker stops resetting it."""
        cfg = self.ctx.settings.engine
        every = max(0.5, cfg.lease_s / cfg.clock_factor / 3)
        while True:
            await asyncio.sleep(every)
            await self.inbox.keep(self.consumer, entry_id)

    async def _inbox_loop(self) -> None:
        # Items a turn left when Redis went away are planned again as soon as it answers,
        # not after the lease (planning an item twice is safe: the lifecycle marks what it
        # did).
        left: list[InboxItem] = []
        while not self._stop.is_set():
            try:
                if not left:
                    left = await self.inbox.read(self.consumer, 500)
                await self._plan(left)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.exception("inbox loop error")
                if not outage(e):
                    left = []  # it would fail again: the sweep takes it after the lease
                await asyncio.sleep(1.0)

    async def _heartbeat_loop(self) -> None:
        """Say this process lives; one silent for `heartbeat_ttl_s` is dead, and what it
        holds (timers, lane entries, inbox items) is taken over at once by the sweepers."""
        heartbeats = self.ctx.lanes.heartbeats
        every = self.ctx.settings.engine.heartbeat_s
        failing = False
        while not self._stop.is_set():
            await asyncio.sleep(every)
            try:
                await within(heartbeats.beat(self.consumer), every)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                if not failing:  # once per outage, not every second of it
                    log.warning("heartbeat failed", error=repr(e))
                failing = True
            else:
                if failing:
                    log.info("heartbeat restored")
                failing = False

    async def _check_clock(self, source: RedisTime) -> bool:
        """Measure this process's clock against Redis's; one further off than
        `max_clock_skew_s` refuses the timer role (deadlines are Redis's; api and worker go
        on, on Redis's time). False when it was refused now."""
        offset = await source.sync(self.ctx.redis)
        metrics.CLOCK_OFFSET.set(offset)
        limit = self.ctx.settings.engine.max_clock_skew_s
        if source.skew <= limit or "timer" not in self.roles:
            return True
        self.roles -= {"timer"}
        log.error("this process's clock differs from Redis's: the timer role is refused "
                  "(fix the clock, e.g. NTP, and restart it)", offset_s=round(offset, 3),
                  max_clock_skew_s=limit, roles=sorted(self.roles))
        return False

    async def _clock_loop(self, source: RedisTime) -> None:
        """Measure the offset again now and then: a clock stepped later is corrected, and
        one gone too far stops the timer role."""
        while not self._stop.is_set():
            await asyncio.sleep(CLOCK_SYNC_S)
            try:
                if not await self._check_clock(source) and self._timer_task is not None:
                    self._timer_task.cancel()
                    await self.feeds.stop()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("clock sync failed; keeping the last offset", exc_info=True)

    async def _journal_loop(self, journal: Journal) -> None:
        """Replay the journal into Redis whenever it holds something and Redis answers
        (and, now and then, the journals that stopped processes left in the directory)."""
        last_orphans = -ORPHANS_EVERY_S
        while not self._stop.is_set():
            orphans = time.monotonic() - last_orphans >= ORPHANS_EVERY_S
            try:
                if journal.pending or orphans:
                    await replay(journal, self.sink.apply, orphans=orphans)
                if orphans:
                    last_orphans = time.monotonic()
            except asyncio.CancelledError:
                raise
            except UNAVAILABLE:
                pass  # Redis is still away: try again in a moment
            except Exception:
                log.exception("journal replay error")
            metrics.JOURNAL_BYTES.set(journal.size)
            await asyncio.sleep(JOURNAL_REPLAY_S)

    async def _sweep_loop(self) -> None:
        cfg = self.ctx.settings.engine
        idle_ms = max(1000, int(cfg.lease_s * 1000 / cfg.clock_factor))
        while not self._stop.is_set():
            try:
                await asyncio.sleep(cfg.sweep_s)
                if "worker" in self.roles:
                    await self.inbox_once(reclaim_idle_ms=idle_ms)
                    for name in self.channels:
                        await self.dispatcher.sweep(name)
                if "timer" in self.roles:
                    await self.ticker.sweep()
                await self.ctx.lanes.heartbeats.forget_old()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("sweeper error")
