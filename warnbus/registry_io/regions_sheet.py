"""The 区划 sheet: counties, townships and villages with their 12-digit codes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from warnbus.domain.models import Region, RegionLevel, RegistryData
from warnbus.registry_io import cells
from warnbus.registry_io.kinds import _LEVEL_WORDS, LEVEL_ZH, Build, _cell
from warnbus.registry_io.sheets import Column, SheetSpec, Table

SPEC = SheetSpec("regions", "区划", (
    Column("code", "区划代码", ("统计用区划代码", "ADCD", "行政区划代码"), required=True, width=16,
           as_text=True, hint="12位统计用区划代码（或15位 ADCD）"),
    Column("name", "名称", ("区划名称",), required=True, width=16),
    Column("level", "级别", ("层级",), required=True, width=10, hint="县 / 乡镇 / 村（社区）"),
    Column("parent", "上级代码", ("上级区划代码",), width=16, as_text=True,
           hint="可不填：按代码推出（村→所属乡镇，乡镇→所属县）"),
), aliases=("行政区划", "区划代码"), hint="县、乡镇、村（社区）；村的代码是网格和人员所属的村ADCD")

_WANT_PARENT = {RegionLevel.TOWNSHIP: RegionLevel.COUNTY, RegionLevel.VILLAGE: RegionLevel.TOWNSHIP}


def _level(value: cells.Cell) -> RegionLevel:
    word = cells.text(value, limit=10)
    level = _LEVEL_WORDS.get(word)
    if level is None:
        raise cells.CellError("级别应为：县、乡镇、村（社区）")
    return level


def _implied_parent(code: str, level: RegionLevel) -> str | None:
    if level is RegionLevel.VILLAGE:
        return code[:9] + "000"
    if level is RegionLevel.TOWNSHIP:
        return code[:6] + "000000"
    return None


def _shape_problem(code: str, level: RegionLevel) -> str | None:
    if level is RegionLevel.COUNTY and (code[6:] != "000000" or code[4:6] == "00"):
        return "县的代码是6位县级代码加000000，如 430623000000"
    if level is RegionLevel.TOWNSHIP and (code[6:9] == "000" or code[9:] != "000"):
        return "乡镇的代码是县的6位加3位乡镇代码加000，如 430623101000"
    if level is RegionLevel.VILLAGE and code[9:] == "000":
        return "村（社区）的代码末三位不能是000，如 430623101201"
    return None


class Regions:
    spec = SPEC

    def read(self, table: Table, build: Build) -> None:
        out: dict[str, Region] = {}
        seen: dict[str, int] = {}
        for n, row in table.records():
            before = len(table.problems)
            code = _cell(table, n, row, "code", cells.region_code)
            name = table.text(n, row, "name")
            level = _cell(table, n, row, "level", _level)
            parent_raw = table.raw(row, "parent")
            parent = (_cell(table, n, row, "parent", cells.region_code)
                      if cells.text(parent_raw) else None) if table.has("parent") else None
            if not isinstance(code, str) or not isinstance(level, RegionLevel):
                continue
            if code in seen:
                table.problem(n, "code", f"区划代码 {code} 与第{seen[code]}行重复")
                continue
            seen[code] = n
            if not name:
                table.problem(n, "name", "名称不能为空")
                continue
            shape = _shape_problem(code, level)
            if shape:
                table.problem(n, "code", shape)
                continue
            implied = _implied_parent(code, level)
            if isinstance(parent, str) and parent != implied:
                table.problem(n, "parent", f"上级代码应为 {implied}（由区划代码推出）"
                              if implied else "县没有上级代码")
                continue
            if len(table.problems) > before:
                build.broken.add(("regions", code))
                continue
            out[code] = Region(code, name, level, implied)
            build.where[("regions", code)] = (table.sheet, n)
        build.regions = out
        build.read.add("regions")

    def check(self, build: Build) -> None:
        for code, r in build.regions.items():
            want = _WANT_PARENT.get(r.level)
            if want is None:
                continue
            parent = build.regions.get(r.parent or "")
            if parent is None or parent.level is not want:
                build.at("regions", code, "上级代码",
                         f"上级 {r.parent} 不在区划中（应为{LEVEL_ZH[want]}）", SPEC.name)

    def rows(self, data: RegistryData, year: int | None) -> Iterable[Sequence[str | None]]:
        order = {RegionLevel.COUNTY: 0, RegionLevel.TOWNSHIP: 1, RegionLevel.VILLAGE: 2}
        for r in sorted(data.regions.values(), key=lambda r: (r.code[:9], order[r.level], r.code)):
            yield (r.code, r.name, LEVEL_ZH[r.level], r.parent)
