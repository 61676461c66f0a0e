"""Run the feed pollers of the "timer" role on APScheduler, one poller per feed overall.

Jobs live in memory (APScheduler is housekeeping only); what must survive a process is in
Redis. Each feed has a lease (SET NX PX, renewed every third of its time): the process that
holds it polls, the others keep trying to take it, so a dead poller is replaced within one
lease time. A process that finds its lease taken stops polling that feed at once; one that
cannot reach Redis stops when the lease may have run out.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import structlog
from apscheduler.executors.asyncio import AsyncIOExecutor
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from warnbus.errors import ConfigError
from warnbus.feeds.health import LEASE
from warnbus.feeds.poller import FeedPoller, PollResult
from warnbus.runtime.config import FeedSettings
from warnbus.runtime.context import Context

log = structlog.get_logger("warnbus.feeds")

LEASE_S = 30.0
_EXECUTOR = "feeds"
# APScheduler logs two INFO lines per job run (a lease renewal every 10 s per process): only
# its warnings are worth reading; poll outcomes are logged by the poller itself.
logging.getLogger(f"apscheduler.executors.{_EXECUTOR}").setLevel(logging.WARNING)


def _job_id(name: str) -> str:
    return f"feed:{name}"


class FeedManager:
    """The feed pollers of one process."""

    def __init__(
        self,
        ctx: Context,
        owner: str,
        *,
        feeds: Sequence[FeedSettings] | None = None,
        lease_s: float = LEASE_S,
    ) -> None:
        configured = tuple(ctx.settings.feeds if feeds is None else feeds)
        names = [f.name for f in configured]
        if dupes := sorted({n for n in names if names.count(n) > 1}):
            raise ConfigError(f"feeds: duplicate feed name(s): {', '.join(dupes)}")
        self.ctx = ctx
        self.feeds = tuple(f for f in configured if f.enabled)
        self.lease_s = lease_s
        self.token = f"{owner}:{secrets.token_hex(4)}"  # unique even for two managers in a pid
        self.pollers: dict[str, FeedPoller] = {}
        self._scheduler: AsyncIOScheduler | None = None
        self._running: set[asyncio.Task[object]] = set()

    async def start(self) -> None:
        """Start polling (nothing to do without enabled feeds)."""
        if not self.feeds or self._scheduler is not None:
            return
        # Each poller has its own session (its feed's address rule); per-request timeouts.
        self.pollers = {f.name: FeedPoller(self.ctx, f) for f in self.feeds}
        sched = AsyncIOScheduler(
            timezone=UTC, executors={_EXECUTOR: AsyncIOExecutor()},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None})
        for f in self.feeds:
            # Paused (no next run time) until this process holds the feed's lease.
            sched.add_job(self._poll, IntervalTrigger(seconds=f.interval_s), args=[f.name],
                          id=_job_id(f.name), next_run_time=None, executor=_EXECUTOR)
        sched.add_job(self.renew_leases, IntervalTrigger(seconds=self.lease_s / 3),
                      id="feed-leases", next_run_time=datetime.now(UTC), executor=_EXECUTOR)
        sched.start()
        self._scheduler = sched
        log.info("feed pollers started", feeds=[f.name for f in self.feeds])

    async def stop(self, *, release: bool = True) -> None:
        """Stop polling; with `release`, hand the leases over at once (else they expire)."""
        sched, self._scheduler = self._scheduler, None
        if sched is not None:
            sched.shutdown(wait=False)
            await asyncio.sleep(0)  # the shutdown is a loop callback: it cancels queued runs
        for task in list(self._running):
            task.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)
        for name, p in self.pollers.items():
            # Even if not known to be held: a cancelled renewal may have taken it meanwhile.
            if release:
                try:
                    await p.state.release(self.token)
                except Exception:  # Redis gone: the lease simply expires
                    log.warning("feed lease not released", feed=name)
            p.held_until = 0.0
            LEASE.labels(feed=name).set(0)
            await p.aclose()

    async def renew_leases(self) -> None:
        """Take or keep each feed's lease; start or stop its poll job accordingly."""
        with self._tracked():
            for name, p in self.pollers.items():
                await self._renew(name, p)

    async def _renew(self, name: str, p: FeedPoller) -> None:
        was = p.held_until > 0
        started = time.monotonic()
        try:
            ok = await p.state.hold(self.token, self.lease_s)
        except Exception:
            # Not renewed: `holding` turns false when the lease may have expired.
            log.exception("feed lease renewal failed", feed=name)
            return
        LEASE.labels(feed=name).set(1 if ok else 0)
        if ok:
            p.held_until = started + self.lease_s
            if not was:
                log.info("feed lease taken", feed=name, owner=self.token)
                self._reschedule(name, 0.0)  # poll now: the last holder may be long gone
            return
        p.held_until = 0.0
        if was:
            log.warning("feed lease lost", feed=name, owner=self.token)
        if self._scheduler is not None:
            self._scheduler.pause_job(_job_id(name))

    async def _poll(self, name: str) -> None:
        p = self.pollers[name]
        if not p.holding:
            return
        with self._tracked():
            try:
                res = await p.poll_once()
            except Exception as e:  # e.g. Redis unreachable: the poll failed, the job lives on
                log.exception("feed poll crashed", feed=name)
                try:
                    res = await p.failed(f"{type(e).__name__}: {e}")
                except Exception:
                    res = PollResult("error", retry_in=p.feed.max_backoff_s)
        if res.retry_in is not None:
            self._reschedule(name, res.retry_in)

    @contextmanager
    def _tracked(self) -> Iterator[None]:
        """Register the running job's task, so that `stop` can cancel and await it."""
        task = asyncio.current_task()
        if task is not None:
            self._running.add(task)
        try:
            yield
        finally:
            if task is not None:
                self._running.discard(task)

    def _reschedule(self, name: str, delay_s: float) -> None:
        if self._scheduler is not None:
            when = datetime.now(UTC) + timedelta(seconds=delay_s)
            self._scheduler.modify_job(_job_id(name), next_run_time=when)
