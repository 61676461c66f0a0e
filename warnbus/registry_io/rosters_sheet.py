"""The 值班表 sheet: duty roster versions, one row per shift day (or one per rotation).

A row is one township's (or the county's) shift on one day: 值班员 and 带班领导, each by
人员编号, name or name and phone (a new person when nobody of that name is on duty there).
A version (值班表编号: a year, a flood season) is the rows with its number, from its first
day to its last; its shifts start at 交班时间 (default 08:00 Beijing time) and last 24 h.
Where offices rota, one row gives the whole version: 日期 is its span (2026-01-01至
2026-12-31) and 值班员 the people taking turns in order; a dated row of the same region then
wins on its day (a swap).

A version read is unapproved unless it decides what it decided when it was approved (the
same shifts, however written: `duty.schedule_digest`): a changed version waits for an
approver in the console (/console/duty), as any version does; the workbook never approves.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from warnbus.domain.duty import (
    DEFAULT_SHIFT_START,
    MAX_DAYS,
    Roster,
    RosterEntry,
    Shift,
    parse_day,
    parse_hhmm,
    schedule,
    schedule_digest,
)
from warnbus.domain.models import Person, RegionLevel, RegistryData, Role
from warnbus.domain.roles import DUTY_ROLES
from warnbus.registry_io import cells
from warnbus.registry_io.kinds import _ID, LEVEL_ZH, Build, _cell, _name_check, role_zh
from warnbus.registry_io.people_ref import Columns, Named, People, named
from warnbus.registry_io.sheets import Column, SheetSpec, Table

SPEC = SheetSpec("rosters", "值班表", (
    Column("roster", "值班表编号", ("版本编号", "值班表版本", "年份/版本"), required=True,
           width=18, as_text=True,
           hint="同一版本（一年或一个汛期）的各行填同一编号；新版本用新编号，导入后须在控制台审批"),
    Column("roster_name", "值班表名称", ("版本名称",), width=20, hint="如：2026年汛期值班表"),
    Column("region", "区划代码", ("区域代码", "乡镇代码", "ADCD"), required=True, width=16,
           as_text=True, hint="乡镇（乡镇值班）或县（县值班）的代码"),
    Column("region_name", "区划名称", ("区域名称", "乡镇", "乡镇名称"), width=12,
           hint="仅供核对：应与区划名称一致"),
    Column("day", "日期", ("值班日期", "起止日期", "起止时间"), required=True, width=24,
           as_text=True, hint="一天一行，如 2026-07-01；轮班时填整个版本的起止，如 "
           "2026-01-01至2026-12-31，值班员按顺序每人一班"),
    Column("start", "交班时间", ("接班时间",), width=10, as_text=True,
           hint="默认 08:00（北京时间），到次日同一时间；同一版本一致"),
    Column("duty_id", "值班员编号", ("值班人编号",), width=16, as_text=True,
           hint="「人员」表的人员编号；可只填姓名"),
    Column("duty", "值班员", ("值班人", "值班人员"), width=12,
           hint="轮班行填多人，用顿号分隔；新人员同时填手机即新增"),
    Column("duty_phone", "值班员手机", ("值班人手机", "值班电话"), width=16, as_text=True),
    Column("leader_id", "带班领导编号", ("值班领导编号",), width=16, as_text=True),
    Column("leader", "带班领导", ("值班领导", "带班领导姓名"), width=12),
    Column("leader_phone", "带班领导手机", ("值班领导手机",), width=16, as_text=True),
), aliases=("值班安排", "排班表", "值班表版本"), hint="每个乡镇（县）每天一行：值班员和带班领导；"
    "导入的新版本或改动的版本须在控制台「值班安排」审批后生效")

#: The two duties of a row, by the level of its region: (role, its columns).
_DUTIES: dict[RegionLevel, tuple[tuple[Role, Columns], ...]] = {
    RegionLevel.TOWNSHIP: ((Role.TOWNSHIP_DUTY, ("duty_id", "duty", "duty_phone")),
                           (Role.TOWNSHIP_LEADER, ("leader_id", "leader", "leader_phone"))),
    RegionLevel.COUNTY: ((Role.COUNTY_DUTY, ("duty_id", "duty", "duty_phone")),
                         (Role.COUNTY_LEADER, ("leader_id", "leader", "leader_phone"))),
}
_SPAN = re.compile(r"(.+?)\s*(?:至|到|~|～|—|--)\s*(.+)")
_DAY_TEXT = re.compile(r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?")


def read_day(value: cells.Cell) -> tuple[date, date | None]:
    """A row's 日期: a day (day, None) or a version's span (first, last)."""
    if isinstance(value, datetime):
        return value.date(), None
    if isinstance(value, date):
        return value, None
    word = cells.ascii_text(value, limit=40)
    if not word:
        raise cells.CellError("日期不能为空")
    span = _SPAN.fullmatch(word)
    if span is not None:
        first, last = _one_day(span.group(1)), _one_day(span.group(2))
        if last < first:
            raise cells.CellError("结束日期早于起始日期")
        return first, last
    return _one_day(word), None


def _one_day(word: str) -> date:
    m = _DAY_TEXT.fullmatch(word.strip())
    try:
        if m is not None:
            return date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        pass
    raise cells.CellError(f"「{word}」不是日期（应如 2026-07-01，或起止：2026-01-01至2026-12-31）")


def read_start(value: cells.Cell) -> str | None:
    """A 交班时间 HH:MM (a time cell, 8:00, 08:00); None for an empty cell."""
    if isinstance(value, time):
        return f"{value.hour:02d}:{value.minute:02d}"
    if isinstance(value, (datetime, date, timedelta)):
        raise cells.CellError("交班时间应为时:分，如 08:00")
    word = cells.ascii_text(value, limit=10).replace("：", ":")
    if not word:
        return None
    hh, _, mm = word.partition(":")
    out = f"{int(hh):02d}:{mm}" if hh.isdigit() and len(hh) <= 2 else word
    if parse_hhmm(out) is None:
        raise cells.CellError("交班时间应为时:分，如 08:00")
    return out


@dataclass
class _Row:
    n: int
    region: str
    first: date
    last: date | None  # a rotation row: the version's span
    people: dict[Role, list[str]]  # person ids per duty role (empty: nobody named)
    broken: bool = False  # a person of the row had a problem (its day is not a gap too)


@dataclass
class _Version:
    rid: str
    n: int  # its first row
    name: str = ""
    start: str | None = None
    start_row: int = 0
    rows: list[_Row] = field(default_factory=list)
    #: Regions with a row whose day could not be read: a gap there is that row's problem.
    troubled: set[str] = field(default_factory=set)
    bad: bool = False  # a row of it has a problem


class Rosters:
    spec = SPEC

    def read(self, table: Table, build: Build) -> None:
        if not table.has_any("duty", "duty_id"):
            return
        # A sheet without the leaders' columns would remove every 带班领导 silently: leaving
        # them out takes the column kept and its cells left empty.
        if not table.has_any("leader", "leader_id", "leader_phone"):
            return
        people = People(build, table)
        versions: dict[str, _Version] = {}
        for n, row in table.records():
            before = len(table.problems)
            rid = self._row(table, build, people, versions, n, row)
            if len(table.problems) > before and rid in versions:
                versions[rid].bad = True
        out: dict[str, Roster] = {}
        for v in versions.values():
            roster = self._version(table, build, v)
            if roster is not None:
                out[v.rid] = roster
                build.where[("rosters", v.rid)] = (table.sheet, v.n)
            else:
                build.broken.add(("rosters", v.rid))
        build.rosters = out
        build.read.add("rosters")

    def _row(self, table: Table, build: Build, people: People, versions: dict[str, _Version],
             n: int, row: Sequence[cells.Cell]) -> str | None:
        """Read one row into its version; the version's id (None when it has none)."""
        rid = _cell(table, n, row, "roster", cells.ascii_text)
        name = table.text(n, row, "roster_name") if table.has("roster_name") else ""
        start = _cell(table, n, row, "start", read_start) if table.has("start") else None
        region = _cell(table, n, row, "region", cells.region_code)
        day = _cell(table, n, row, "day", read_day)
        if not isinstance(rid, str):
            return None
        if not rid or not _ID.fullmatch(rid):
            table.problem(n, "roster", "值班表编号不能为空，只能由字母、数字和 _ . - 组成")
            return None
        v = versions.setdefault(rid, _Version(rid, n))
        if name and not v.name:
            v.name = name
        elif name and name != v.name:
            table.problem(n, "roster_name", f"与第{v.n}行同一值班表的名称「{v.name}」不一致")
        if isinstance(start, str) and v.start is None:
            v.start, v.start_row = start, n
        elif isinstance(start, str) and start != v.start:
            table.problem(n, "start",
                          f"同一值班表的交班时间应一致（第{v.start_row}行是 {v.start}）")
        if isinstance(region, str) and day is None:
            v.troubled.add(region)
        if not isinstance(region, str) or not isinstance(day, tuple):
            return rid
        place = build.regions.get(region)
        if place is None or place.level not in _DUTIES:
            if not build.is_broken("regions", region):
                table.problem(n, "region", f"{region} 不是「区划」中的乡镇或县")
            return rid
        if table.has("region_name"):
            _name_check(table, build, n, row, "region_name", region)
        got: dict[Role, list[str]] = {}
        broken = False
        for role, keys in _DUTIES[place.level]:
            who = named(table, n, row, keys, many=day[1] is not None)
            ids = [self._person(people, n, keys, w, role, region) for w in who or ()]
            broken = broken or who is None or None in ids
            got[role] = [i for i in ids if i]
        v.rows.append(_Row(n, region, day[0], day[1], got, broken))
        return rid

    @staticmethod
    def _person(people: People, n: int, keys: Columns, who: Named, role: Role,
                region: str) -> str | None:
        level = DUTY_ROLES[role]
        place = people.build.regions[region]

        def fits(p: Person) -> str | None:
            if p.region != region:
                return f"{p.name}（{p.id}）不属于{place.name}（{region}）"
            if DUTY_ROLES.get(p.role) is not level:
                return (f"{p.name}（{p.id}）是{role_zh(p.role)}，"
                        f"须为{LEVEL_ZH[level]}值班员或带班领导")
            return None

        return people.resolve(n, keys, who, label=role_zh(role),
                              candidates=lambda p: p.region == region
                              and DUTY_ROLES.get(p.role) is level,
                              fits=fits, new=(role, region))

    def _version(self, table: Table, build: Build, v: _Version) -> Roster | None:
        """A version from its rows, or None (its problems are in the table)."""
        if not v.rows:
            return None
        first = min(r.first for r in v.rows)
        last = max(r.last or r.first for r in v.rows)
        if (last - first).days + 1 > MAX_DAYS:
            table.problem(v.n, "day", f"值班表 {v.rid} 跨 {(last - first).days + 1} 天，"
                          f"超过 {MAX_DAYS} 天（请按年度或汛期分版本）")
            return None
        before = len(table.problems)
        entries: list[RosterEntry] = []
        for region in dict.fromkeys(r.region for r in v.rows):
            rows = [r for r in v.rows if r.region == region]
            level = build.regions[region].level
            for role, keys in _DUTIES[level]:
                entry = self._entry(table, build, v, rows, role, keys, first, last)
                if entry is not None:
                    entries.append(entry)
        if len(table.problems) > before or v.bad:
            return None
        old = build.base.rosters.get(v.rid)
        roster = _kept(Roster(v.rid, v.name or (old.name if old else v.rid), first.isoformat(),
                              last.isoformat(), tuple(entries),
                              v.start or (old.shift_start if old else DEFAULT_SHIFT_START)), old)
        if old is None or (not roster.approved_by
                           and schedule_digest(old) != schedule_digest(roster)):
            what = "是新版本" if old is None else "的班次有变化"
            build.warnings.append(f"值班表 {v.rid}（{roster.name}）{what}：应用后须由审批人在"
                                  "控制台「值班安排」审批才生效")
        return roster

    @staticmethod
    def _entry(table: Table, build: Build, v: _Version, rows: list[_Row], role: Role,
               keys: Columns, first: date, last: date) -> RosterEntry | None:
        """One region's entry for `role`: its rotation and dated shifts; None when no row
        names anyone for it. Gaps, doubles and a rotation off the version's span are
        problems of their rows."""
        if not any(r.people.get(role) or r.broken for r in rows):
            return None
        where = f"{build.regions[rows[0].region].name} {role_zh(role)}"
        before = len(table.problems)
        rotation: tuple[str, ...] = ()
        rota_row = 0
        dated: dict[date, tuple[str, int]] = {}
        for r in rows:
            ids = r.people.get(role, [])
            if r.last is not None:
                if r.broken and not ids:
                    rota_row = rota_row or -r.n  # its own problem: no gaps reported
                elif rota_row and ids:
                    table.problem(r.n, keys[1], f"{where}已在第{abs(rota_row)}行轮班，"
                                  "一个版本只能有一行轮班")
                elif (r.first, r.last) != (first, last) and ids:
                    table.problem(r.n, "day", f"轮班应覆盖整个值班表 {v.rid}"
                                  f"（{first.isoformat()}至{last.isoformat()}）")
                elif ids:
                    rotation, rota_row = tuple(ids), r.n
                continue
            if not ids and r.broken:
                dated.setdefault(r.first, ("", r.n))  # its own problem says what is wrong
                continue
            if not ids:
                continue
            if r.first in dated:
                table.problem(r.n, "day", f"{where} {r.first.isoformat()} 已在第"
                              f"{dated[r.first][1]}行排班：同一天只能有一个班次")
                continue
            dated[r.first] = (ids[0], r.n)
        if (not rotation and rota_row >= 0 and len(table.problems) == before
                and rows[0].region not in v.troubled):
            missing = [d for d in _days(first, last) if d not in dated]
            if missing:
                gap = _runs(missing)
                near = max((r.n for r in rows if r.first <= missing[0]), default=rows[0].n)
                table.problem(near, keys[1], f"{where}{gap}无人值班（缺少这些日期的班次）")
        return RosterEntry(rows[0].region, role, rotation, tuple(
            Shift(d.isoformat(), p) for d, (p, _) in sorted(dated.items()) if p))

    def check(self, build: Build) -> None:
        if "rosters" in build.read:
            return
        for rid, r in build.rosters.items():  # versions kept while people or regions changed
            for e in r.entries:
                for pid in dict.fromkeys((*e.rotation, *(s.person for s in e.shifts))):
                    p = build.persons.get(pid)
                    if (p is None or p.region != e.region) and not build.is_broken("persons", pid):
                        build.at("persons", pid, None, f"值班表 {rid}（{r.name}）的值班人员 {pid} "
                                 "已不在「人员」表中（或已调离该乡镇/县）", "人员")
                        return

    def rows(self, data: RegistryData, year: int | None) -> Iterable[Sequence[str | None]]:
        persons, regions = data.persons, data.regions
        for rid in sorted(data.rosters, key=lambda k: (data.rosters[k].first_day, k)):
            r = data.rosters[rid]
            for region in dict.fromkeys(e.region for e in r.entries):
                place = regions.get(region)
                by_role = {e.role: e for e in r.entries if e.region == region}
                duties = _DUTIES.get(place.level if place else RegionLevel.TOWNSHIP, ())
                head = (rid, r.name, region, place.name if place else None)
                if any(by_role[role].rotation for role, _ in duties if role in by_role):
                    cols: list[str | None] = []
                    for role, _ in duties:
                        e = by_role.get(role)
                        cols += _people(persons, e.rotation if e else ())
                    yield (*head, f"{r.first_day}至{r.last_day}", r.shift_start, *cols)
                days = sorted({s.day for e in by_role.values() for s in e.shifts})
                for day in days:
                    cols = []
                    for role, _ in duties:
                        e = by_role.get(role)
                        hit = next((s.person for s in e.shifts if s.day == day),
                                   None) if e else None
                        cols += _people(persons, (hit,) if hit else ())
                    yield (*head, day, r.shift_start, *cols)


