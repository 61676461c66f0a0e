"""Duty rosters: who holds a duty role in a region in each shift, and who changed it.

A `Roster` is one version (a year, a flood season) from its `first_day` to its `last_day`.
Each entry names, for one region and duty role (`roles.DUTY_ROLES`), people taking turns one
shift each from the first day on (`rotation`, as offices rota) and dated shifts that win on
their day (`shifts`). A shift starts at the version's `shift_start` (default 08:00 Beijing
time) and lasts 24 hours; a shift's day is the day it starts. A version is in force once
approved: in its file (`approved_by`, `approved_at`), or by an approver in the console
(`Approval`, kept in Redis by `warnbus.state.duty`). A console approval is of the schedule the
approver saw (`schedule_digest`): a version whose shifts change afterwards (a new workbook
imported, the file edited) waits for approval again. An override or swap (`DutyChange`) is
made in the console for one shift, with who made it and why.

`DutyBook.holder` answers "who is on duty at t" in this order:
1. an override or swap of that shift;
2. the approved version that covers the shift's day and has an entry for the region and
   role, the one with the latest `first_day` (a flood-season version over the year's; ties
   by id): its dated shift, else its rotation; a version that covers the day but names
   nobody leaves the shift empty (`DutySource.NONE`), which the console and validation show;
3. where no approved version covers it: the registry's fixed person of that role in that
   region (the fallback, as before rosters existed), or nobody.

Pure: no I/O, no clock (every question carries its time).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from enum import StrEnum

import msgspec

from warnbus.domain.roles import Role

BEIJING = timezone(timedelta(hours=8))
DEFAULT_SHIFT_START = "08:00"
#: The longest version: two years of shifts (a version per year or season is the practice).
MAX_DAYS = 731

_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
_HHMM = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")


# Shift and RosterEntry are strict (unknown keys are errors) also where nested in a roster
# read from a registry file.
class Shift(msgspec.Struct, frozen=True, gc=False, forbid_unknown_fields=True):
    """One dated shift: `person` holds the role from the version's shift start on `day`."""

    day: str  # YYYY-MM-DD
    person: str


class RosterEntry(msgspec.Struct, frozen=True, gc=False, forbid_unknown_fields=True,
                  omit_defaults=True):
    """Who holds one duty role in one region, in a version."""

    region: str  # 12-digit code of a township (township roles) or county (county roles)
    role: Role  # one of roles.DUTY_ROLES
    rotation: tuple[str, ...] = ()  # person ids, one shift each in turn from first_day
    shifts: tuple[Shift, ...] = ()  # dated shifts; they win over the rotation on their day


class Roster(msgspec.Struct, frozen=True, gc=False):
    """One roster version (a year or a season), in force once approved."""

    id: str
    name: str  # e.g. 2026年汛期值班表
    first_day: str  # YYYY-MM-DD, the first shift's day
    last_day: str  # YYYY-MM-DD, the last shift's day (inclusive)
    entries: tuple[RosterEntry, ...] = ()
    shift_start: str = DEFAULT_SHIFT_START  # HH:MM, Beijing time
    approved_by: str | None = None  # approved before it was loaded (e.g. a signed paper rota)
    approved_at: str | None = None  # ISO 8601 time of that approval


class Approval(msgspec.Struct, frozen=True, gc=False):
    """A console approver's approval of a roster version, as it was then (`digest`)."""

    by: str
    at: float
    #: `schedule_digest` of the version approved; "" in approvals made before digests
    #: existed (they stand for whatever the version holds).
    digest: str = ""


class ChangeKind(StrEnum):
    OVERRIDE = "override"  # 替班: someone else holds the shift
    SWAP = "swap"  # 换班: two people trade shifts (two changes, each naming the other day)


