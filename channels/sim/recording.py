"""An EventSink that records what a channel hands the engine: for channel tests and tools.

`confirm_from` answers as the engine would for a number with one open campaign (`campaigns`),
so a reply or a key matched by number can be told from one that confirmed nothing.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from warnbus.plugin import AckVia, Confirmation, ProviderStatus, Report


@dataclass
class RecordingSink:
    statuses: list[tuple[str, str, str, ProviderStatus, str]] = field(default_factory=list)
    confirms: list[tuple[str, str, AckVia, str | None]] = field(default_factory=list)
    replies: list[tuple[str, str, AckVia]] = field(default_factory=list)
    reply_ids: list[str] = field(default_factory=list)  # the provider's id of each reply
    #: Reports after the ack: (campaign or "" for a reply, person or address, via, report).
    reports: list[tuple[str, str, AckVia, Report]] = field(default_factory=list)
    event_ids: list[str] = field(default_factory=list)  # the event id of each named report
    campaigns: list[str] = field(default_factory=lambda: ["cmp-1"])
    answer: Confirmation = Confirmation.RECORDED  # what `confirm` answers
    fail: int = 0  # the next `fail` calls raise (an engine that could not store the event)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def _maybe_fail(self) -> None:
        if self.fail > 0:
            self.fail -= 1
            raise ConnectionError("simulated: the engine could not store the event")

    async def delivery_status(self, campaign_id: str, delivery_id: str, target_id: str,
                              status: ProviderStatus, detail: str = "") -> None:
        self._maybe_fail()
        self.statuses.append((campaign_id, delivery_id, target_id, status, detail))
        self.changed.set()

    async def confirm(self, campaign_id: str, person_id: str, via: AckVia,
                      delivery_id: str | None = None) -> Confirmation:
        self._maybe_fail()
        self.confirms.append((campaign_id, person_id, via, delivery_id))
        self.changed.set()
        return self.answer

    async def confirm_from(self, channel: str, address: str, via: AckVia,
                           reply_id: str = "") -> list[str]:
        self._maybe_fail()
        self.replies.append((channel, address, via))
        self.reply_ids.append(reply_id)
        self.changed.set()
        return list(self.campaigns)

    async def report_from(self, channel: str, address: str, via: AckVia, report: Report,
                          reply_id: str = "") -> list[str]:
        self._maybe_fail()
        self.reports.append(("", address, via, report))
        self.reply_ids.append(reply_id)
        self.changed.set()
        return list(self.campaigns)

    async def report(self, campaign_id: str, person_id: str, via: AckVia, report: Report,
                     event_id: str = "") -> bool:
        self._maybe_fail()
        self.reports.append((campaign_id, person_id, via, report))
        self.event_ids.append(event_id)
        self.changed.set()
        return True

    @property
    def touched(self) -> bool:
        return bool(self.statuses or self.confirms or self.replies or self.reports)

    async def wait_for(self, check: object, within_s: float = 5.0) -> None:
        """Wait until `check()` is true (each recorded event wakes the wait)."""
        assert callable(check)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_s
        while not check():
            self.changed.clear()
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError("the sink did not see what was expected")
            try:
                await asyncio.wait_for(self.changed.wait(), left)
            except TimeoutError:
                continue
