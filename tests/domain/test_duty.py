"""DutyBook: who is on duty, in the documented order (changes, versions, fallback)."""

from __future__ import annotations

from datetime import date, datetime

import msgspec
import pytest

from warnbus.domain.duty import (
    BEIJING,
    Approval,
    ChangeKind,
    DutyBook,
    DutyChange,
    DutySource,
    Roster,
    RosterEntry,
    Shift,
    schedule_digest,
    shift_day,
    shift_start_at,
)
from warnbus.domain.models import Role

T = "430623101000"
DUTY = Role.TOWNSHIP_DUTY


def bj(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=BEIJING).timestamp()


YEAR = Roster("y2026", "2026年值班表", "2026-01-01", "2026-12-31",
              (RosterEntry(T, DUTY, rotation=("a", "b", "c")),), approved_by="局",
              approved_at="2025-12-20T09:00:00+08:00")
FLOOD = Roster("f2026", "2026年汛期值班表", "2026-06-01", "2026-08-31",
               (RosterEntry(T, DUTY, shifts=(Shift("2026-07-01", "x"),)),), shift_start="09:00")


def test_shift_day_boundaries() -> None:
    assert shift_day(bj("2026-07-02T07:59:59")) == date(2026, 7, 1)
    assert shift_day(bj("2026-07-02T08:00:00")) == date(2026, 7, 2)
    assert shift_day(bj("2026-07-02T08:30"), "09:00") == date(2026, 7, 1)
    assert shift_start_at(date(2026, 7, 2)) == bj("2026-07-02T08:00")


def test_rotation_and_fallback() -> None:
    book = DutyBook({"y2026": YEAR}, {(T, DUTY): "fixed"})
    assert [book.on_duty(T, DUTY, bj(f"2026-01-0{d}T12:00")) for d in (1, 2, 3, 4)] == [
        "a", "b", "c", "a"]
    before = book.holder(T, DUTY, bj("2025-12-31T12:00"))
    assert (before.person, before.source) == ("fixed", DutySource.FALLBACK)
    assert DutyBook({}, {}).holder(T, DUTY, 0).source is DutySource.NONE


def test_a_version_counts_once_approved_and_the_latest_first_day_wins() -> None:
    rosters = {"y2026": YEAR, "f2026": FLOOD}
    book = DutyBook(rosters, {})
    assert not book.approved("f2026")
    assert book.on_duty(T, DUTY, bj("2026-07-01T12:00")) == "b"  # the flood version waits
    approved = book.with_state({"f2026": Approval("审批员", 1.0)}, ())
    on = approved.holder(T, DUTY, bj("2026-07-01T12:00"))
    assert (on.person, on.source, on.roster) == ("x", DutySource.ROSTER, "f2026")
    # Its own shift start (09:00): at 08:30 the shift of the day before still holds.
    late = approved.holder(T, DUTY, bj("2026-07-02T08:30"))
    assert (late.person, late.day) == ("x", date(2026, 7, 1))
    # A day the flood version leaves empty: nobody, not the year's rotation.
    empty = approved.holder(T, DUTY, bj("2026-07-03T12:00"))
    assert (empty.person, empty.source) == (None, DutySource.NONE)


@pytest.mark.parametrize("kind", list(ChangeKind))
def test_a_change_wins_for_its_shift_only(kind: ChangeKind) -> None:
    change = DutyChange(T, DUTY, "2026-01-02", "z", kind, "admin", "病假", 5.0, was="b")
    book = DutyBook({"y2026": YEAR}, {}).with_state({}, [change])
    on = book.holder(T, DUTY, bj("2026-01-02T20:00"))
    assert (on.person, on.source, on.change) == ("z", DutySource.CHANGE, change)
    assert book.on_duty(T, DUTY, bj("2026-01-03T09:00")) == "c"
    assert book.shift(T, DUTY, date(2026, 1, 2)).person == "z"


def test_an_approval_holds_for_the_shifts_approved_only() -> None:
    """A console approval is of the schedule approved: the same shifts written out day by day
    keep it; a changed shift (a workbook imported since) waits for approval again."""
    draft = Roster("d", "2026年值班表", "2026-01-01", "2026-01-06",
                   (RosterEntry(T, DUTY, rotation=("a", "b", "c")),))
    written = msgspec.structs.replace(draft, entries=(RosterEntry(T, DUTY, shifts=tuple(
        Shift(f"2026-01-0{d}", "abc"[(d - 1) % 3]) for d in range(1, 7))),))
    swapped = msgspec.structs.replace(draft, entries=(RosterEntry(
        T, DUTY, rotation=("a", "b", "c"), shifts=(Shift("2026-01-02", "c"),)),))
    approval = Approval("审批员", 1.0, schedule_digest(draft))
    assert schedule_digest(written) == approval.digest != schedule_digest(swapped)
    for roster, approved in ((draft, True), (written, True), (swapped, False)):
        book = DutyBook({"d": roster}, {}).with_state({"d": approval}, ())
        assert book.approved("d") is approved
        assert book.on_duty(T, DUTY, bj("2026-01-02T12:00")) == ("b" if approved else None)