class DutyChange(msgspec.Struct, frozen=True, gc=False):
    """An override or swap of one shift, made in the console; the latest one per shift holds."""

    region: str
    role: Role
    day: str  # YYYY-MM-DD, the shift's day
    person: str  # who holds the shift now
    kind: ChangeKind
    by: str  # the console user who made it
    reason: str
    at: float  # when it was made
    was: str | None = None  # who held the shift before the change
    other_day: str | None = None  # a swap: the day of the other shift

    @property
    def key(self) -> tuple[str, Role, str]:
        return (self.region, self.role, self.day)


class DutySource(StrEnum):
    """Where the holder of a shift comes from."""

    CHANGE = "change"  # an override or swap
    ROSTER = "roster"  # an approved version
    FALLBACK = "fallback"  # no version covers it: the registry's fixed person
    NONE = "none"  # nobody: a version names nobody, or there is no fixed person either


@dataclass(frozen=True)
class OnDuty:
    """Who holds one shift, and why."""

    person: str | None
    day: date
    source: DutySource
    roster: str | None = None  # the version that governs the shift, if any
    change: DutyChange | None = None


def parse_day(value: str) -> date | None:
    """A YYYY-MM-DD day, or None when it is not one."""
    if not _DAY.fullmatch(value):
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def parse_hhmm(value: str) -> int | None:
    """Minutes after midnight of an HH:MM time, or None when it is not one."""
    m = _HHMM.fullmatch(value)
    return int(m.group(1)) * 60 + int(m.group(2)) if m else None


def shift_day(at: float, start: str = DEFAULT_SHIFT_START) -> date:
    """The day of the shift (starting at `start`, Beijing time) that time `at` falls in."""
    minutes = parse_hhmm(start)
    local = datetime.fromtimestamp(at, BEIJING)
    day = local.date()
    if minutes is not None and local.hour * 60 + local.minute < minutes:
        day -= timedelta(days=1)
    return day


