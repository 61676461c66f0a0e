"""The 网格 sheet: each grid of a village with its grid officer (网格员) and backup (备岗).

A grid's officer is named by 人员编号, or by name alone when the village has exactly one
网格员 (备岗网格员) of that name. Boundaries are not in the workbook: an existing grid keeps
its own, a new one takes it from a boundary file (GeoJSON or a zipped shapefile).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

from warnbus.domain.models import Grid, RegionLevel, RegistryData, Role
from warnbus.registry_io import cells
from warnbus.registry_io.kinds import (
    _ID,
    _NOTE,
    _TAG,
    _TAG_WORDS,
    _YEAR,
    TAG_ZH,
    Build,
    _cell,
    _name_check,
    _year,
    keyed_records,
    role_zh,
)
from warnbus.registry_io.sheets import Column, SheetSpec, Table

SPEC = SheetSpec("grids", "网格", (
    Column("township", "乡镇", ("乡镇(街道)", "乡镇名称"), width=10,
           hint="仅供核对：应与区划名称一致"),
    Column("village", "村ADCD", ("村代码", "村区划代码", "所属村代码"), required=True, width=16,
           as_text=True, hint="网格所在村（社区）的12位代码（或15位 ADCD）"),
    Column("village_name", "村网格名", ("村名", "村(社区)", "所属村"), width=14,
           hint="仅供核对：应与村的区划名称一致"),
    Column("id", "网格编号", ("网格ID",), width=18, as_text=True,
           hint="保留导出时的编号；新增网格可留空（自动编号），或填写与边界文件对应的编号"),
    Column("name", "网格名", ("网格名称",), required=True, width=20),
    Column("primary_id", "网格员编号", (), width=16, as_text=True,
           hint="「人员」表的人员编号；留空时按本村网格员的姓名对应"),
    Column("primary", "网格员", ("责任人", "网格员姓名"), width=10),
    Column("backup_id", "备岗编号", ("备岗网格员编号",), width=16, as_text=True),
    Column("backup", "备岗", ("备岗网格员",), width=10),
    Column("tags", "标签", (), width=14, hint="如：地质灾害隐患点（多个用顿号分隔）"),
    _NOTE,
    _YEAR,
), aliases=("网格信息", "网格划分"),
   hint="每行一个网格；边界请用边界文件（GeoJSON 或 shapefile）导入")


def _tags(value: cells.Cell) -> tuple[str, ...]:
    out = []
    for word in cells.words(value):
        tag = _TAG_WORDS.get(word, word)
        if not _TAG.fullmatch(tag):
            raise cells.CellError(f"标签「{word}」无法识别（可用：{'、'.join(TAG_ZH.values())}）")
        out.append(tag)
    return tuple(dict.fromkeys(out))


class Grids:
    spec = SPEC

    def read(self, table: Table, build: Build) -> None:
        by_name = _officers_by_name(build)
        build.grids = keyed_records(
            table, build, "grids",
            lambda n, row, gid: self._row(table, build, by_name, n, row, gid),
            lambda grid: grid.village + "-", build.base.grids)
        build.read.add("grids")

    def _row(self, table: Table, build: Build, by_name: dict[tuple[str, Role, str], list[str]],
             n: int, row: Sequence[cells.Cell], gid: str | None) -> Grid | None:
        """One row's grid, or None (its problems are in the table)."""
        name = table.text(n, row, "name")
        village = _cell(table, n, row, "village", cells.region_code)
        tags = _cell(table, n, row, "tags", _tags) if table.has("tags") else ()
        note = table.text(n, row, "note") if table.has("note") else None
        _year(table, build, n, row)
        if not isinstance(village, str):
            return None
        region = build.regions.get(village)
        if region is None and build.is_broken("regions", village):
            return None
        if region is None or region.level is not RegionLevel.VILLAGE:
            table.problem(n, "village", f"{village} 不是「区划」中的村（社区）")
            return None
        if table.has("village_name"):
            _name_check(table, build, n, row, "village_name", village)
        if table.has("township"):
            _name_check(table, build, n, row, "township", region.parent)
        primary = self._officer(table, build, by_name, n, row, village, Role.PRIMARY)
        backup = self._officer(table, build, by_name, n, row, village, Role.BACKUP)
        if name == "":
            table.problem(n, "name", "网格名不能为空")
        if gid is None or not name or not isinstance(primary, str) or backup is False:
            return None
        if primary == "":
            table.problem(n, "primary", "没有网格员：请填写网格员编号或姓名")
            return None
        if backup and backup == primary:
            table.problem(n, "backup_id", "备岗与网格员是同一人")
            return None
        old = build.base.grids.get(gid) if gid else None
        grid = Grid(gid, name, village, old.polygon if old else (), primary,
                    backup if isinstance(backup, str) and backup else None,
                    tags if isinstance(tags, tuple) else (), note or None)
        return grid

    @staticmethod
    def _officer(table: Table, build: Build, by_name: dict[tuple[str, Role, str], list[str]],
                 n: int, row: Sequence[cells.Cell], village: str, role: Role) -> str | bool | None:
        """The person id of a grid's officer: "" when none is named, None after a problem
        (False for a backup, whose absence is no problem)."""
        id_key, name_key = (("primary_id", "primary") if role is Role.PRIMARY
                            else ("backup_id", "backup"))
        failed: str | bool | None = None if role is Role.PRIMARY else False
        pid = _cell(table, n, row, id_key, cells.ascii_text) if table.has(id_key) else ""
        name = table.text(n, row, name_key) if table.has(name_key) else ""
        if pid is None or name is None:
            return failed
        label = role_zh(role)
        if pid:
            if not (isinstance(pid, str) and _ID.fullmatch(pid)):
                table.problem(n, id_key, "编号只能由字母、数字和 _ . - 组成")
                return failed
            person = build.persons.get(pid)
            if person is None and build.is_broken("persons", pid):
                return failed  # its own row in 人员 says what is wrong
            if person is None:
                table.problem(n, id_key, f"「人员」表中没有编号为 {pid} 的人员")
                return failed
            if person.role is not role:
                table.problem(n, id_key, f"{pid}（{person.name}）的职位是{role_zh(person.role)}，"
                              f"不是{label}")
                return failed
            if name and name != person.name:
                table.problem(n, name_key, f"与「人员」表中 {pid} 的姓名「{person.name}」不一致")
                return failed
            return pid
        if not name:
            return ""
        found = by_name.get((village, role, name), [])
        if len(found) == 1:
            return found[0]
        table.problem(n, name_key, f"本村没有名为「{name}」的{label}" if not found else
                      f"本村有{len(found)}位名为「{name}」的{label}，请填写编号")
        return failed

    def check(self, build: Build) -> None:
        for gid, g in build.grids.items():
            if not g.polygon:
                build.at("grids", gid, "网格编号", f"新网格「{g.name}」（{gid}）没有边界："
                                                   "请同时导入边界文件"
                         "（GeoJSON 或 shapefile），以网格编号或网格名对应", SPEC.name)
        if "grids" in build.read:
            return
        for gid, g in build.grids.items():  # grids kept while persons or regions changed
            for pid, role in ((g.primary, Role.PRIMARY), (g.backup, Role.BACKUP)):
                p = build.persons.get(pid or "")
                if (pid and (p is None or p.role is not role)
                        and not build.is_broken("persons", pid)):
                    build.at("persons", pid, None, f"网格 {gid}（{g.name}）的{role_zh(role)} {pid} "
                             "已不在「人员」表中（或职位已改）", "人员")
            village = build.regions.get(g.village)
            if village is None or village.level is not RegionLevel.VILLAGE:
                build.at("regions", g.village, None, f"网格 {gid}（{g.name}）所在的村 {g.village} "
                         "已不在「区划」中", "区划")

    def rows(self, data: RegistryData, year: int | None) -> Iterable[Sequence[str | None]]:
        regions, persons = data.regions, data.persons
        for gid in sorted(data.grids):
            g = data.grids[gid]
            village = regions.get(g.village)
            town = regions.get(village.parent or "") if village else None
            p, b = persons.get(g.primary), persons.get(g.backup or "")
            yield (town.name if town else None, g.village, village.name if village else None,
                   g.id, g.name, g.primary, p.name if p else None, g.backup,
                   b.name if b else None, "、".join(TAG_ZH.get(t, t) for t in g.tags) or None,
                   g.note, str(year) if year else None)


def _officers_by_name(build: Build) -> dict[tuple[str, Role, str], list[str]]:
    out: dict[tuple[str, Role, str], list[str]] = defaultdict(list)
    for pid, p in sorted(build.persons.items()):
        if p.role in (Role.PRIMARY, Role.BACKUP):
            out[(p.region, p.role, p.name)].append(pid)
    return out

