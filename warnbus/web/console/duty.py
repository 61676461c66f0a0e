"""What the duty page shows and changes: who is on duty today and tomorrow, the shifts of the
coming days nobody holds, and overrides and swaps checked before they are written.

The page (`pages_duty.py`) renders these; the changes go through `warnbus.state.duty.DutyDesk`,
which every process reads at each escalation step.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta

from warnbus.domain.duty import (
    ChangeKind,
    DutyBook,
    DutyChange,
    DutySource,
    OnDuty,
    parse_day,
    shift_day,
)
from warnbus.domain.models import RegionLevel, Role
from warnbus.domain.roles import DUTY_ROLES, ROLE_ZH
from warnbus.registry import Registry
from warnbus.roster_checks import REQUIRED_DUTY

#: How far ahead the page looks for empty shifts (days, today included).
AHEAD_DAYS = 7
#: How far back and ahead a change may be made (days): no rewriting of history.
PAST_DAYS, FUTURE_DAYS = 1, 366
REASON_MAX = 200
SOURCE_ZH = {"change": "已调整", "roster": "", "fallback": "固定人员（无生效值班表）",
             "none": "无人值班"}
KIND_ZH = {ChangeKind.OVERRIDE: "替班", ChangeKind.SWAP: "换班"}


@dataclass(frozen=True)
class Desk:
    """One region's duty role, as the page lists it."""

    region: str
    role: Role

    @property
    def key(self) -> str:
        return f"{self.region}|{self.role.value}"


def desks(reg: Registry) -> list[Desk]:
    """Every duty role the page tracks: each county's and township's officer, and the leaders
    on watch where a roster or a fixed person has one (a registry without leaders is not
    missing any)."""
    known = {(e.region, e.role) for r in reg.data.rosters.values() for e in r.entries}
    known |= {(p.region, p.role) for p in reg.data.persons.values() if p.role in DUTY_ROLES}
    out: list[Desk] = []
    regions = reg.data.regions
    counties = [c for c in reg.county_codes]
    for county in counties:
        for code in (county, *reg.children_of(county)):
            level = regions[code].level
            for role, at_level in DUTY_ROLES.items():
                if at_level is level and (REQUIRED_DUTY.get(level) is role
                                          or (code, role) in known):
                    out.append(Desk(code, role))
    return out


def empty_shifts(reg: Registry, book: DutyBook, today: date,
                 days: int = AHEAD_DAYS) -> list[tuple[Desk, date, OnDuty]]:
    """The shifts from `today` on (for `days` days) that no roster fills: nobody holds them
    (escalation skips the role), or a region that keeps rosters has none in force that day
    (the fixed person stands in: `DutySource.FALLBACK`)."""
    rostered = {(e.region, e.role) for r in reg.data.rosters.values() for e in r.entries}
    out = []
    for desk in desks(reg):
        for n in range(days):
            day = today + timedelta(days=n)
            on = book.shift(desk.region, desk.role, day)
            nobody = on.person is None or on.person not in reg.data.persons
            stand_in = on.source is DutySource.FALLBACK and (desk.region, desk.role) in rostered
            if nobody or stand_in:
                out.append((desk, day, on))
    return out


def today_of(now: float) -> date:
    """The day of the shift running now (shifts start at 08:00 by default)."""
    return shift_day(now)


def desk_name(reg: Registry, desk: Desk) -> str:
    region = reg.data.regions.get(desk.region)
    return f"{region.name if region else desk.region} {ROLE_ZH[desk.role]}"


class FormError(ValueError):
    """What is wrong with a duty change form, in Chinese."""


def _duty_person(reg: Registry, desk: Desk, pid: str) -> str:
    person = reg.data.persons.get(pid)
    if person is None:
        raise FormError(f"人员 {pid} 不在台账中")
    if person.region != desk.region or DUTY_ROLES.get(person.role) is not DUTY_ROLES[desk.role]:
        raise FormError(f"{person.name}（{pid}）不是{desk_name(reg, desk).split(' ')[0]}的值班人员"
                        "或带班领导")
    return pid


def changes_from(reg: Registry, book: DutyBook, form: Mapping[str, str], *, by: str,
                 now: float) -> list[DutyChange]:
    """The override (替班) or swap (换班) a form asks for, checked: FormError says why not.

    `was` is who the person making it saw on the shift (the form's); the desk writes nothing
    if that is no longer so (`DutyConflict`)."""
    region, _, role_value = form.get("desk", "").partition("|")
    role = next((r for r in DUTY_ROLES if r.value == role_value), None)
    level = reg.data.regions[region].level if region in reg.data.regions else None
    if role is None or level not in (RegionLevel.TOWNSHIP, RegionLevel.COUNTY) or (
            DUTY_ROLES[role] is not level):
        raise FormError("请选择乡镇或县的值班职责")
    desk = Desk(region, role)
    day = _day(form.get("day", ""), now, "班次日期")
    reason = " ".join(form.get("reason", "").split())
    if not reason:
        raise FormError("请填写调整原因")
    if len(reason) > REASON_MAX:
        raise FormError(f"调整原因不能超过 {REASON_MAX} 个字")
    was = form.get("was", "") or None
    kind = form.get("kind", "")
    if kind == ChangeKind.OVERRIDE:
        person = _duty_person(reg, desk, form.get("person", "").strip())
        if person == book.shift(region, role, day).person:
            raise FormError("替班人员与原值班人员相同")
        return [DutyChange(region, role, day.isoformat(), person, ChangeKind.OVERRIDE, by,
                           reason, now, was=was)]
    if kind == ChangeKind.SWAP:
        other = _day(form.get("other_day", ""), now, "换班日期")
        if other == day:
            raise FormError("换班须为两个不同日期的班次")
        mine, theirs = book.shift(region, role, day).person, book.shift(region, role, other).person
        if not mine or not theirs or mine == theirs:
            raise FormError("换班的两个班次须由两个不同的人值守")
        return [DutyChange(region, role, day.isoformat(), theirs, ChangeKind.SWAP, by, reason,
                           now, was=was, other_day=other.isoformat()),
                DutyChange(region, role, other.isoformat(), mine, ChangeKind.SWAP, by, reason,
                           now, was=theirs, other_day=day.isoformat())]
    raise FormError("请选择替班或换班")


def _day(value: str, now: float, what: str) -> date:
    day = parse_day(value.strip())
    if day is None:
        raise FormError(f"{what}须为 YYYY-MM-DD 格式的日期")
    today = today_of(now)
    if not today - timedelta(days=PAST_DAYS) <= day <= today + timedelta(days=FUTURE_DAYS):
        raise FormError(f"{what}须在 {today - timedelta(days=PAST_DAYS)} 至 "
                        f"{today + timedelta(days=FUTURE_DAYS)} 之间")
    return day
