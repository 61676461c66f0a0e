"""Read a boundary file in the sandbox child: GeoJSON or a zipped shapefile -> WGS-84 rings.

The coordinate system is read from the file: a shapefile's .prj, a GeoJSON's `crs` member
(none: RFC 7946's WGS 84, said so in the reply). GCJ-02 is never declared by any file: the
caller names it (`crs="gcj02"`), and the file must then declare a geographic system or none.
Accepted: CGCS2000 (EPSG:4490) and its Gauss-Krüger zones (EPSG:4491-4554), WGS 84, and
GCJ-02; CGCS2000 is taken as WGS 84 (they differ by centimetres). Other datums (Beijing 1954,
Xi'an 1980) are refused: converting them needs parameters a file does not carry.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from warnbus.registry_io.gcj02 import gcj02_to_wgs84
from warnbus.registry_io.sandbox import MAX_UNPACKED, Refused, check_zip

MAX_FEATURES = 200_000
MAX_RING_POINTS = 100_000
MAX_POINTS = 5_000_000  # all features together
_SIDECARS = (".shp", ".shx", ".dbf", ".prj", ".cpg")
_DATUMS = ("China 2000", "World Geodetic System 1984")


def _open(payload: bytes, name: str, unpacked: int) -> tuple[Any, str | None, str]:
    """(pyogrio raw.read result, declared CRS or None, what the file is)."""
    from pyogrio import errors, raw

    head = payload[:64].lstrip(b"\xef\xbb\xbf \t\r\n")
    try:
        if payload[:4] == b"PK\x03\x04":
            z = check_zip(payload, limit=unpacked)
            shps = [n for n in z.namelist() if n.lower().endswith(".shp")
                    and not n.startswith("__MACOSX")]
            if len(shps) != 1:
                raise Refused(f"zip 中应有且只有一个 .shp 文件（找到 {len(shps)} 个）")
            stem = shps[0][:-4]
            with tempfile.TemporaryDirectory() as tmp:
                for member in z.namelist():
                    low = member.lower()
                    if member.startswith(stem) and low[len(stem):] in _SIDECARS:
                        (Path(tmp) / ("layer" + low[len(stem):])).write_bytes(z.read(member))
                if not (Path(tmp) / "layer.dbf").exists():
                    raise Refused("shapefile 缺少 .dbf 文件（属性表）")
                got = raw.read(str(Path(tmp) / "layer.shp"))
            return got, got[0].get("crs"), f"shapefile {PurePosixPath(shps[0]).name}"
        if head[:1] == b"{":
            try:
                declared = "crs" in json.loads(payload)
            except ValueError as e:
                raise Refused(f"GeoJSON 格式错误：{str(e)[:120]}") from e
            got = raw.read(payload)
            return got, got[0].get("crs") if declared else None, "GeoJSON"
    except errors.DataSourceError as e:
        raise Refused(f"无法读取边界文件：{str(e)[:200]}") from e
    raise Refused("边界文件应为 GeoJSON（.geojson / .json）或压缩的 shapefile（.zip）")


def _crs(declared: str | None, option: str, kind: str) -> tuple[Any, bool, str]:
    """(pyproj CRS of the coordinates, whether they are GCJ-02, what the reply says)."""
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    gcj = option.lower().replace("-", "") == "gcj02"
    try:
        given = CRS.from_user_input(option) if option and not gcj else None
        crs = CRS.from_user_input(declared) if declared else None
    except CRSError as e:
        raise Refused(f"无法识别的坐标系：{str(e)[:120]}") from e
    if crs is None and given is None and not gcj:
        if kind == "GeoJSON":
            return CRS.from_epsg(4326), False, "未声明（GeoJSON 按 RFC 7946 视为 WGS 84）"
        raise Refused("shapefile 缺少坐标系（.prj 文件）：请在 zip 中附上 .prj，或指定坐标系")
    if given is not None and crs is not None and not given.equals(crs, ignore_axis_order=True):
        raise Refused(f"文件声明的坐标系是「{crs.name}」，与指定的「{given.name}」不一致")
    crs = crs or given or CRS.from_epsg(4490)
    datum = crs.datum.name if crs.datum else ""
    if not any(d in datum for d in _DATUMS):
        raise Refused(f"坐标系「{crs.name}」不是 CGCS2000 或 WGS 84："
                      "请先转换为 CGCS2000（EPSG:4490）")
    if gcj:
        if not crs.is_geographic:
            raise Refused(f"GCJ-02 坐标应为经纬度，文件声明的是投影坐标系「{crs.name}」")
        return crs, True, "GCJ-02（按指定，已转换为 WGS 84）"
    return crs, False, f"{crs.name}（{crs.to_string()}）"


def read_boundaries(payload: bytes, name: str, option: str, unpacked: int = MAX_UNPACKED,
                    ) -> dict[str, Any]:
    """The features of a boundary file: their attributes as text and their ring in WGS 84
    (lat, lon), or why a feature has none."""
    import shapely
    from pyproj import CRS, Transformer

    (meta, _fids, wkbs, columns), declared, kind = _open(payload, name, unpacked)
    crs, gcj, said = _crs(declared, option, kind)
    if len(wkbs) > MAX_FEATURES:
        raise Refused(f"要素过多（{len(wkbs)} 个，最多 {MAX_FEATURES} 个）")
    to_geo = None
    if not crs.is_geographic or not crs.equals(CRS.from_epsg(4326), ignore_axis_order=True):
        to_geo = Transformer.from_crs(crs, CRS.from_epsg(4490), always_xy=True)
    fields = [str(f) for f in meta["fields"]]
    features = []
    points = 0
    for i, wkb in enumerate(wkbs):
        attrs = {f: _text(col[i]) for f, col in zip(fields, columns, strict=True)}
        feature: dict[str, Any] = {"n": i + 1, "attrs": attrs}
        try:
            feature["ring"] = _ring(shapely.from_wkb(wkb) if wkb is not None else None, to_geo, gcj)
            points += len(feature["ring"])
        except Refused as e:
            feature["error"] = str(e)
        if points > MAX_POINTS:
            raise Refused(f"边界点数过多（所有要素共超过 {MAX_POINTS} 个点）")
        features.append(feature)
    return {"kind": kind, "crs": said, "fields": fields, "features": features}


def _ring(geom: Any, to_geo: Any, gcj: bool) -> list[list[float]]:
    import shapely

    if geom is None or geom.is_empty:
        raise Refused("没有几何图形")
    if geom.geom_type == "MultiPolygon":
        if len(geom.geoms) != 1:
            raise Refused(f"边界有 {len(geom.geoms)} 个部分：一个网格应为一个面")
        geom = geom.geoms[0]
    if geom.geom_type != "Polygon":
        raise Refused(f"几何类型是 {geom.geom_type}，网格边界应为面（Polygon）")
    if len(geom.interiors):
        raise Refused("边界中有洞：网格边界应为不带洞的面")
    xy = shapely.get_coordinates(geom.exterior)
    if len(xy) > MAX_RING_POINTS:
        raise Refused(f"边界点数过多（{len(xy)} 个，最多 {MAX_RING_POINTS} 个）")
    x, y = xy[:, 0], xy[:, 1]
    if to_geo is not None:
        x, y = to_geo.transform(x, y)
    if gcj:
        x, y = gcj02_to_wgs84(np.asarray(x), np.asarray(y))
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))) or np.any(np.abs(y) > 90) or np.any(
            np.abs(x) > 180):
        raise Refused("坐标超出经纬度范围：坐标系可能不对")
    return [[round(float(b), 7), round(float(a), 7)] for a, b in zip(x, y, strict=True)]


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, (bytes, bytearray)):
        return ""
    return str(value).strip()
