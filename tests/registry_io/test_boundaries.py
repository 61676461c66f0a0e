"""Boundaries from GeoJSON and zipped shapefiles in CGCS2000 (geographic and Gauss-Krüger
zones) and GCJ-02 land on the same grids; the CRS is read from the file, never guessed."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
import shapely
from xlsx_kit import geojson, preview, sample, shapefile_zip

from warnbus.errors import RegistryImportError
from warnbus.registry_io.gcj02 import gcj02_to_wgs84, wgs84_to_gcj02

VILLAGE = "430623101001"  # 柳岗社区, about 112.5 E: Gauss-Krüger 3° CM 111E, 6° zone 19
SHIFT = 0.0002  # the new survey moved every boundary ~22 m north


def _new_rings() -> dict[str, tuple[tuple[float, float], ...]]:
    grids = sample().data.grids
    return {gid: tuple((lat + SHIFT, lon) for lat, lon in g.polygon)
            for gid, g in sorted(grids.items()) if g.village == VILLAGE}


def _by_name(rings: dict[str, tuple[tuple[float, float], ...]]) -> dict[str, object]:
    grids = sample().data.grids
    return {grids[gid].name: ring for gid, ring in rings.items()}


def _assert_landed(got: object, rings: dict[str, tuple[tuple[float, float], ...]]) -> None:
    data = got.candidate.data  # type: ignore[attr-defined]
    assert got.candidate.problems == [], [str(p) for p in got.candidate.problems]  # type: ignore[attr-defined]
    changed = {c.id for c in got.diff.changes}  # type: ignore[attr-defined]
    assert changed == set(rings)
    for gid, ring in rings.items():
        # Same polygon (a shapefile turns outer rings clockwise: compare normalised shapes).
        a, b = (shapely.normalize(shapely.Polygon([(x, y) for y, x in r]))
                for r in (data.grids[gid].polygon, ring))
        assert shapely.equals_exact(a, b, tolerance=1e-6), gid


async def test_geojson_in_cgcs2000_with_its_crs_member() -> None:
    rings = _new_rings()
    got = await preview(None, boundary=geojson(rings, crs="urn:ogc:def:crs:EPSG::4490"))
    _assert_landed(got, rings)
    assert got.candidate.boundary.startswith(
        "GeoJSON，坐标系 China Geodetic Coordinate System 2000")
    assert got.candidate.boundary.endswith(f"按字段「网格编号」对应，{len(rings)} "
                                           "个网格的边界已更新")


@pytest.mark.parametrize("epsg", [4546, 4497, 4490])
async def test_zipped_shapefile_in_a_gauss_kruger_zone(epsg: int) -> None:
    """Projected CGCS2000 (3° CM 111E, 6° zone 19) or geographic, with a GBK .dbf in a
    folder of the zip, as desktop GIS writes them."""
    rings = _new_rings()
    blob = shapefile_zip(rings, epsg=epsg, folder="边界/")
    got = await preview(None, boundary=blob, name="grids.zip")
    _assert_landed(got, rings)
    assert f"EPSG:{epsg}" in got.candidate.boundary


async def test_gcj02_named_by_the_caller_is_converted() -> None:
    """Coordinates taken from a web map (GCJ-02, ~500 m off here) keyed by grid name."""
    rings = _new_rings()
    blob = geojson(_by_name(rings), field="网格名", transform=wgs84_to_gcj02)  # type: ignore[arg-type]
    got = await preview(None, boundary=blob, crs="gcj02")
    _assert_landed(got, rings)
    assert "GCJ-02（按指定，已转换为 WGS 84）" in got.candidate.boundary
    # The same file read as if it were WGS 84 lands hundreds of metres away: the option matters.
    wrong = await preview(None, boundary=blob)
    first = next(iter(rings))
    off = np.abs(np.array(wrong.candidate.data.grids[first].polygon) - np.array(rings[first]))
    assert off.max() > 0.002
    assert "按 RFC 7946 视为 WGS 84" in wrong.candidate.boundary


def test_gcj02_inverse_round_trips() -> None:
    lon = np.array([112.5, 116.391, 121.47, 87.6, 0.0])
    lat = np.array([29.67, 39.907, 31.23, 43.8, 51.5])  # the last is outside China
    g_lon, g_lat = wgs84_to_gcj02(lon, lat)
    assert abs(g_lon[0] - lon[0]) > 1e-3 and g_lon[4] == lon[4]
    back_lon, back_lat = gcj02_to_wgs84(g_lon, g_lat)
    assert np.allclose(back_lon, lon, atol=1e-8) and np.allclose(back_lat, lat, atol=1e-8)


@pytest.mark.parametrize(("blob", "crs", "message"), [
    (lambda: shapefile_zip(_new_rings(), epsg=None), "",
     "shapefile 缺少坐标系（.prj 文件）：请在 zip 中附上 .prj，或指定坐标系"),
    (lambda: shapefile_zip(_new_rings(), epsg=4546), "gcj02",
     "GCJ-02 坐标应为经纬度，文件声明的是投影坐标系「CGCS2000 / 3-degree Gauss-Kruger CM 111E」"),
    (lambda: shapefile_zip(_new_rings(), epsg=4546), "EPSG:4490",
     "文件声明的坐标系是「CGCS2000 / 3-degree Gauss-Kruger CM 111E」，与指定的「China Geodetic "
     "Coordinate System 2000」不一致"),
    (lambda: geojson(_new_rings(), crs="urn:ogc:def:crs:EPSG::4214"), "",
     "坐标系「Beijing 1954」不是 CGCS2000 或 WGS 84：请先转换为 CGCS2000（EPSG:4490）"),
    (lambda: shapefile_zip(_new_rings(), epsg=2383), "",
     "坐标系「Xian 1980 / 3-degree Gauss-Kruger CM 114E」不是 CGCS2000 或 WGS 84：请先转换为 "
     "CGCS2000（EPSG:4490）"),
    (lambda: b"%PDF-1.4 not a map", "", "边界文件应为 GeoJSON（.geojson / .json）或压缩的 "
                                        "shapefile（.zip）"),
    (lambda: b'{"type": "FeatureCollection", "features": [', "", "GeoJSON 格式错误"),
])
async def test_a_crs_that_is_not_read_is_refused(blob: object, crs: str, message: str) -> None:
    with pytest.raises(RegistryImportError) as e:
        await preview(None, boundary=blob(), crs=crs)  # type: ignore[operator]
    assert e.value.message.startswith(message)


@pytest.mark.parametrize("crs", ["+proj=merc +datum=WGS84", "https://example.org/crs.json",
                                 "EPSG:4490 extra", "wgs84"])
async def test_a_crs_option_is_gcj02_or_an_epsg_code(crs: str) -> None:
    with pytest.raises(RegistryImportError, match="坐标系应为 gcj02，或 EPSG:代码"):
        await preview(None, boundary=geojson(_new_rings()), crs=crs)


async def test_a_shapefile_without_prj_takes_an_explicit_crs() -> None:
    rings = _new_rings()
    got = await preview(None, boundary=shapefile_zip(rings, epsg=None), crs="EPSG:4490")
    _assert_landed(got, rings)


async def test_feature_problems_are_located() -> None:
    rings = _new_rings()
    ids = list(rings)
    ring = rings[ids[0]]
    features = json.loads(geojson({ids[0]: ring, "no-such-grid": ring, ids[1]: rings[ids[1]],
                                   ids[0] + "x": ring}))
    lon = [p[1] for p in ring]
    lat = [p[0] for p in ring]
    box = [[min(lon), min(lat)], [max(lon), min(lat)], [max(lon), max(lat)], [min(lon), max(lat)],
           [min(lon), min(lat)]]
    bowtie = [[min(lon), min(lat)], [max(lon), max(lat)], [max(lon), min(lat)],
              [min(lon), max(lat)], [min(lon), min(lat)]]
    features["features"][2]["geometry"] = {"type": "MultiPolygon",
                                           "coordinates": [[box], [box]]}
    features["features"][3]["properties"]["网格编号"] = ids[2]
    features["features"][3]["geometry"]["coordinates"] = [bowtie]
    features["features"].append({"type": "Feature", "properties": {"网格编号": ids[3]},
                                 "geometry": {"type": "Point", "coordinates": box[0]}})
    features["features"].append({"type": "Feature", "properties": {"网格编号": ids[0]},
                                 "geometry": {"type": "Polygon", "coordinates": [box]}})
    got = await preview(None, boundary=json.dumps(features, ensure_ascii=False).encode())
    said = [str(p) for p in got.candidate.problems]
    assert said[2].startswith(
        f"「边界文件」第4个要素：网格 {ids[2]} 的边界无效（Self-intersection[")
    assert said[:2] + said[3:] == [
        "「边界文件」第2个要素「网格编号」：「no-such-grid」：台账中没有这个编号或名称的网格或场所",
        "「边界文件」第3个要素：边界有 2 个部分：一个网格应为一个面",
        "「边界文件」第5个要素：几何类型是 Point，网格边界应为面（Polygon）",
        f"「边界文件」第6个要素「网格编号」：网格 {ids[0]} 已由第1个要素给出边界",
    ]


async def test_zip_with_two_shapefiles_is_refused() -> None:
    a = zipfile.ZipFile(io.BytesIO(shapefile_zip(_new_rings(), epsg=4490)))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name in a.namelist():
            z.writestr(name, a.read(name))
            z.writestr("copy/" + name, a.read(name))
    with pytest.raises(RegistryImportError, match=r"zip 中应有且只有一个 \.shp 文件（找到 2 个）"):
        await preview(None, boundary=buf.getvalue(), name="b.zip")