def _people(persons: Mapping[str, Person], ids: Sequence[str]) -> list[str | None]:
    """The 编号, 值班员 and 手机 cells of the people `ids` (a rotation: in turn)."""
    ps = [persons.get(i) for i in ids]
    names = [p.name if p else "" for p in ps]
    phones = [(p.phone or "") if p else "" for p in ps]
    return ["、".join(ids) or None, "、".join(names) or None, "、".join(phones) or None]


def _kept(new: Roster, old: Roster | None) -> Roster:
    """`new` as the registry keeps it: the old version's own rotation and approval where
    the shifts are the same (an export imported back is no change)."""
    if old is None:
        return new
    if old.first_day == new.first_day:
        entries = []
        before = {(e.region, e.role): e for e in old.entries}
        plan_old, plan_new = schedule(old), schedule(new)
        for e in new.entries:
            was = before.get((e.region, e.role))
            if was is not None and was.rotation and plan_old.get((e.region, e.role)) == plan_new[
                    (e.region, e.role)] and old.last_day == new.last_day:
                entries.append(was)
            elif was is not None and was.rotation and not e.rotation:
                entries.append(_over(was.rotation, e, new))
            else:
                entries.append(e)
        # In the old version's order (rows moved in the sheet are no change).
        order = {(e.region, e.role): i for i, e in enumerate(old.entries)}
        entries.sort(key=lambda e: (order.get((e.region, e.role), len(order)), e.region))
        new = Roster(new.id, new.name, new.first_day, new.last_day, tuple(entries),
                     new.shift_start)
    if old.approved_by and schedule_digest(old) == schedule_digest(new):
        return Roster(new.id, new.name, new.first_day, new.last_day, new.entries,
                      new.shift_start, old.approved_by, old.approved_at)
    return new


def _over(rotation: tuple[str, ...], e: RosterEntry, r: Roster) -> RosterEntry:
    """Dated shifts written out in full, kept as the old rotation with the days that differ."""
    first = parse_day(r.first_day)
    assert first is not None
    keep = [s for s in e.shifts if (d := parse_day(s.day)) is not None
            and rotation[(d - first).days % len(rotation)] != s.person]
    return RosterEntry(e.region, e.role, rotation, tuple(keep))


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=k) for k in range((last - first).days + 1)]


def _runs(days: list[date]) -> str:
    """`2026-07-05、2026-07-08至2026-07-10` (the first few runs)."""
    runs: list[tuple[date, date]] = []
    for d in days:
        if runs and (d - runs[-1][1]).days == 1:
            runs[-1] = (runs[-1][0], d)
        else:
            runs.append((d, d))
    said = ["" + (a.isoformat() if a == b else f"{a.isoformat()}至{b.isoformat()}")
            for a, b in runs[:5]]
    return " " + "、".join(said) + (f" 等{len(runs)}段" if len(runs) > 5 else "") + " "
