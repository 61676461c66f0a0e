"""Boundaries from a file onto the grids of a registry being built, matched by a key field.

The file is read in the sandbox child (`gisread`); here its features are matched to grids by
the key field's value (a grid id, else a grid name that only one grid has), or to sites the
same way (a danger zone's or a reservoir's range), each problem located at the feature
(「边界文件」第N个要素).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import msgspec
import shapely

from warnbus.registry_io.kinds import Build
from warnbus.registry_io.sandbox import run_child
from warnbus.registry_io.sheets import BOUNDARY_SHEET, Problem

#: Fields tried, in order, when the key field is not named.
KEY_FIELDS = ("网格编号", "grid_id", "GRID_ID", "WGBH", "id", "ID", "网格名", "网格名称", "name",
              "NAME", "场所编号")


@dataclass(frozen=True)
class BoundaryFile:
    name: str
    kind: str  # GeoJSON / shapefile x.shp
    crs: str  # what the coordinates were, in words
    fields: list[str]
    features: list[dict[str, Any]]


async def read_boundary_file(payload: bytes, name: str, crs: str = "") -> BoundaryFile:
    """Parse a boundary file in the sandbox; RegistryImportError (Chinese) when it cannot be."""
    got = await run_child("boundaries", payload, name=name, crs=crs)
    return BoundaryFile(name, str(got["kind"]), str(got["crs"]), [str(f) for f in got["fields"]],
                        list(got["features"]))


def apply_boundaries(build: Build, bf: BoundaryFile, key: str = "") -> str:
    """Set the polygon of each grid a feature names; return what was done, in words."""
    field = key or next((f for f in KEY_FIELDS if f in bf.fields), "")
    if field not in bf.fields:
        build.problems.append(Problem(BOUNDARY_SHEET, None, key or None,
                                      "没有用来对应网格的字段（可用字段："
                                      f"{'、'.join(bf.fields) or '无'}；"
                                      f"应为{'、'.join(KEY_FIELDS[:3])}或网格名）"))
        return f"{bf.kind}，坐标系 {bf.crs}"
    names = Counter(g.name for g in build.grids.values())
    by_name = {g.name: gid for gid, g in build.grids.items() if names[g.name] == 1}
    # A site (a danger zone, a reservoir) by its id, or a name only one site has.
    site_names = Counter(s.name for s in build.sites.values())
    sites = {s.name: sid for sid, s in build.sites.items() if site_names[s.name] == 1}
    done: dict[str, int] = {}
    placed: dict[str, int] = {}
    for f in bf.features:
        n, value = int(f["n"]), str(f["attrs"].get(field, "")).strip()
        if "error" in f:
            build.problems.append(Problem(BOUNDARY_SHEET, n, None, str(f["error"])))
            continue
        gid = value if value in build.grids else by_name.get(value)
        if gid is None and (build.is_broken("grids", value) or build.is_broken("sites", value)):
            continue  # the grid's (site's) own row says what is wrong
        sid = None if gid else (value if value in build.sites else sites.get(value))
        if sid is not None:
            ring = _take(build, f, n, field, ("场所", sid, "范围"), placed)
            if ring:
                build.sites[sid] = msgspec.structs.replace(build.sites[sid], polygon=ring)
            continue
        if not value or gid is None:
            why = ("不止一个网格（场所）叫这个名字，请用编号" if names.get(value, 0) > 1
                   or site_names.get(value, 0) > 1 else "台账中没有这个编号或名称的网格或场所")
            build.problems.append(Problem(BOUNDARY_SHEET, n, field, f"「{value}」：{why}"))
            continue
        ring = _take(build, f, n, field, ("网格", gid, "边界"), done)
        if ring:
            build.grids[gid] = msgspec.structs.replace(build.grids[gid], polygon=ring)
    return (f"{bf.kind}，坐标系 {bf.crs}，按字段「{field}」对应，"
            f"{len(done)} 个网格的边界已更新" + (f"，{len(placed)} 个场所的范围已更新"
                                          if placed else ""))


def _take(build: Build, f: dict[str, Any], n: int, field: str, what: tuple[str, str, str],
          done: dict[str, int]) -> tuple[tuple[float, float], ...]:
    """The ring feature `n` gives a grid or site (`what`: its kind, id and what the ring is
    called); () after a problem: another feature gave it already, or it is no polygon."""
    kind, key, noun = what
    if key in done:
        build.problems.append(Problem(BOUNDARY_SHEET, n, field,
                                      f"{kind} {key} 已由第{done[key]}个要素给出{noun}"))
        return ()
    ring, reason = _ring(f)
    if reason:
        build.problems.append(Problem(BOUNDARY_SHEET, n, None,
                                      f"{kind} {key} 的{noun}无效（{reason}）"))
        return ()
    done[key] = n
    return ring


def _ring(f: dict[str, Any]) -> tuple[tuple[tuple[float, float], ...], str]:
    """A feature's ring as (lat, lon) points, and why it is no polygon ("" when it is one)."""
    ring = tuple((float(lat), float(lon)) for lat, lon in f["ring"])
    poly = shapely.Polygon([(lon, lat) for lat, lon in ring]) if len(ring) >= 4 else None
    if poly is None or not poly.is_valid or poly.area <= 0:
        return ring, shapely.is_valid_reason(poly) if poly is not None else "少于4个点"
    return ring, ""
