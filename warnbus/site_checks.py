"""The checks of a registry's sites, one line per problem, in Chinese (offices read them at
import). Run by `warnbus.registry.validate_registry`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import shapely

from warnbus.domain.models import Grid, RegionLevel, RegistryData, Site, SiteKind
from warnbus.domain.sites import SITE_KIND_ZH, SITE_ROLE_ZH, SITE_ROLES
from warnbus.registry_checks import ID_BAD, ring_faults

#: How far (degrees, about 1 m) a site may lie outside its grid: shared edges, rounding.
_SLACK = 1e-5
_RING_ZH = {"open": "范围多边形须为首尾相同、至少4个点的闭合环",
            "range": "范围多边形有点超出纬度 -90..90 / 经度 -180..180"}


def site_label(site: Site, key: str | None = None) -> str:
    """How a problem names a site: its kind, id (the one it is filed under) and name."""
    return f"{SITE_KIND_ZH.get(site.kind, site.kind)} {key or site.id}（{site.name}）"


def site_problems(data: RegistryData) -> Iterable[str]:
    """Every problem of the sites of `data`."""
    for key, site in data.sites.items():
        where = site_label(site, key)
        if key != site.id:
            yield f"{where}：登记的编号与其自身编号 {site.id} 不同"
        if not key or ID_BAD.search(key):
            yield f"{where}：编号不能为空，也不能含“|”“,”“:”或空白"
        if key in data.grids:
            yield f"{where}：编号与网格 {key} 相同（场所与网格编号不能重复）"
        yield from _where_problems(data, site, where)
        yield from _people_problems(data, site, where)
        yield from _count_problems(site, where)
    bad = {k: s.polygon for k, s in data.sites.items() if s.polygon}
    for key, fault, detail in ring_faults(bad):
        yield f"{site_label(data.sites[key], key)}：" + _RING_ZH.get(fault, "范围多边形无效"
                                                                            f"（{detail}）")
    yield from _placement_problems(data, {k for k, *_ in ring_faults(bad)})


def _where_problems(data: RegistryData, site: Site, where: str) -> Iterable[str]:
    village = data.regions.get(site.village)
    if village is None or village.level is not RegionLevel.VILLAGE:
        yield f"{where}：所在村 {site.village} 不是台账中的村(社区)"
    if site.grid is not None:
        grid = data.grids.get(site.grid)
        if grid is None:
            yield f"{where}：所在网格 {site.grid} 不存在"
        elif grid.village != site.village:
            yield f"{where}：所在网格 {site.grid} 属于 {grid.village}，不在所在村 {site.village}"
    if site.point is None and not site.polygon:
        yield f"{where}：没有位置（需要坐标点或范围多边形）"
    if site.point is not None and (abs(site.point[0]) > 90 or abs(site.point[1]) > 180):
        yield f"{where}：坐标点 {site.point[0]}, {site.point[1]} 超出纬度 -90..90 / 经度 -180..180"


def _people_problems(data: RegistryData, site: Site, where: str) -> Iterable[str]:
    if not site.people:
        yield f"{where}：没有责任人"
    allowed = SITE_ROLES.get(site.kind, frozenset())
    seen: set[tuple[str, str]] = set()
    for sp in site.people:
        role = SITE_ROLE_ZH.get(sp.role, sp.role)
        if (sp.person, sp.role) in seen:
            yield f"{where}：责任人 {sp.person}（{role}）重复"
        seen.add((sp.person, sp.role))
        if sp.person not in data.persons:
            yield f"{where}：责任人 {sp.person} 不在人员台账中"
        if sp.role not in allowed:
            kinds = "、".join(SITE_ROLE_ZH[r] for r in sorted(allowed))
            yield (f"{where}：责任人 {sp.person} 的职责“{role}”不适用于"
                   f"{SITE_KIND_ZH.get(site.kind, site.kind)}（可用：{kinds}）")


def _count_problems(site: Site, where: str) -> Iterable[str]:
    for value, name in ((site.households, "户数"), (site.residents, "人数"),
                        (site.capacity, "容纳人数")):
        if value is not None and value < 0:
            yield f"{where}：{name}不能为负数"
    if site.kind is not SiteKind.DANGER_ZONE and (site.households is not None
                                                  or site.residents is not None):
        yield f"{where}：只有危险区登记户数和人数"
    if site.kind is not SiteKind.SHELTER and site.capacity is not None:
        yield f"{where}：只有避灾场所登记容纳人数"


def _placement_problems(data: RegistryData, bad_rings: set[str]) -> Iterable[str]:
    """A site lies in its grid (or, with none named, in a grid of its village)."""
    by_village = grids_by_village(data.grids)
    for key, site in data.sites.items():
        if key in bad_rings and site.point is None:
            continue
        said = placement_problem(data.grids, by_village, site)
        if said:
            yield f"{site_label(site, key)}：{said}"


def grids_by_village(grids: Mapping[str, Grid]) -> dict[str, list[str]]:
    by_village: dict[str, list[str]] = {}
    for g in grids.values():
        by_village.setdefault(g.village, []).append(g.id)
    return by_village


def site_spot(site: Site) -> shapely.Point | None:
    """Where a site is for placing it: its point, else a point inside its polygon."""
    if site.point is not None and abs(site.point[0]) <= 90 and abs(site.point[1]) <= 180:
        return shapely.Point(site.point[1], site.point[0])
    if site.polygon and next(ring_faults({site.id: site.polygon}), None) is None:
        return shapely.Polygon([(lon, lat) for lat, lon in site.polygon]).point_on_surface()
    return None


def owners_of(grids: Mapping[str, Grid], by_village: Mapping[str, list[str]], site: Site,
              spot: shapely.Point) -> list[str]:
    """The grids of the site's village that hold `spot` (within about 1 m)."""
    out = []
    for gid in by_village.get(site.village, []):
        shape = shapely.Polygon([(lon, lat) for lat, lon in grids[gid].polygon])
        if shape.is_valid and shape.buffer(_SLACK).covers(spot):
            out.append(gid)
    return out


def placement_problem(grids: Mapping[str, Grid], by_village: Mapping[str, list[str]],
                      site: Site) -> str | None:
    """Why a site is not where the registry says (its grid, else a grid of its village);
    with how far off it is, in metres. None when it is (or there is nothing to check)."""
    spot = site_spot(site)
    if spot is None:
        return None
    if site.grid is not None:
        owners = [site.grid] if site.grid in grids else []
        place = f"所在网格 {site.grid}"
    else:
        owners = by_village.get(site.village, [])
        place = f"所在村 {site.village} 的任何网格"
    if not owners:
        return None
    shapes = [shapely.Polygon([(lon, lat) for lat, lon in grids[g].polygon]) for g in owners]
    if any(s.is_valid and s.buffer(_SLACK).covers(spot) for s in shapes):
        return None
    off = min(s.distance(spot) for s in shapes if s.is_valid) if any(
        s.is_valid for s in shapes) else 0.0
    return (f"位置（{spot.y:.5f}, {spot.x:.5f}）不在{place}内"
            + (f"（相距约 {off * 111_000:.0f} 米）" if off else ""))
