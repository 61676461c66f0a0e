"""The record kinds a workbook carries: their sheet, how a row becomes a record, and back.

Each kind is one `Kind`: a `SheetSpec`, `read` (the sheet's rows into the build, every problem
located), `check` (after every sheet is read: references between kinds) and `rows` (export).
`workbook.KINDS` lists them in reading order: regions, persons, grids, sites, the sites'
people, duty rosters (issue 19 item 3). A record kind the registry grows joins it the same
way: a sheet, a reader and an exporter, nothing else.

What this module knows of roles and region levels is asked through `role_zh` and
`role_levels` alone, which read the domain's tables (`warnbus.domain.roles`: `ROLE_ZH`,
`ROLE_LEVELS`), so a role the domain grows is named and placed here too.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import msgspec

from warnbus.domain.models import (
    Device,
    Grid,
    Person,
    Region,
    RegionLevel,
    RegistryData,
    Role,
    Roster,
    Site,
)
from warnbus.domain.roles import ROLE_LEVELS
from warnbus.domain.roles import ROLE_ZH as ROLE_ZH
from warnbus.registry_io import cells
from warnbus.registry_io.cells import CellError
from warnbus.registry_io.sheets import Column, Problem, SheetSpec, Table

_ROLE_WORDS: Mapping[str, Role] = {
    **{v: k for k, v in ROLE_ZH.items()}, **{r.value: r for r in Role},
    "专职网格员": Role.PRIMARY, "备岗": Role.BACKUP, "村(社区)负责人": Role.VILLAGE_HEAD,
    "村（社区）负责人": Role.VILLAGE_HEAD, "社区负责人": Role.VILLAGE_HEAD,
    "乡镇值班人员": Role.TOWNSHIP_DUTY, "县值班人员": Role.COUNTY_DUTY,
}
LEVEL_ZH: Mapping[RegionLevel, str] = {
    RegionLevel.COUNTY: "县", RegionLevel.TOWNSHIP: "乡镇", RegionLevel.VILLAGE: "村（社区）",
}
_LEVEL_WORDS: Mapping[str, RegionLevel] = {
    **{v: k for k, v in LEVEL_ZH.items()}, **{lv.value: lv for lv in RegionLevel},
    "区": RegionLevel.COUNTY, "县(区)": RegionLevel.COUNTY, "县（区）": RegionLevel.COUNTY,
    "市": RegionLevel.COUNTY, "乡": RegionLevel.TOWNSHIP, "镇": RegionLevel.TOWNSHIP,
    "街道": RegionLevel.TOWNSHIP, "村": RegionLevel.VILLAGE, "社区": RegionLevel.VILLAGE,
    "村(社区)": RegionLevel.VILLAGE,
}
TAG_ZH: Mapping[str, str] = {"hazard_point": "地质灾害隐患点"}
_TAG_WORDS = {**{v: k for k, v in TAG_ZH.items()}, "隐患点": "hazard_point"}
_ID = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
_TAG = re.compile(r"[A-Za-z0-9_\-]{1,40}")

Ring = tuple[tuple[float, float], ...]


def role_zh(role: Role) -> str:
    """A role's name in the workbook and the console (its value for a role not named here)."""
    return ROLE_ZH.get(role, role.value)


def role_levels(role: Role) -> frozenset[RegionLevel]:
    """The kinds of region a person of `role` may belong to (the registry's rule)."""
    return ROLE_LEVELS[role]


def levels_zh(levels: Iterable[RegionLevel]) -> str:
    """`乡镇或县` for a set of region levels."""
    return "或".join(LEVEL_ZH[lv] for lv in RegionLevel if lv in set(levels))


