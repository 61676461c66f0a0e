"""What people and providers tell the engine is durable before it is answered 2xx.

A confirmation, a reply, a status report (`Op`) goes to Redis; when Redis does not answer
within `[engine] durable_wait_s` (down, or stalled), it is written to the process's local
journal (`runtime.journal`, fsynced) instead, and replayed into Redis when Redis is back.
Either way it is durable when the caller answers. Each op carries the time it arrived, so a
replay judges it as of then (a reply counts where a message had reached the person before
it). Applying an op twice changes nothing: every write behind it is a compare-and-set.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import msgspec
import structlog
from redis.exceptions import (
    ClusterDownError,
    ReadOnlyError,
    RedisError,
    ResponseError,
    TryAgainError,
)

from warnbus.domain.feedback import Report
from warnbus.domain.models import AckVia
from warnbus.errors import JournalError
from warnbus.runtime import metrics
from warnbus.runtime.context import Context
from warnbus.runtime.journal import Journal, records
from warnbus.runtime.tasks import within

log = structlog.get_logger("warnbus.flow.durable")

T = TypeVar("T")


class AckOp(msgspec.Struct, frozen=True, tag="ack"):
    """A confirmation that names its campaign (a key press, a card's button, an ack link,
    the console)."""

    campaign_id: str
    person_id: str
    via: AckVia
    at: float
    delivery_id: str | None = None
    by: str | None = None
    reason: str | None = None


class ReplyOp(msgspec.Struct, frozen=True, tag="reply"):
    """A reply that names no campaign (an SMS "1", a key press matched by number)."""

    channel: str
    address: str
    via: AckVia
    at: float
    reply_id: str = ""


class StatusOp(msgspec.Struct, frozen=True, tag="status"):
    """A provider's report on a delivery (`plugin.ProviderStatus` value)."""

    campaign_id: str
    delivery_id: str
    target_id: str
    status: str
    at: float
    detail: str = ""


class ReportOp(msgspec.Struct, frozen=True, tag="report"):
    """A report after the ack (到岗, 转移 N 人, 险情, 零报告): one that names its campaign and
    person (the ack page, a key, a card, the console: `by` who entered it), or a reply that
    names none (`channel`, `address`, `reply_id`: an SMS keyword). `event`: what identifies
    the request that carried a named report (a call's keys, a card's click, a form), kept
    once however often it comes."""

    report: Report
    via: AckVia
    at: float
    campaign_id: str = ""
    person_id: str = ""
    by: str = ""
    channel: str = ""
    address: str = ""
    reply_id: str = ""
    event: str = ""


Op = AckOp | ReplyOp | StatusOp | ReportOp
OpT = TypeVar("OpT", AckOp, ReplyOp, StatusOp, ReportOp)
_enc = msgspec.msgpack.Encoder()
_dec = msgspec.msgpack.Decoder(Op)
#: What says Redis is not there: refused, reset, timed out (a stall).
UNAVAILABLE = (RedisError, ConnectionError, TimeoutError)
#: Errors Redis answers with while it is not ready (loading, read-only or down in a failover).
_NOT_READY = (ReadOnlyError, TryAgainError, ClusterDownError)


def outage(e: BaseException) -> bool:
    """Whether `e` says Redis is away or not ready, so that the same work, tried again
    once it answers, may succeed; an error Redis answers a command or script with (a
    ResponseError) would fail again the same way."""
    if isinstance(e, _NOT_READY):
        return True
    return isinstance(e, UNAVAILABLE) and not isinstance(e, ResponseError)


async def durably(ctx: Context, op: OpT, apply: Callable[[OpT], Awaitable[T]]) -> T | None:
    """Apply `op` to Redis, or journal it: the result of `apply`, or None when journaled.

    A write still under way when the wait ends goes on by itself (it may land once Redis
    answers; the replay then finds it done). JournalError when the journal cannot take it
    either: nothing is durable, the caller answers non-2xx."""
    try:
        return await within(apply(op), ctx.settings.engine.durable_wait_s)
    except UNAVAILABLE as e:
        reason = type(e).__name__ if str(e) == "" else f"{type(e).__name__}: {e}"
    if ctx.journal is None:
        raise JournalError("Redis is unavailable and this process keeps no journal")
    try:
        await ctx.journal.append(_enc.encode(op))
    except JournalError as e:
        metrics.JOURNAL.labels("refused").inc()
        log.error("confirmation lost: neither Redis nor the journal took it", op=_kind(op),
                  error=e.message)
        raise
    metrics.JOURNAL.labels("written").inc()
    log.warning("Redis unavailable: confirmation journaled, replayed when it returns",
                op=_kind(op), reason=reason)
    return None


def _kind(op: Op) -> str:
    return type(op).__struct_config__.tag  # type: ignore[return-value]


async def replay(journal: Journal, apply: Callable[[Op], Awaitable[object]], *,
                 orphans: bool = True) -> int:
    """Apply what the journals hold (this process's and, with `orphans`, dead processes' in
    the same directory) to Redis, oldest first; return how many ops. A file is emptied (a
    dead process's deleted) once all of it is applied. Redis failing stops the replay, which
    the caller tries again later (from the start of each file: applying twice is harmless)."""
    done = 0
    own = journal.own()
    if own is not None:
        path, upto = own
        done += await _apply_all(path, upto, apply)
        if journal.settle(upto):
            log.info("journal replayed into Redis", path=str(path), ops=done)
    for orphan in journal.orphans() if orphans else ():
        try:
            n = await _apply_all(orphan.path, None, apply)
        except BaseException:
            orphan.release()
            raise
        orphan.remove()
        done += n
        log.info("journal of a stopped process replayed into Redis", path=str(orphan.path),
                 ops=n)
    return done


async def _apply_all(path: Path, upto: int | None,
                     apply: Callable[[Op], Awaitable[object]]) -> int:
    # Read in a thread: a journal may hold a long outage's confirmations (megabytes).
    payloads = await asyncio.to_thread(lambda: list(records(path, upto)))
    n = 0
    for payload in payloads:
        try:
            op = _dec.decode(payload)
        except msgspec.DecodeError:
            log.error("journal record unreadable: skipped", path=str(path))
            continue
        await apply(op)
        metrics.JOURNAL.labels("replayed").inc()
        n += 1
    return n