def shift_start_at(day: date, start: str = DEFAULT_SHIFT_START) -> float:
    """When the shift of `day` begins (epoch seconds)."""
    minutes = parse_hhmm(start) or 0
    local = datetime(day.year, day.month, day.day, minutes // 60, minutes % 60, tzinfo=BEIJING)
    return local.astimezone(UTC).timestamp()


@dataclass(frozen=True)
class _Version:
    """An approved version's entry for one region and role, read for look-ups."""

    roster: Roster
    first: date
    last: date
    rotation: tuple[str, ...]
    dated: Mapping[date, str]

    def person(self, day: date) -> str | None:
        hit = self.dated.get(day)
        if hit is not None:
            return hit
        if self.rotation:
            return self.rotation[(day - self.first).days % len(self.rotation)]
        return None


class DutyBook:
    """Who is on duty: the registry's roster versions, the approvals and changes made in the
    console, and the fixed persons as the fallback. Immutable; `with_state` makes the next."""

    def __init__(
        self,
        rosters: Mapping[str, Roster],
        fallback: Mapping[tuple[str, Role], str],
        approvals: Mapping[str, Approval] | None = None,
        changes: Iterable[DutyChange] = (),
        persons: Collection[str] | None = None,
    ) -> None:
        self.rosters = rosters
        self.fallback = fallback
        self.approvals: Mapping[str, Approval] = dict(approvals or {})
        #: The registry's person ids: a change naming anyone else (removed from the registry
        #: since it was made) is ignored, and the roster holds that shift again, so no step
        #: goes to a person who cannot be called.
        self.persons = persons
        self.changes: Mapping[tuple[str, Role, str], DutyChange] = {
            c.key: c for c in changes if persons is None or c.person in persons}
        index: dict[tuple[str, Role], list[_Version]] = {}
        for rid in sorted(rosters):
            r = rosters[rid]
            first, last = parse_day(r.first_day), parse_day(r.last_day)
            if first is None or last is None or not self.approved(rid):
                continue
            for e in r.entries:
                dated = {d: s.person for s in e.shifts if (d := parse_day(s.day)) is not None}
                index.setdefault((e.region, e.role), []).append(
                    _Version(r, first, last, e.rotation, dated))
        # Latest first day first; `sorted` is stable, so ids stay in order among equals.
        self._versions = {k: sorted(v, key=lambda x: x.first, reverse=True)
                          for k, v in index.items()}

    def with_state(self, approvals: Mapping[str, Approval],
                   changes: Iterable[DutyChange]) -> DutyBook:
        """The same rosters and fallback with the console's approvals and changes."""
        return DutyBook(self.rosters, self.fallback, approvals, changes, self.persons)

    def approved(self, roster_id: str) -> bool:
        """Whether a version is in force: approved in its file, or in the console as it is
        now (an approval of other shifts than the version now holds does not count)."""
        r = self.rosters.get(roster_id)
        if r is None:
            return False
        if r.approved_by:
            return True
        approval = self.approvals.get(roster_id)
        return approval is not None and approval.digest in ("", schedule_digest(r))

    def holder(self, region: str, role: Role, at: float) -> OnDuty:
        """Who holds `role` in `region` at time `at` (see the module for the order)."""
        for v in self._versions.get((region, role), ()):
            day = shift_day(at, v.roster.shift_start)
            if v.first <= day <= v.last:
                return self._of(region, role, day, v)
        return self._of(region, role, shift_day(at), None)

    def shift(self, region: str, role: Role, day: date) -> OnDuty:
        """Who holds `role` in `region` in the shift of `day`."""
        v = next((v for v in self._versions.get((region, role), ()) if v.first <= day <= v.last),
                 None)
        return self._of(region, role, day, v)

    def on_duty(self, region: str, role: Role, at: float) -> str | None:
        return self.holder(region, role, at).person

    def _of(self, region: str, role: Role, day: date, v: _Version | None) -> OnDuty:
        change = self.changes.get((region, role, day.isoformat()))
        rid = v.roster.id if v else None
        if change is not None:
            return OnDuty(change.person, day, DutySource.CHANGE, rid, change)
        if v is not None:
            person = v.person(day)
            return OnDuty(person, day, DutySource.ROSTER if person else DutySource.NONE, rid)
        person = self.fallback.get((region, role))
        return OnDuty(person, day, DutySource.FALLBACK if person else DutySource.NONE)


def days(first: date, last: date) -> Iterable[date]:
    """Every day from `first` to `last`, both included."""
    for n in range((last - first).days + 1):
        yield first + timedelta(days=n)


def schedule(r: Roster) -> dict[tuple[str, Role], tuple[str | None, ...]]:
    """Who a version puts on each day of its span, per region and role (dated shifts over
    the rotation): what a version decides, however it is written down."""
    first, last = parse_day(r.first_day), parse_day(r.last_day)
    out: dict[tuple[str, Role], tuple[str | None, ...]] = {}
    if first is None or last is None or not 0 <= (last - first).days < MAX_DAYS:
        return out
    for e in r.entries:
        dated = {d: s.person for s in e.shifts if (d := parse_day(s.day)) is not None}
        v = _Version(r, first, last, e.rotation, dated)
        out[(e.region, e.role)] = tuple(v.person(d) for d in days(first, last))
    return out


_DIGESTS: dict[int, tuple[Roster, str]] = {}


def schedule_digest(r: Roster) -> str:
    """A digest of what a version decides: its span, shift start and who holds each shift.

    A rotation and the same days written out as dated shifts have one digest (an export
    and re-import of an approved version keeps its approval); any other change of a shift
    makes another one."""
    hit = _DIGESTS.get(id(r))
    if hit is not None and hit[0] is r:
        return hit[1]
    h = hashlib.sha256()
    h.update(f"{r.first_day}|{r.last_day}|{r.shift_start}".encode())
    for (region, role), people in sorted(schedule(r).items()):
        h.update(f"\n{region}|{role.value}|".encode() + ",".join(p or "" for p in people).encode())
    digest = h.hexdigest()[:32]
    if len(_DIGESTS) > 4096:
        _DIGESTS.clear()
    _DIGESTS[id(r)] = (r, digest)
    return digest
