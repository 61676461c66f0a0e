"""The checks of a registry's duty rosters, one line per problem, in Chinese (offices read them
at import). Run by `warnbus.registry.validate_registry`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime

from warnbus.domain.duty import MAX_DAYS, Roster, RosterEntry, days, parse_day, parse_hhmm
from warnbus.domain.models import RegionLevel, RegistryData, Role
from warnbus.domain.roles import DUTY_ROLES, REGION_LEVEL_ZH, ROLE_ZH
from warnbus.registry_checks import ID_BAD

#: The role each level must have someone for, by a roster or a fixed person.
REQUIRED_DUTY: dict[RegionLevel, Role] = {RegionLevel.TOWNSHIP: Role.TOWNSHIP_DUTY,
                                          RegionLevel.COUNTY: Role.COUNTY_DUTY}


def region_label(data: RegistryData, code: str) -> str:
    """How a problem names a region: its name and code."""
    region = data.regions.get(code)
    return f"{region.name}({code})" if region else code


def roster_problems(data: RegistryData) -> Iterable[str]:
    """Every problem of the roster versions of `data`."""
    for key, r in data.rosters.items():
        where = f"值班表 {key}（{r.name}）"
        if key != r.id:
            yield f"{where}：登记的编号与其自身编号 {r.id} 不同"
        if not key or ID_BAD.search(key):
            yield f"{where}：编号不能为空，也不能含“|”“,”“:”或空白"
        if parse_hhmm(r.shift_start) is None:
            yield f"{where}：交班时间 {r.shift_start!r} 不是 HH:MM 格式（如 08:00）"
        if bool(r.approved_by) != bool(r.approved_at):
            yield f"{where}：审批人和审批时间须同时填写"
        elif r.approved_at and not _iso_time(r.approved_at):
            yield (f"{where}：审批时间 {r.approved_at!r} 不是 ISO 8601 时间"
                   "（如 2026-03-20T10:00:00+08:00）")
        first, last = parse_day(r.first_day), parse_day(r.last_day)
        for value, name, parsed in ((r.first_day, "起始日期", first),
                                    (r.last_day, "结束日期", last)):
            if parsed is None:
                yield f"{where}：{name} {value!r} 不是 YYYY-MM-DD 格式的日期"
        span: tuple[date, date] | None = None
        if first is not None and last is not None:
            if last < first:
                yield f"{where}：结束日期 {r.last_day} 早于起始日期 {r.first_day}"
            elif (last - first).days + 1 > MAX_DAYS:
                yield (f"{where}：跨 {(last - first).days + 1} 天，超过 {MAX_DAYS} 天"
                       "（请按年度或汛期分版本）")
            else:
                span = (first, last)
        seen: set[tuple[str, Role]] = set()
        for e in r.entries:
            label = f"{where}：{region_label(data, e.region)} {ROLE_ZH.get(e.role, e.role)}"
            if (e.region, e.role) in seen:
                yield f"{label} 重复出现（每个版本每个地区每种职责一条）"
            seen.add((e.region, e.role))
            yield from _entry_problems(data, r, e, label, span)


def _entry_problems(data: RegistryData, r: Roster, e: RosterEntry, label: str,
                    span: tuple[date, date] | None) -> Iterable[str]:
    level = DUTY_ROLES.get(e.role)
    if level is None:
        names = "、".join(ROLE_ZH[role] for role in DUTY_ROLES)
        yield f"{label}：不是值班职责（可用：{names}）"
        return
    region = data.regions.get(e.region)
    if region is None:
        yield f"{label}：地区 {e.region} 不在台账中"
    elif region.level is not level:
        yield (f"{label}：{ROLE_ZH[e.role]}在{REGION_LEVEL_ZH[level]}值班，"
               f"{e.region} 是{REGION_LEVEL_ZH[region.level]}")
    people = [*e.rotation, *(s.person for s in e.shifts)]
    for pid in dict.fromkeys(people):
        yield from _person_problem(data, e, pid, label)
    dated: dict[date, str] = {}
    for s in e.shifts:
        day = parse_day(s.day)
        if day is None:
            yield f"{label}：班次日期 {s.day!r} 不是 YYYY-MM-DD 格式的日期"
        elif day in dated:
            yield f"{label}：{s.day} 排了两个班次（{dated[day]}、{s.person}）"
        elif span is not None and not span[0] <= day <= span[1]:
            yield f"{label}：班次日期 {s.day} 不在 {r.first_day} 至 {r.last_day} 之间"
        else:
            dated[day] = s.person
    if span is not None and not e.rotation:
        empty = [d for d in days(*span) if d not in dated]
        for a, b in _runs(empty):
            when = a.isoformat() if a == b else f"{a.isoformat()} 至 {b.isoformat()}"
            yield f"{label}：{when} 无人值班"


def _person_problem(data: RegistryData, e: RosterEntry, pid: str, label: str) -> Iterable[str]:
    person = data.persons.get(pid)
    if person is None:
        yield f"{label}：值班人员 {pid} 不在人员台账中"
        return
    if person.region != e.region:
        yield (f"{label}：值班人员 {pid}（{person.name}）属于 "
               f"{region_label(data, person.region)}，不属于 {region_label(data, e.region)}")
    elif DUTY_ROLES.get(person.role) is not DUTY_ROLES[e.role]:
        yield (f"{label}：值班人员 {pid}（{person.name}）"
               f"是{ROLE_ZH.get(person.role, person.role)}，"
               f"须为{REGION_LEVEL_ZH[DUTY_ROLES[e.role]]}值班人员或带班领导")


def duty_problems(data: RegistryData) -> Iterable[str]:
    """A township or county with nobody to hold its duty: no roster names anyone for it and
    it has no fixed duty person either (escalation would skip it)."""
    rostered = {(e.region, e.role) for r in data.rosters.values() for e in r.entries
                if e.rotation or e.shifts}
    fixed = {(p.region, p.role) for p in data.persons.values()}
    for code, region in sorted(data.regions.items()):
        role = REQUIRED_DUTY.get(region.level)
        if role is not None and (code, role) not in rostered and (code, role) not in fixed:
            yield (f"{region_label(data, code)}：无人值班（没有{ROLE_ZH[role]}：既无值班表，"
                   "也无固定值班人员）")


def _runs(sorted_days: Sequence[date]) -> Iterable[tuple[date, date]]:
    """Consecutive days as (first, last) runs."""
    start = prev = None
    for d in sorted_days:
        if prev is not None and (d - prev).days == 1:
            prev = d
            continue
        if start is not None and prev is not None:
            yield start, prev
        start = prev = d
    if start is not None and prev is not None:
        yield start, prev


def _iso_time(value: str) -> bool:
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True