@dataclass
class Build:
    """A registry being read from a workbook: starts as the current one; each sheet present
    replaces its kind. `where` remembers the row each record came from."""

    base: RegistryData
    regions: dict[str, Region]
    grids: dict[str, Grid]
    persons: dict[str, Person]
    devices: dict[str, Device]
    sites: dict[str, Site] = field(default_factory=dict)
    rosters: dict[str, Roster] = field(default_factory=dict)
    read: set[str] = field(default_factory=set)  # kinds whose sheet was present
    where: dict[tuple[str, str], tuple[str, int]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    years: set[int] = field(default_factory=set)
    #: (kind, id) of rows that had a problem: what refers to them says nothing more (the
    #: row's own problem is the one to fix), so one mistake is reported once.
    broken: set[tuple[str, str]] = field(default_factory=set)
    #: Every other table of the registry (as RegistryData grows): carried through as it is
    #: unless a kind of this module reads its sheet into it.
    others: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def on(cls, base: RegistryData) -> Build:
        known = ("regions", "grids", "persons", "devices", "sites", "rosters")
        others = {f: dict(getattr(base, f)) for f in base.__struct_fields__ if f not in known}
        return cls(base, dict(base.regions), dict(base.grids), dict(base.persons),
                   dict(base.devices), dict(base.sites), dict(base.rosters), others=others)

    def data(self) -> RegistryData:
        return type(self.base)(regions=self.regions, grids=self.grids, persons=self.persons,
                               devices=self.devices, sites=self.sites, rosters=self.rosters,
                               **self.others)

    def is_broken(self, kind: str, rid: str | None) -> bool:
        return (kind, rid or "") in self.broken

    def at(self, kind: str, rid: str, column: str | None, message: str, sheet: str) -> None:
        """A problem of a record: at its row when it was read from the workbook."""
        got = self.where.get((kind, rid))
        if got is not None:
            self.problems.append(Problem(got[0], got[1], column, message))
        else:
            self.problems.append(Problem(sheet, None, None, message))


class Kind(Protocol):
    spec: SheetSpec

    def read(self, table: Table, build: Build) -> None: ...
    def check(self, build: Build) -> None: ...
    def rows(self, data: RegistryData, year: int | None) -> Iterable[Sequence[str | None]]: ...


def _id(table: Table, n: int, row: Sequence[cells.Cell], key: str, seen: dict[str, int],
        ) -> str | None:
    try:
        rid = cells.ascii_text(table.raw(row, key), limit=64)
    except CellError as e:
        table.problem(n, key, e.message)
        return None
    if not rid:
        return ""
    if not _ID.fullmatch(rid):
        table.problem(n, key, "编号只能由字母、数字和 _ . - 组成（最多64个字符）")
        return None
    if rid in seen:
        table.problem(n, key, f"编号「{rid}」与第{seen[rid]}行重复")
        return None
    seen[rid] = n
    return rid


def _cell(table: Table, n: int, row: Sequence[cells.Cell], key: str, read: object) -> object:
    """`read(cell)`; a CellError becomes a problem at (row, column) and the value None."""
    try:
        return read(table.raw(row, key))  # type: ignore[operator]
    except CellError as e:
        table.problem(n, key, e.message)
        return None


def _year(table: Table, build: Build, n: int, row: Sequence[cells.Cell]) -> None:
    y = _cell(table, n, row, "year", cells.year) if table.has("year") else None
    if isinstance(y, int):
        build.years.add(y)


def _name_check(table: Table, build: Build, n: int, row: Sequence[cells.Cell], key: str,
                code: str | None) -> None:
    """An informational name column (乡镇, 村网格名, 所属) must name the region it stands by."""
    given = table.text(n, row, key)
    region = build.regions.get(code or "")
    if given and region is not None and given != region.name:
        table.problem(n, key, f"与区划代码 {region.code} 的名称「{region.name}」不一致")


_YEAR = Column("year", "年份", ("年度",), width=8, hint="台账年份，如 2026（整本台账一个年份）")
_NOTE = Column("note", "备注", ("说明",), width=20)


_Keyed = TypeVar("_Keyed", bound=msgspec.Struct)  # a record with an `id` field


def keyed_records(table: Table, build: Build, kind: str,
                  read: Callable[[int, Sequence[cells.Cell], str | None], _Keyed | None],
                  new_prefix: Callable[[_Keyed], str], taken: Iterable[str],
                  clash: Callable[[str], str | None] = lambda _rid: None) -> dict[str, _Keyed]:
    """A sheet's records by their 编号 (`read` makes one of a row, None with its problems in
    the table). A row with a problem marks its 编号 broken in `build`; `clash` may refuse an
    编号 (the message of the problem); a row without one gets the next free id after
    `new_prefix(record)`, past `taken` and the sheet's own. Where each was read is kept."""
    out: dict[str, _Keyed] = {}
    seen: dict[str, int] = {}
    pending: list[tuple[int, _Keyed]] = []
    for n, row in table.records():
        before = len(table.problems)
        rid = _id(table, n, row, "id", seen)
        record = read(n, row, rid)
        if rid and record is not None and len(table.problems) == before:
            refused = clash(rid)
            if refused is not None:
                table.problem(n, "id", refused)
        if record is None or len(table.problems) > before:
            if rid:
                build.broken.add((kind, rid))
            continue
        if rid:
            out[rid] = record
            build.where[(kind, rid)] = (table.sheet, n)
        else:
            pending.append((n, record))
    used = {*out, *taken}
    for n, record in pending:
        rid = next(next_free(new_prefix(record), used))
        used.add(rid)
        out[rid] = msgspec.structs.replace(record, id=rid)
        build.where[(kind, rid)] = (table.sheet, n)
    return out


def next_free(prefix: str, used: Iterable[str], width: int = 2) -> Iterator[str]:
    """Ids `prefix01`, `prefix02`, ... not in `used`."""
    taken = set(used)
    k = 0
    while True:
        k += 1
        rid = f"{prefix}{k:0{width}d}"
        if rid not in taken:
            taken.add(rid)
            yield rid
