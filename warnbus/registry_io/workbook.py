"""A workbook (and a boundary file) on top of the current registry -> a candidate registry.

Each sheet present replaces its kind; a kind whose sheet is absent (or has no data rows, as
in the template) is kept as it is (a workbook of people alone changes people alone).
Loudspeakers are not in the workbook and are kept; so are the polygons of grids and sites.
Every problem is located (sheet, row, column) in Chinese; when the sheets have none, the
registry's own validation runs as a last net (its findings are listed too).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from warnbus.domain.models import RegistryData
from warnbus.registry import validate_registry
from warnbus.registry_io.boundaries import BoundaryFile, apply_boundaries
from warnbus.registry_io.grids_sheet import Grids
from warnbus.registry_io.kinds import Build, Kind
from warnbus.registry_io.persons_sheet import Persons
from warnbus.registry_io.regions_sheet import Regions
from warnbus.registry_io.rosters_sheet import Rosters
from warnbus.registry_io.sandbox import Sheet
from warnbus.registry_io.sheets import Problem, Table, find_sheet, make_table
from warnbus.registry_io.site_people_sheet import SitePeople
from warnbus.registry_io.sites_sheet import Sites

#: The kinds a workbook carries, in reading order (a kind reads the ones before it): sites
#: after grids (a site lies in a grid), their people after the sites, rosters last (their
#: rows may name new people, as the site people's rows may).
KINDS: tuple[Kind, ...] = (Regions(), Persons(), Grids(), Sites(), SitePeople(), Rosters())
README_SHEET = "说明"


@dataclass
class Candidate:
    """What an import would make the registry, and what stands in its way."""

    data: RegistryData
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    kinds: tuple[str, ...] = ()  # the kinds the workbook replaced
    year: int | None = None
    boundary: str = ""  # what the boundary file did, in words

    @property
    def ok(self) -> bool:
        return not self.problems


def build_candidate(base: RegistryData, sheets: Sequence[Sheet] | None = None,
                    boundary: BoundaryFile | None = None, *, key: str = "") -> Candidate:
    """Read `sheets` (a parsed workbook) and `boundary` onto `base`."""
    build = Build.on(base)
    tables: dict[str, Table] = {}
    for sheet in sheets or ():
        spec = find_sheet([k.spec for k in KINDS], sheet.name, sheet.rows)
        if spec is None:
            if sheet.name.strip() != README_SHEET and any(sheet.rows):
                build.warnings.append(f"工作表「{sheet.name}」不是台账的表（{_names()}），未导入")
            continue
        if spec.kind in tables:
            build.problems.append(Problem(sheet.name, None, None,
                                          f"与「{tables[spec.kind].sheet}」是同一种表，只能有一个"))
            continue
        tables[spec.kind] = make_table(spec, sheet.name, sheet.rows)
    if sheets is not None and not tables:
        build.problems.append(Problem("工作簿", None, None, "没有可导入的工作表（应有："
                                                            f"{_names()}）"))
    for kind in KINDS:
        table = tables.get(kind.spec.kind)
        if table is None:
            continue
        if table.unknown:
            build.warnings.append(f"「{table.sheet}」表中未识别的列未导入：{'、'.join(table.unknown)}")
        if not table.rows and not table.problems:
            build.warnings.append(f"「{table.sheet}」表没有数据行，未导入（现有记录保留）")
            continue
        if any(p.row == table.header_row for p in table.problems):
            build.problems += table.problems  # a missing column: reading rows means nothing
            continue
        kind.read(table, build)
        build.problems += table.problems
    said = apply_boundaries(build, boundary, key) if boundary is not None else ""
    for kind in KINDS:
        kind.check(build)
    _devices(build)
    if len(build.years) > 1:
        build.warnings.append(f"「年份」列有多个年份：{'、'.join(map(str, sorted(build.years)))}")
    data = build.data()
    if not build.problems:
        build.problems += [Problem("台账", None, None, f"校验未通过：{line}")
                           for line in validate_registry(data)]
    return Candidate(data, build.problems, build.warnings, tuple(sorted(build.read)),
                     max(build.years) if build.years else None, said)


def _names() -> str:
    return "、".join(f"「{k.spec.name}」" for k in KINDS)


def _devices(build: Build) -> None:
    """Loudspeakers are kept: the regions and grids they stand in must stay."""
    for did, d in sorted(build.devices.items()):
        if build.is_broken("regions", d.region) or build.is_broken("grids", d.grid):
            continue
        if d.region not in build.regions:
            build.at("regions", d.region, None, f"应急广播 {did}（{d.name}）所在的村 {d.region} "
                     "不能删除", "区划")
        elif d.grid and d.grid not in build.grids:
            build.at("grids", d.grid, None, f"应急广播 {did}（{d.name}）所在的网格 {d.grid} "
                     "不能删除", "网格")
        elif d.grid and build.grids[d.grid].village != d.region:
            build.at("grids", d.grid, "村ADCD", f"应急广播 {did}（{d.name}）在村 {d.region}，"
                     "其网格不能移到别的村", "网格")
