"""A campaign's history as the board shows it: every call per person and every step per grid.

The audit stream holds it all (attempts, confirmations, escalations, door-to-door orders and
results, a stop of the calling). The board asks often (the pending list refreshes as people
confirm), so each process keeps a digest per campaign and reads only the entries written
since its last read (`Store.audit_after`): a refresh costs the new entries, not the stream.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass, field

from warnbus.domain.states import AuditEvent
from warnbus.runtime.context import Context

#: Campaigns whose digest a process keeps (the boards open at once; more are read again).
KEPT = 8
#: Calls kept per person: the first ones and the latest (a person is called a few times per
#: channel and round; more only in a campaign that ran for days).
CALLS_KEPT = 400
_READ = 5000  # audit entries per read


@dataclass(frozen=True, slots=True)
class Call:
    """One provider call (or message) to a person: an attempt of the audit stream."""

    at: float
    channel: str
    step: int
    kind: str
    n: int  # the attempt of its delivery (a retry after a transient failure: 2, 3 ...)
    outcome: str  # accepted | delivered | failed-temp | failed-perm
    state: str  # where the delivery went next (sent, retry, failed ...)


@dataclass(frozen=True, slots=True)
class Event:
    """A step of a grid or a person that is not a call: ack, escalate, door-order, door,
    stop, grids (closed by an Update or Cancel)."""

    at: float
    ev: str
    fields: tuple[tuple[str, str], ...]

    def get(self, name: str) -> str:
        return next((v for k, v in self.fields if k == name), "")


@dataclass
class Digest:
    """What a campaign's audit stream says, up to entry `last`."""

    last: str = ""
    calls: dict[str, list[Call]] = field(default_factory=dict)  # by person
    dropped: dict[str, int] = field(default_factory=dict)  # calls not kept, by person
    of_grid: dict[str, list[Event]] = field(default_factory=dict)  # escalations, door steps
    of_person: dict[str, list[Event]] = field(default_factory=dict)  # confirmations
    campaign: list[Event] = field(default_factory=list)  # stops, grids closed in bulk
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def fold(self, row: dict[str, str]) -> None:
        ev = row.get("ev", "")
        at = float(row.get("at") or 0)
        if ev == AuditEvent.ATTEMPT:
            pid = row.get("tg", "")
            calls = self.calls.setdefault(pid, [])
            call = Call(at, row.get("ch", ""), _int(row.get("st")), row.get("k", ""),
                        _int(row.get("n")), row.get("o", ""), row.get("s", ""))
            if len(calls) < CALLS_KEPT:
                calls.append(call)
            else:  # keep the first half and the latest: the earliest calls are never lost
                del calls[CALLS_KEPT // 2]
                calls.append(call)
                self.dropped[pid] = self.dropped.get(pid, 0) + 1
            return
        keep = tuple((k, v) for k, v in row.items() if k not in ("ev", "at", "id"))
        event = Event(at, ev, keep)
        if ev in (AuditEvent.ESCALATE, AuditEvent.DOOR_ORDER, AuditEvent.DOOR):
            self.of_grid.setdefault(row.get("g", ""), []).append(event)
        elif ev in (AuditEvent.ACK, AuditEvent.LATE):
            self.of_person.setdefault(row.get("tg", ""), []).append(event)
        elif ev in (AuditEvent.STOP, AuditEvent.GRIDS):
            self.campaign.append(event)

    def escalated_at(self, grid_id: str, person_id: str) -> float | None:
        """When a grid was moved to `person_id` (the start of their deadline)."""
        return next((e.at for e in reversed(self.of_grid.get(grid_id, ()))
                     if e.ev == AuditEvent.ESCALATE and e.get("to") == person_id), None)

    def called_for(self, grid_id: str) -> list[str]:
        """Who the chain moved the grid to, in order, and who was sent door to door."""
        out: list[str] = []
        for e in self.of_grid.get(grid_id, ()):
            who = e.get("to") if e.ev == AuditEvent.ESCALATE else (
                e.get("tg") if e.ev == AuditEvent.DOOR_ORDER else "")
            if who and who not in out:
                out.append(who)
        return out


def _int(v: str | None) -> int:
    try:
        return int(v or 0)
    except ValueError:
        return 0


class Histories:
    """The digests of the campaigns this process's boards look at (at most KEPT)."""

    def __init__(self, kept: int = KEPT) -> None:
        self.kept = kept
        self._digests: OrderedDict[str, Digest] = OrderedDict()

    async def of(self, ctx: Context, campaign_id: str) -> Digest:
        """The campaign's digest, brought up to date (only new entries are read)."""
        d = self._digests.get(campaign_id)
        if d is None:
            d = self._digests[campaign_id] = Digest()
            while len(self._digests) > self.kept:
                self._digests.popitem(last=False)
        self._digests.move_to_end(campaign_id)
        async with d.lock:
            while True:
                rows = await ctx.store.audit_after(campaign_id, d.last, _READ)
                for row in rows:
                    d.fold(row)
                if rows:
                    d.last = rows[-1]["id"]
                if len(rows) < _READ:
                    return d
