"""The 人员 sheet: every responsible person, their position (职位), region and contact points."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import msgspec

from warnbus.domain.models import Person, Region, RegionLevel, RegistryData, Role
from warnbus.registry_io import cells
from warnbus.registry_io.kinds import (
    _NOTE,
    _ROLE_WORDS,
    _YEAR,
    LEVEL_ZH,
    ROLE_ZH,
    Build,
    _cell,
    _id,
    _name_check,
    _year,
    levels_zh,
    next_free,
    role_levels,
    role_zh,
)
from warnbus.registry_io.sheets import Column, SheetSpec, Table

SPEC = SheetSpec("persons", "人员", (
    Column("id", "人员编号", ("编号",), width=16, as_text=True,
           hint="保留导出时的编号；新增人员留空，导入时自动编号"),
    Column("name", "姓名", ("责任人", "人员姓名"), required=True, width=10),
    Column("role", "职位", ("职务", "角色"), required=True, width=12,
           hint="网格员 / 备岗网格员 / 村负责人 / 乡镇值班员 / 县值班员"),
    Column("region", "所属区划代码", ("村ADCD", "区划代码", "ADCD", "所属区划"), required=True,
           width=16, as_text=True, hint="网格员、备岗、村负责人填村的代码；值班员填乡镇或县的代码"),
    Column("region_name", "所属", ("所属名称", "村网格名"), width=14,
           hint="仅供核对：应与区划名称一致"),
    Column("township", "乡镇", ("乡镇(街道)", "乡镇名称"), width=10, hint="仅供核对：所属的乡镇"),
    Column("phone", "手机", ("手机号", "手机号码", "联系电话", "电话"), width=16, as_text=True,
           hint="11位手机号"),
    Column("wecom", "企业微信", ("企业微信账号", "企业微信ID"), width=14, as_text=True),
    Column("drill", "参加演练", ("演练",), width=10, hint="是 / 否"),
    _NOTE,
    _YEAR,
), aliases=("人员名单", "责任人", "网格员"),
   hint="每行一人；同一人兼任两个职位时写两行（两个编号）")


def _role(value: cells.Cell) -> Role:
    return cells.choice(value, _ROLE_WORDS, "职位", ROLE_ZH.values())


def _wecom(value: cells.Cell) -> str | None:
    uid = cells.ascii_text(value, limit=64)
    if uid and any(c in uid for c in "|,: "):
        raise cells.CellError("企业微信账号不能含有 | , : 或空格")
    return uid or None


class Persons:
    spec = SPEC

    def read(self, table: Table, build: Build) -> None:
        out: dict[str, Person] = {}
        seen: dict[str, int] = {}
        pending: list[tuple[int, Person]] = []  # rows without an id: numbered at the end
        for n, row in table.records():
            before = len(table.problems)
            pid = _id(table, n, row, "id", seen)
            name = table.text(n, row, "name")
            role = _cell(table, n, row, "role", _role)
            region = _cell(table, n, row, "region", cells.region_code)
            phone = _cell(table, n, row, "phone", cells.phone) if table.has("phone") else None
            wecom = _cell(table, n, row, "wecom", _wecom) if table.has("wecom") else None
            drill = _cell(table, n, row, "drill", cells.flag) if table.has("drill") else False
            note = table.text(n, row, "note") if table.has("note") else None
            _year(table, build, n, row)
            fits = (isinstance(role, Role) and isinstance(region, str)
                    and self._fits(table, build, n, role, region))
            if fits and table.has("region_name"):
                _name_check(table, build, n, row, "region_name", str(region))
            if fits and table.has("township"):
                _name_check(table, build, n, row, "township", _township(build, str(region)))
            if name == "":
                table.problem(n, "name", "姓名不能为空")
            if not phone and not wecom and len(table.problems) == before:
                table.problem(n, "phone" if table.has("phone") else None,
                              "没有手机号，也没有企业微信账号：无法通知此人")
            if len(table.problems) > before:
                if pid:
                    build.broken.add(("persons", pid))
                continue
            if (pid is None or not name or not fits or not isinstance(role, Role)
                    or not isinstance(region, str)):
                continue
            person = Person(pid, name, role, region,
                            phone=phone if isinstance(phone, str) else None,
                            wecom=wecom if isinstance(wecom, str) else None, drill=drill is True,
                            note=note or None)
            if pid:
                out[pid] = person
                build.where[("persons", pid)] = (table.sheet, n)
            else:
                pending.append((n, person))
        fresh = next_free("p-", (*out, *build.base.persons), width=5)
        for n, person in pending:
            pid = next(fresh)
            out[pid] = msgspec.structs.replace(person, id=pid)
            build.where[("persons", pid)] = (table.sheet, n)
        build.persons = out
        build.read.add("persons")

    @staticmethod
    def _fits(table: Table, build: Build, n: int, role: Role, code: str) -> bool:
        region = build.regions.get(code)
        want = role_levels(role)
        if region is None and build.is_broken("regions", code):
            return False  # its own row says what is wrong
        if region is None:
            table.problem(n, "region", f"区划 {code} 不在「区划」中")
            return False
        if region.level not in want:
            table.problem(n, "region", f"{role_zh(role)}应属于{levels_zh(want)}，"
                          f"{code}（{region.name}）是{LEVEL_ZH[region.level]}")
            return False
        return True

    def check(self, build: Build) -> None:
        if "persons" in build.read or "regions" not in build.read:
            return
        for pid, p in build.persons.items():  # persons kept while the 区划 sheet changed
            region = build.regions.get(p.region)
            if region is None or region.level not in role_levels(p.role):
                build.at("persons", pid, None, f"人员 {pid}（{p.name}）所属的区划 {p.region} "
                         "已不在「区划」中", SPEC.name)

    def rows(self, data: RegistryData, year: int | None) -> Iterable[Sequence[str | None]]:
        regions = data.regions
        for pid in sorted(data.persons, key=lambda k: (data.persons[k].region, k)):
            p = data.persons[pid]
            region = regions.get(p.region)
            town = regions.get(_township_of(data.regions, p.region) or "")
            yield (p.id, p.name, role_zh(p.role), p.region, region.name if region else None,
                   town.name if town else None, p.phone, p.wecom, "是" if p.drill else None, p.note,
                   str(year) if year else None)



def _township_of(regions: Mapping[str, Region], code: str) -> str | None:
    region = regions.get(code)
    if region is None or region.level is RegionLevel.COUNTY:
        return None
    return code if region.level is RegionLevel.TOWNSHIP else region.parent


def _township(build: Build, code: str) -> str | None:
    return _township_of(build.regions, code)
