"""Feedback after the ack: the owner of a campaign's `feedback`, `fbhist` and `fbseen`
keys.

Owned by the store (`Store.feedback`). Each report is one script (`feedback.lua`): the
append-only history entry, the person's latest counts and the audit entry together, only for
a target who has confirmed. A report that is due and missing is marked overdue once by
`feedback_overdue.lua`, which also audits it.
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec

from warnbus.domain.feedback import Feedback, FeedbackKind, FeedbackState, Report
from warnbus.state import keys, scripts
from warnbus.state.client import RedisClient
from warnbus.state.replies import text_of

RECORD = scripts.load(__file__, "feedback")
OVERDUE = scripts.load(__file__, "feedback_overdue")

#: `FeedbackBook.record` codes, as feedback.lua returns them (DUPLICATE: kept before under
#: the same event id, nothing written).
RECORDED, DUPLICATE, NO_CAMPAIGN, NOT_TARGET, NOT_CONFIRMED, TOO_MANY = 1, 2, 0, -1, -2, -3
#: The longest event id kept as it is; a longer one is kept as its SHA-256.
EVENT_MAX = 64
#: The most reports one person keeps in one campaign: what a leaked link or a looping phone
#: can append is bounded (a real officer reports a handful of times).
MOST_REPORTS = 100

_state = msgspec.json.Decoder(FeedbackState)


class FeedbackBook:
    def __init__(self, redis: RedisClient) -> None:
        self._redis: Any = redis  # replies decoded here
        self._record = RECORD.bind(redis)
        self._overdue = OVERDUE.bind(redis)

    async def record(self, campaign_id: str, person_id: str, report: Report, *, via: str,
                     by: str, now: float, event: str = "") -> tuple[int, str]:
        """Keep one report: (code, the campaign's state); see the module's codes.

        `event`: what identifies the request that carried it (a provider's message or call
        id, a form's token): the same event of the person again is DUPLICATE, however often
        and by whichever process it comes."""
        ck = keys.campaign(campaign_id)
        count = "" if report.count is None else str(report.count)
        if len(event) > EVENT_MAX:  # a field name, whatever a provider or a form sends
            event = hashlib.sha256(event.encode()).hexdigest()
        code, state = await self._record(
            ck, person=person_id, kind=report.kind.value, count=count, text=report.text,
            photo=report.photo, via=via, by=by, now=now, most=MOST_REPORTS, event=event)
        return int(code), text_of(state)

    async def overdue(self, campaign_id: str, person_id: str, to: str, now: float) -> int:
        """Mark a missing report overdue, told to `to`: 1 now, 2 before, 0 it had come."""
        ck = keys.campaign(campaign_id)
        return int(await self._overdue(ck, person=person_id, to=to, now=now))

    async def latest(self, campaign_id: str) -> dict[str, FeedbackState]:
        """Each person's latest counts (only people who reported, or are overdue)."""
        raw = await self._redis.hgetall(keys.campaign(campaign_id).feedback)
        return {text_of(k): _state.decode(v) for k, v in raw.items()}

    async def latest_of(self, campaign_id: str, person_id: str) -> FeedbackState:
        raw = await self._redis.hget(keys.campaign(campaign_id).feedback, person_id)
        return _state.decode(raw) if raw else FeedbackState()

    async def history(self, campaign_id: str) -> list[Feedback]:
        """Every report of the campaign, oldest first."""
        out: list[Feedback] = []
        lo = "-"
        while True:
            batch = await self._redis.xrange(keys.campaign(campaign_id).fbhist, min=lo,
                                             count=2000)
            if not batch:
                return out
            for _entry, fields in batch:
                f = {text_of(k): text_of(v) for k, v in fields.items()}
                report = Report(FeedbackKind(f["k"]), int(f["n"]) if f.get("n") else None,
                                f.get("x", ""), f.get("p", ""))
                out.append(Feedback(f["tg"], float(f["at"]), report, f["via"], f.get("by", "")))
            lo = "(" + text_of(batch[-1][0])
