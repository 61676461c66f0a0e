"""Receipts of the mainland channels: what a push or a pull says, applied once to the engine.

Both providers push the same receipt more than once, late, and out of order. Each delivery
gets each status once per send (keyed by the send and the status: a delivery sent again, after
a lease ran out, has its own statuses in the record), each call one final outcome and
one key press; an event the engine could not store is forgotten again, so the provider's
retry (a non-2xx answer) or the next pull applies it. The sink returns once an event is
durable (in Redis, or in the engine's journal while Redis is away), and only then does it
count as done: a repeat never answers "done" for something not recorded.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import web

from channels.cn_common import HookConfig, HookGuard, Seen, SentBook, SentRef, items_of
from channels.cn_outcomes import OUTCOME_STATUS, CallOutcome
from channels.once import Once
from channels.sms_replies import is_confirmation
from warnbus.plugin import (
    AckVia,
    Confirmation,
    EventSink,
    ProviderStatus,
    Report,
    keypad_report,
    mask_phone,
    parse_report,
)

log = structlog.get_logger("channels.cn")

PULL_CONCURRENCY = 8
#: The key that confirms on a call; the keys after it are a report (`keypad_report`).
CONFIRM_KEY = "1"
#: The key that ends a report's keys (the template asks for it).
END_KEY = "#"


def report_keys(keys: str) -> str:
    """The keys of a call after its confirming 1: what the person reported ("" if none)."""
    at = keys.find(CONFIRM_KEY)
    return keys[at + 1:] if at >= 0 else ""


class Receipts:
    """One channel's memory of its sends and how their receipts reach the sink."""

    def __init__(self, channel: str, provider: str, config: HookConfig) -> None:
        self.channel, self.provider, self.config = channel, provider, config
        self.guard = HookGuard(channel, config)
        self.book = SentBook()
        self.seen = Seen()  # replies that confirm nothing, logged once
        self.acts: Once[Any] = Once()

    def sent(self, provider_id: str, ref: SentRef) -> None:
        self.book.add(provider_id, ref)

    async def on_push(self, request: web.Request, kind: type[Any],
                      apply: Callable[[Any], Awaitable[None]], ok: dict[str, Any],
                      bad: dict[str, Any]) -> web.StreamResponse:
        """Parse a push into `kind` items and apply each; answer as the provider expects."""
        data = await self.guard.json(request)
        if isinstance(data, web.StreamResponse):
            return data
        try:
            items = items_of(data, kind)
        except Exception:
            return web.json_response(bad, status=400)
        for item in items:
            await apply(item)  # an error here is a 500: the provider pushes it again
        return web.json_response(ok)

    async def once(self, key: tuple[str, ...], act: Callable[[], Awaitable[Any]]) -> bool:
        """Run `act` unless `key` was acted on. Done only once `act` returned (the sink
        returns once the event is durable); a repeat while it runs waits for it, and one
        after a failure runs it again (`channels.once`)."""
        ran, _ = await self.acts.run(key, act)
        return ran

    def acted(self, *key: str) -> bool:
        """Whether `key` was acted on (its act returned)."""
        return self.acts.done(key)

    async def status(self, sink: EventSink, provider_id: str, status: ProviderStatus,
                     detail: str) -> None:
        """A message's delivery status (each status once per send: the parts of a long
        text are one send, a delivery sent again is another)."""
        ref = self.book.get(provider_id)
        if ref is None:
            log.info("receipt for a send this process did not make", channel=self.channel,
                     status=status.value)
            return
        self.book.close(provider_id)
        await self.once((ref.delivery_id, ref.send or provider_id, status.value),
                        lambda: sink.delivery_status(
            ref.campaign_id, ref.delivery_id, ref.target_id, status,
            f"{detail} ({self.provider})"))

    async def outcome(self, sink: EventSink, call_id: str, outcome: CallOutcome,
                      detail: str) -> None:
        """A call's final outcome (once per call)."""
        ref = self.book.get(call_id)
        if ref is None:
            log.info("call report for a call this process did not place", channel=self.channel,
                     outcome=outcome.value)
            return
        self.book.close(call_id)
        await self.once((call_id, "final"), lambda: sink.delivery_status(
            ref.campaign_id, ref.delivery_id, ref.target_id, OUTCOME_STATUS[outcome],
            f"{outcome.value}: {detail} ({self.provider})"))

    async def key(self, sink: EventSink, call_id: str, number: str) -> None:
        """Key 1 on a call: the confirmation, through its delivery, or else by its number.

        A call placed by another process or before a restart is not in the book: its number
        confirms the person in their open campaigns, as an SMS reply does."""
        ref = self.book.get(call_id)
        if ref is None and not number:
            return  # a later report of this call names the number
        if ref is not None:
            self.book.close(call_id)

        async def act() -> None:
            if ref is not None:
                # The provider plays its own configured reply: nothing here to word.
                result = Confirmation.of(await sink.confirm(
                    ref.campaign_id, ref.target_id, AckVia.DTMF, ref.delivery_id))
                log.info("call confirmed by key", channel=self.channel,
                         delivery_id=ref.delivery_id, result=result.value)
            else:
                # Matched by number, on this channel's calls, once per call however often
                # (and by whichever process) the provider reports the key.
                campaigns = await sink.confirm_from(self.channel, number, AckVia.DTMF,
                                                    f"call|{call_id}")
                log.info("call confirmed by key, matched by number", channel=self.channel,
                         phone_masked=mask_phone(number), campaigns=len(campaigns))

        await self.once((call_id, "key"), act)

    async def keypad(self, sink: EventSink, call_id: str, number: str, keys: str) -> None:
        """The keys pressed on a call, as the provider reports them: the 1 confirms (`key`);
        the keys after it are a report (2 到岗, 3 零报告, 4 and the number 转移 N, #), kept
        once per call however often and by whichever process it is reported. Keys that
        say no report are logged and dropped: the confirmation stands."""
        if CONFIRM_KEY not in keys:
            return
        await self.key(sink, call_id, number)
        rest = report_keys(keys)
        if not rest:
            return
        ref = self.book.get(call_id)
        if ref is None and not number:
            return  # a later report of this call names the number
        report = keypad_report(rest)
        if report is None:
            if self.seen.first("keys", call_id):
                log.warning("keypad report not understood", channel=self.channel,
                            call_id=call_id, keys=rest[:32])
            return
        event = f"call|{self.channel}|{call_id}"

        async def act() -> None:
            if ref is not None:
                kept = await sink.report(ref.campaign_id, ref.target_id, AckVia.DTMF, report,
                                         event)
                log.info("call reported by keys", channel=self.channel,
                         delivery_id=ref.delivery_id, kind=report.kind.value, kept=kept)
            else:
                campaigns = await sink.report_from(self.channel, number, AckVia.DTMF, report,
                                                   event)
                log.info("call reported by keys, matched by number", channel=self.channel,
                         phone_masked=mask_phone(number), kind=report.kind.value,
                         campaigns=len(campaigns))

        await self.once((call_id, "report"), act)

    async def reply(self, sink: EventSink, number: str, content: str, key: str) -> None:
        """An SMS reply: "1" / 收到 / 确认 confirm the sender's open campaigns; a report
        ("到岗", "转移 35", "零报告", "险情 …") is kept in them."""
        report = None if is_confirmation(content) else parse_report(content)
        if report is not None:
            await self.once(("up", number, key), lambda: self._report(sink, number, key, report))
            return
        if not is_confirmation(content):
            if self.seen.first("up", number, key):
                log.info("sms reply is not a confirmation", channel=self.channel,
                         phone_masked=mask_phone(number), length=len(content))
            return

        async def act() -> None:
            # The number and `key` identify the reply: the engine confirms with it once, in
            # every process. A provider's key alone is not one reply (Tencent's is its time
            # to the second and the text: two officers answering 收到 in one second).
            campaigns = await sink.confirm_from(self.channel, number, AckVia.SMS,
                                                reply_id(number, key))
            log.info("sms reply confirmed", channel=self.channel,
                     phone_masked=mask_phone(number), campaigns=len(campaigns))

        await self.once(("up", number, key), act)

    async def _report(self, sink: EventSink, number: str, key: str, report: Report) -> None:
        campaigns = await sink.report_from(self.channel, number, AckVia.SMS, report,
                                           reply_id(number, key))
        log.info("sms reply reported", channel=self.channel, phone_masked=mask_phone(number),
                 kind=report.kind.value, campaigns=len(campaigns))

    async def pull_each(self, ask: Callable[[str, SentRef], Awaitable[None]]) -> None:
        """`ask` about every send still open, a few at a time."""
        limit = asyncio.Semaphore(PULL_CONCURRENCY)

        async def one(pid: str, ref: SentRef) -> None:
            async with limit:
                await ask(pid, ref)

        open_ids = self.book.open_ids(time.time(), self.config.pull_max_age_s)
        await asyncio.gather(*(one(p, r) for p, r in open_ids))


def reply_id(number: str, key: str) -> str:
    """The id of an SMS reply the engine remembers it by: its sender and the provider's key."""
    return f"up|{number}|{key}"
