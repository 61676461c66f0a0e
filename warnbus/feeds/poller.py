"""Poll one feed: conditional GET, new entries only, each CAP through `intake.accept`.

A poll ends in one of: `ok` (the feed was read), `not_modified` (304), `error` (the feed
could not be read: retried with backoff). Entries are handled oldest first; an entry with a
definite outcome (accepted, duplicate, skipped: expired or not for this registry, rejected)
is marked seen and never fetched again; one whose CAP could not be fetched is retried on the
next poll, and the validators are not stored then, so that the next poll reads the whole feed
instead of getting a 304.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import aiohttp
import structlog

from warnbus.domain.models import Alert, MsgType
from warnbus.errors import AuthError, IngestError
from warnbus.feeds.errors import FeedError, FeedRefused
from warnbus.feeds.fetch import ACCEPT_CAP, ACCEPT_INDEX, fetch
from warnbus.feeds.health import ENTRIES, POLL_SECONDS, POLLS
from warnbus.feeds.hosts import HostPolicy, open_session
from warnbus.feeds.index import Entry, parse_index
from warnbus.feeds.state import FeedState
from warnbus.flow.credentials import of_feed
from warnbus.flow.intake import accept
from warnbus.ingest import off_loop
from warnbus.ingest.checks import OutsideRegistryError
from warnbus.ingest.child import read_cap_off_loop
from warnbus.ingest.signature import read_trust_files
from warnbus.runtime.config import FeedSettings
from warnbus.runtime.context import Context

log = structlog.get_logger("warnbus.feeds")

MAX_NEW_PER_POLL = 100  # the rest waits for the next poll (a first poll of a long feed)
FETCH_CONCURRENCY = 4  # CAP files fetched at once from one feed
_OUTCOME = {"errors": "error"}  # Redis count name -> metric label


def backoff_delay(
    failures: int, interval_s: float, cap_s: float, rand: Callable[[], float] = random.random
) -> float:
    """Seconds before the next poll after `failures` consecutive failed polls.

    Exponential from twice the interval, capped, with "equal jitter" (half fixed, half
    random) so that processes restarted together do not hammer a recovering server in step;
    never sooner than the regular interval.
    """
    ceiling = min(cap_s, interval_s * 2.0 ** min(max(failures, 1), 32))
    return max(interval_s, ceiling / 2 + rand() * ceiling / 2)


@dataclass
class PollResult:
    outcome: str  # ok | not_modified | error | not_held
    counts: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    retry_in: float | None = None  # set after an error: the backoff delay


class FeedPoller:
    """Polls one feed; whether this process may poll it is the manager's lease business."""

    def __init__(self, ctx: Context, feed: FeedSettings) -> None:
        self.ctx = ctx
        self.feed = feed
        self.policy = HostPolicy.of(feed.name, feed.url, feed.allowed_hosts, feed.allow_private)
        # The feed's own session: its resolver refuses private addresses unless allowed.
        self._session: aiohttp.ClientSession | None = None
        self.state = FeedState(ctx.redis, feed.name)
        self.credential = of_feed(feed)
        # Read the trust store once, at start-up: a missing file is a configuration error.
        self.trust = read_trust_files(feed.trust) if feed.trust else ()
        if feed.signature != "ignore" and not self.trust and feed.trust_carried_certificate:
            log.warning("feed trusts the certificate each alert carries: anyone can sign with "
                        "a certificate of their own, so a valid signature shows only that the "
                        "alert was not changed on the way, not who sent it; configure a trust "
                        "store (trust = [...]) to know the signer", feed=feed.name)
        self.held_until = 0.0  # monotonic time the lease is surely ours until
        self.polls = 0  # polls this process made (tests, debugging)

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = open_session(self.policy)
        return self._session

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    @property
    def holding(self) -> bool:
        return time.monotonic() < self.held_until

    async def poll_once(self) -> PollResult:
        """One poll of the feed (the caller holds the lease)."""
        f = self.feed
        self.polls += 1
        t0 = time.monotonic()
        etag, modified = await self.state.validators()
        try:
            got = await fetch(self.session, f.url, policy=self.policy, timeout_s=f.timeout_s,
                              max_bytes=f.max_bytes,
                              accept=ACCEPT_CAP if f.kind == "cap" else ACCEPT_INDEX,
                              etag=etag, last_modified=modified)
            if got.not_modified:
                await self.state.success(self.ctx.clock.now(), {}, None)
                return self._done(PollResult("not_modified"), t0)
            entries = await off_loop(len(got.body), self._entries, got.body)
        except FeedError as e:
            return self._done(await self.failed(e.message), t0)
        except IngestError as e:
            # The parser's remark may quote the document: logged, not kept for /healthz.
            log.warning("feed index not readable", feed=f.name, code=e.code, error=e.message)
            return self._done(await self.failed(f"the index is not readable XML ({e.code})"), t0)
        counts, complete = await self._handle(entries)
        validators = (got.etag, got.last_modified) if complete else ("", "")
        await self.state.success(self.ctx.clock.now(), counts, validators)
        return self._done(PollResult("ok", counts), t0)

    def _entries(self, body: bytes) -> list[Entry]:
        """The entries of what the feed's URL served (in a worker thread: up to 8 MB)."""
        if self.feed.kind == "cap":
            return [Entry("sha256:" + hashlib.sha256(body).hexdigest(), cap=body)]
        return parse_index(body, self.feed.url)

    async def failed(self, message: str) -> PollResult:
        """Record a failed poll and compute when to try again."""
        failures = await self.state.failure(self.ctx.clock.now(), message)
        delay = backoff_delay(failures, self.feed.interval_s, self.feed.max_backoff_s)
        log.warning("feed poll failed", feed=self.feed.name, error=message, failures=failures,
                    retry_in_s=round(delay, 1))
        return PollResult("error", error=message, retry_in=delay)

    def _done(self, res: PollResult, t0: float) -> PollResult:
        name = self.feed.name
        POLLS.labels(feed=name, outcome=res.outcome).inc()
        POLL_SECONDS.labels(feed=name).observe(time.monotonic() - t0)
        for count, n in res.counts.items():
            if n and count != "seen":
                ENTRIES.labels(feed=name, outcome=_OUTCOME.get(count, count)).inc(n)
        return res

    async def _handle(self, entries: Sequence[Entry]) -> tuple[dict[str, int], bool]:
        now = self.ctx.clock.now()
        flags = await self.state.unseen([e.key for e in entries], now)
        fresh = [e for e, new in zip(entries, flags, strict=True) if new]
        complete = len(fresh) <= MAX_NEW_PER_POLL
        fresh = fresh[:MAX_NEW_PER_POLL]
        counts = dict.fromkeys(("seen", "accepted", "duplicate", "skipped", "rejected",
                                "errors"), 0)
        counts["seen"] = len(fresh)
        bodies = await self._bodies(fresh)
        for entry, body in zip(fresh, bodies, strict=True):
            if isinstance(body, FeedRefused):  # definite: the link is never tried again
                counts["rejected"] += 1
                log.warning("feed entry refused", feed=self.feed.name, entry_id=entry.id[:200],
                            error=body.message)
                await self.state.mark_seen(entry.key, self.ctx.clock.now())
                continue
            if isinstance(body, FeedError):
                counts["errors"] += 1
                complete = False
                log.warning("feed entry not fetched", feed=self.feed.name, entry_id=entry.id,
                            error=body.message)
                continue
            outcome = await self._ingest(entry, body)
            counts[outcome] += 1
            await self.state.mark_seen(entry.key, self.ctx.clock.now())
        if counts["seen"]:
            log.info("feed read", feed=self.feed.name,
                     **{k: v for k, v in counts.items() if v})
        return counts, complete

    async def _bodies(self, entries: Sequence[Entry]) -> list[bytes | FeedError]:
        sem = asyncio.Semaphore(FETCH_CONCURRENCY)
        f = self.feed

        async def one(e: Entry) -> bytes | FeedError:
            if e.cap is not None:
                return e.cap
            assert e.link is not None  # an entry has a link or its CAP
            async with sem:
                try:
                    got = await fetch(self.session, e.link, policy=self.policy,
                                      timeout_s=f.timeout_s, max_bytes=f.max_bytes)
                except FeedError as err:
                    return err
            return got.body

        return list(await asyncio.gather(*(one(e) for e in entries)))

    async def _ingest(self, entry: Entry, body: bytes) -> str:
        """Parse and accept one CAP; return its outcome. Only infrastructure errors raise."""
        name = self.feed.name
        try:
            # Its signature and parse away from the loop: a worker thread, or a child
            # process for the largest (see warnbus.ingest.child).
            server = self.ctx.settings.server
            alert = await read_cap_off_loop(
                body, self.feed.signature, self.trust, max_bytes=self.feed.max_bytes,
                max_areas=server.max_areas, max_area_entries=server.max_area_entries)
        except IngestError as e:
            log.warning("feed entry rejected", feed=name, entry_id=entry.id, code=e.code,
                        error=e.message)
            return "rejected"
        if _expired(alert, self.ctx.clock.now()):
            # CAP: an expired message is no longer in effect; accept() would refuse it too.
            log.info("feed entry expired, skipped", feed=name, alert_id=alert.alert_id,
                     identifier=alert.identifier)
            return "skipped"
        try:
            res = await accept(self.ctx, alert, self.credential)
        except OutsideRegistryError as e:
            # A province feed carries every county's alerts: one for another county is not
            # ours. Not a fault of the feed, and never fetched again (it is marked seen).
            log.info("feed alert not for this registry, skipped", feed=name,
                     alert_id=alert.alert_id, identifier=alert.identifier, code=e.code,
                     error=e.message)
            return "skipped"
        except (IngestError, AuthError) as e:
            log.warning("feed alert rejected", feed=name, alert_id=alert.alert_id,
                        identifier=alert.identifier, code=e.code, error=e.message)
            return "rejected"
        if res.created:
            log.info("feed alert accepted", feed=name, alert_id=res.alert_id,
                     campaign_id=res.campaign_id, msg_type=alert.msg_type.value)
        return "accepted" if res.created else "duplicate"


def _expired(alert: Alert, now: float) -> bool:
    # A Cancel is never "expired": it ends a campaign, whatever its own expiry says.
    expires = alert.expires_at()
    return alert.msg_type is not MsgType.CANCEL and expires is not None and (
        expires.timestamp() <= now)
