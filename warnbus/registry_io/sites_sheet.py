"""The 场所 sheet: hazard points, reservoirs and ponds, danger zones, shelters.

One row per site: its kind, the village (and grid) it lies in, a point (经度, 纬度, CGCS2000
degrees) and its counts (户数 and 人数 of a danger zone, 容纳人数 of a shelter). A site the
registry holds with a polygon keeps it (boundaries are not in the workbook); a site's range
may come from a boundary file, matched by 场所编号 as grids are by 网格编号. A new site's grid
may be left empty: it is the grid of its village its point (its range) lies in. A site out of its
village (its grid), beyond about 1 m, is a problem of its row with the distance. Its people
are in the 场所责任人 sheet (`site_people_sheet.py`); without that sheet a site keeps its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import msgspec

from warnbus.domain.models import RegionLevel, RegistryData, Site, SiteKind
from warnbus.domain.sites import SITE_KIND_ZH
from warnbus.registry_io import cells
from warnbus.registry_io.kinds import _YEAR, Build, _cell, _name_check, _year, keyed_records
from warnbus.registry_io.sheets import Column, SheetSpec, Table
from warnbus.site_checks import grids_by_village, owners_of, placement_problem, site_spot

SPEC = SheetSpec("sites", "场所", (
    Column("id", "场所编号", ("编号",), width=20, as_text=True,
           hint="保留导出时的编号；新增场所可留空（自动编号）"),
    Column("name", "名称", ("场所名称", "隐患点名称"), required=True, width=22),
    Column("kind", "类型", ("场所类型",), required=True, width=14,
           hint=" / ".join(SITE_KIND_ZH.values())),
    Column("code", "统一编号", ("隐患点编号", "统一编码"), width=16, as_text=True,
           hint="如地质灾害隐患点的统一编号（仅登记，不作编号用）"),
    Column("township", "乡镇", ("乡镇(街道)", "乡镇名称"), width=10, hint="仅供核对"),
    Column("village", "村ADCD", ("所在村代码", "村代码", "村区划代码"), required=True, width=16,
           as_text=True, hint="所在村（社区）的12位代码（或15位 ADCD）"),
    Column("village_name", "所在村", ("村名", "村网格名", "村(社区)"), width=12, hint="仅供核对"),
    Column("grid", "网格编号", ("所在网格",), width=18, as_text=True,
           hint="可留空：按经纬度落在本村的哪个网格确定"),
    Column("lon", "经度", ("东经",), width=12, as_text=True, hint="度，如 112.50531（CGCS2000）"),
    Column("lat", "纬度", ("北纬",), width=12, as_text=True, hint="度，如 29.52713"),
    Column("households", "户数", ("受威胁户数",), width=8, hint="危险区填写"),
    Column("residents", "人数", ("受威胁人数", "人口"), width=8, hint="危险区填写"),
    Column("capacity", "容纳人数", ("可容纳人数",), width=10, hint="避灾场所填写"),
    _YEAR,
), aliases=("场所信息", "隐患点", "重点部位"),
    hint="每行一处；责任人在「场所责任人」表；已有范围（多边形）的场所保留其范围")

_KIND_WORDS: Mapping[str, SiteKind] = {
    **{v: k for k, v in SITE_KIND_ZH.items()}, **{k.value: k for k in SiteKind},
    "隐患点": SiteKind.HAZARD_POINT, "地灾隐患点": SiteKind.HAZARD_POINT,
    "地质灾害点": SiteKind.HAZARD_POINT, "小型水库": SiteKind.RESERVOIR,
    "山洪危险区": SiteKind.DANGER_ZONE, "危险区域": SiteKind.DANGER_ZONE,
    "避灾点": SiteKind.SHELTER, "避险场所": SiteKind.SHELTER, "避灾安置点": SiteKind.SHELTER,
    "安置点": SiteKind.SHELTER, "塘坝": SiteKind.POND,
}
_PREFIX: Mapping[SiteKind, str] = {SiteKind.HAZARD_POINT: "hp-", SiteKind.RESERVOIR: "rs-",
                                   SiteKind.POND: "pd-", SiteKind.DANGER_ZONE: "dz-",
                                   SiteKind.SHELTER: "sh-"}
_MAX_COUNT = 10_000_000


def _kind(value: cells.Cell) -> SiteKind:
    return cells.choice(value, _KIND_WORDS, "类型", SITE_KIND_ZH.values())


def _degrees(value: cells.Cell) -> float | None:
    word = cells.ascii_text(value, limit=30).removesuffix("°")
    if not word:
        return None
    try:
        out = float(word)
    except ValueError:
        raise cells.CellError("应为十进制度数，如 112.50531") from None
    if out != out or abs(out) > 180:
        raise cells.CellError("应为十进制度数，如 112.50531")
    return out


def _count(value: cells.Cell) -> int | None:
    word = cells.ascii_text(value, limit=12).removesuffix("户").removesuffix("人")
    if not word:
        return None
    if not word.isdigit() or int(word) > _MAX_COUNT:
        raise cells.CellError("应为不小于0的整数")
    return int(word)


class Sites:
    spec = SPEC

    def read(self, table: Table, build: Build) -> None:
        by_village = grids_by_village(build.grids)
        build.sites = keyed_records(
            table, build, "sites",
            lambda n, row, sid: self._row(table, build, by_village, n, row, sid or ""),
            lambda site: _PREFIX[site.kind] + site.village + "-",
            [*build.base.sites, *build.grids],
            clash=lambda sid: (f"编号与网格 {sid} 相同（场所与网格编号不能重复）"
                               if sid in build.grids else None))
        build.read.add("sites")

    def _row(self, table: Table, build: Build, by_village: Mapping[str, list[str]], n: int,
             row: Sequence[cells.Cell], sid: str) -> Site | None:
        """One row's site, or None (its problems are in the table)."""
        name = table.text(n, row, "name")
        kind = _cell(table, n, row, "kind", _kind)
        code = _cell(table, n, row, "code", cells.ascii_text) if table.has("code") else ""
        village = _cell(table, n, row, "village", cells.region_code)
        grid = _cell(table, n, row, "grid", cells.ascii_text) if table.has("grid") else ""
        lon = _cell(table, n, row, "lon", _degrees) if table.has("lon") else None
        lat = _cell(table, n, row, "lat", _degrees) if table.has("lat") else None
        counts: dict[str, int | None] = {}
        for k in ("households", "residents", "capacity"):
            got = _cell(table, n, row, k, _count) if table.has(k) else None
            counts[k] = got if isinstance(got, int) else None
        _year(table, build, n, row)
        if name == "":
            table.problem(n, "name", "名称不能为空")
        if not isinstance(village, str) or not isinstance(kind, SiteKind) or not name:
            return None
        place = build.regions.get(village)
        if place is None or place.level is not RegionLevel.VILLAGE:
            if not build.is_broken("regions", village):
                table.problem(n, "village", f"{village} 不是「区划」中的村（社区）")
            return None
        if table.has("village_name"):
            _name_check(table, build, n, row, "village_name", village)
        if table.has("township"):
            _name_check(table, build, n, row, "township", place.parent)
        if not self._counts(table, n, kind, counts):
            return None
        point = self._point(table, n, lon, lat)
        if point is False:
            return None
        old = build.base.sites.get(sid) if sid else None
        gid = grid if isinstance(grid, str) and grid else None
        if gid is not None and not self._grid(table, build, n, gid, village):
            return None
        site = Site(sid, name, kind, village, gid,
                    point if isinstance(point, tuple) else None,
                    old.polygon if old else (), old.people if old else (),
                    counts["households"], counts["residents"], counts["capacity"],
                    code if isinstance(code, str) and code else None)
        if site.point is None and not site.polygon:
            return site  # its range may come from the boundary file (`check` says if not)
        return self._placed(table, build, by_village, n, site)

    @staticmethod
    def _counts(table: Table, n: int, kind: SiteKind, counts: dict[str, int | None]) -> bool:
        for key, ok in (("households", kind is SiteKind.DANGER_ZONE),
                        ("residents", kind is SiteKind.DANGER_ZONE),
                        ("capacity", kind is SiteKind.SHELTER)):
            if counts[key] is not None and not ok:
                table.problem(n, key, f"{SITE_KIND_ZH[kind]}不登记{table.spec.column(key).header}"
                              "（户数、人数只用于危险区，容纳人数只用于避灾场所）")
                return False
        return True

    @staticmethod
    def _point(table: Table, n: int, lon: object, lat: object
               ) -> tuple[float, float] | bool | None:
        """(lat, lon), None when both are empty, False after a problem."""
        if lon is None and lat is None:
            return None
        if not isinstance(lon, float) or not isinstance(lat, float):
            missing = "lat" if isinstance(lon, float) else "lon"
            table.problem(n, missing, "经度和纬度须同时填写")
            return False
        if abs(lat) > 90 and abs(lon) <= 90:
            table.problem(n, "lat", f"纬度 {lat} 超出 -90..90：经度和纬度是否填反了？")
            return False
        if abs(lat) > 90:
            table.problem(n, "lat", f"纬度 {lat} 超出 -90..90")
            return False
        return (lat, lon)

    @staticmethod
    def _grid(table: Table, build: Build, n: int, gid: str, village: str) -> bool:
        grid = build.grids.get(gid)
        if grid is None:
            if not build.is_broken("grids", gid):
                table.problem(n, "grid", f"「网格」中没有编号为 {gid} 的网格")
            return False
        if grid.village != village:
            table.problem(n, "grid", f"网格 {gid}（{grid.name}）属于村 {grid.village}，"
                          f"不在所在村 {village}")
            return False
        return True

    @staticmethod
    def _placed(table: Table, build: Build, by_village: Mapping[str, list[str]], n: int,
                site: Site) -> Site | None:
        """The site in its grid: a new one's found by its point when none is named; out of its
        village or grid: a problem with how far."""
        if site.grid is None and site.point is not None and site.id not in build.base.sites:
            spot = site_spot(site)
            owners = owners_of(build.grids, by_village, site, spot) if spot else []
            if len(owners) == 1:
                site = msgspec.structs.replace(site, grid=owners[0])
        said = placement_problem(build.grids, by_village, site)
        if said:
            table.problem(n, "lon" if site.point is not None else "grid", said)
            return None
        return site

    def check(self, build: Build) -> None:
        by_village = grids_by_village(build.grids)
        if "sites" in build.read:
            self._ranged(build, by_village)
            return
        for sid, s in build.sites.items():  # sites kept while the grids or regions changed
            village = build.regions.get(s.village)
            if village is None or village.level is not RegionLevel.VILLAGE:
                build.at("regions", s.village, None, f"场所 {sid}（{s.name}）所在的村 {s.village} "
                         "已不在「区划」中", "区划")
            elif s.grid and (s.grid not in build.grids or build.grids[s.grid].village != s.village):
                build.at("grids", s.grid, None, f"场所 {sid}（{s.name}）所在的网格 {s.grid} "
                         "已不在「网格」中（或已移到别的村）", "网格")
            elif said := placement_problem(build.grids, by_village, s):
                build.at("grids", s.grid or "", None, f"场所 {sid}（{s.name}）：{said}", "网格")

    @staticmethod
    def _ranged(build: Build, by_village: Mapping[str, list[str]]) -> None:
        """The sites read without a place: their range from the boundary file (placed in
        their village as a point is), else a problem of their row."""
        for sid, s in list(build.sites.items()):
            if s.point is not None or (s.polygon and sid in build.base.sites
                                       and s.polygon == build.base.sites[sid].polygon):
                continue
            where = build.where.get(("sites", sid))
            if where is None:
                continue
            if not s.polygon:
                build.at("sites", sid, "经度",
                         "没有位置：请填写经度和纬度，或在边界文件中按场所编号给出范围", SPEC.name)
                continue
            if s.grid is None:
                spot = site_spot(s)
                owners = owners_of(build.grids, by_village, s, spot) if spot else []
                if len(owners) == 1:
                    s = build.sites[sid] = msgspec.structs.replace(s, grid=owners[0])
            said = placement_problem(build.grids, by_village, s)
            if said:
                build.at("sites", sid, "网格编号", said, SPEC.name)

    def rows(self, data: RegistryData, year: int | None) -> Iterable[Sequence[str | None]]:
        regions = data.regions
        for sid in sorted(data.sites, key=lambda k: (data.sites[k].village, k)):
            s = data.sites[sid]
            village = regions.get(s.village)
            town = regions.get(village.parent or "") if village else None
            yield (sid, s.name, SITE_KIND_ZH.get(s.kind, s.kind), s.code,
                   town.name if town else None, s.village, village.name if village else None,
                   s.grid, _num(s.point[1]) if s.point else None,
                   _num(s.point[0]) if s.point else None, _int(s.households),
                   _int(s.residents), _int(s.capacity), str(year) if year else None)


def _num(value: float) -> str:
    return repr(value)


def _int(value: int | None) -> str | None:
    return None if value is None else str(value)
