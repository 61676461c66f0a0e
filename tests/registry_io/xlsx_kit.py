"""Helpers of the workbook tests: edit a workbook as an office would, make boundary files."""

from __future__ import annotations

import io
import json
import tempfile
import zipfile
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import shapely
from openpyxl import Workbook, load_workbook
from openpyxl.worksheet.worksheet import Worksheet

from tests.engine.helpers import cap_alert
from warnbus.domain.models import Alert, Area, Category, RegistryData, Severity
from warnbus.registry import Registry, default_registry_path, load_registry
from warnbus.registry_io.export import export_workbook
from warnbus.registry_io.service import Preview, prepare

Ring = Sequence[tuple[float, float]]  # (lat, lon)


@cache
def sample() -> Registry:
    return load_registry(default_registry_path())


@cache
def sample_xlsx() -> bytes:
    return export_workbook(sample().data, year=2026)


def edit(blob: bytes, change: Callable[[Workbook], None]) -> bytes:
    wb = load_workbook(io.BytesIO(blob))
    change(wb)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def column(ws: Worksheet, header: str, header_row: int = 1) -> int:
    for cell in ws[header_row]:
        if cell.value == header:
            return int(cell.column)
    raise KeyError(header)


def row_of(ws: Worksheet, header: str, value: str, header_row: int = 1) -> int:
    c = column(ws, header, header_row)
    for row in ws.iter_rows(min_row=header_row + 1):
        if row[c - 1].value == value:
            return int(row[c - 1].row)
    raise KeyError(value)


def put(ws: Worksheet, row: int, header: str, value: Any) -> None:
    ws.cell(row, column(ws, header)).value = value


def append(ws: Worksheet, values: Mapping[str, Any]) -> int:
    """Append a row by header; its Excel row number."""
    # Right below the data (the export's empty text-formatted rows follow it).
    row = 1 + max(n for n, values in enumerate(ws.iter_rows(values_only=True), start=1)
                  if any(v not in (None, "") for v in values))
    for header, value in values.items():
        put(ws, row, header, value)
    return row


NEW_GRID = "430623101001-99"  # the grid an office adds in 柳岗社区
NEW_RING = ((29.690, 112.500), (29.690, 112.501), (29.691, 112.501), (29.691, 112.500),
            (29.690, 112.500))


def office_edit(blob: bytes, *, pid: str, phone: str, broken: str = "",
                new_grid_officer: str = "") -> bytes:
    """What the Show asks of a workbook: `pid`'s phone changed, optionally a broken phone on
    person `broken` and grid NEW_GRID added (officer `new_grid_officer`)."""

    def change(wb: Workbook) -> None:
        people, grids = wb["人员"], wb["网格"]
        put(people, row_of(people, "人员编号", pid), "手机", phone)
        if broken:
            put(people, row_of(people, "人员编号", broken), "手机", "1380013800")
        if new_grid_officer:
            append(grids, {"村ADCD": "430623101001", "村网格名": "柳岗社区", "网格编号": NEW_GRID,
                           "网格名": "柳岗社区新网格", "网格员编号": new_grid_officer})

    return edit(blob, change)


async def preview(blob: bytes | None, base: RegistryData | None = None, *,
                  boundary: bytes | None = None, name: str = "b.geojson", crs: str = "",
                  key: str = "") -> Preview:
    return await prepare(base or sample().data, 0, workbook=blob, workbook_name="t.xlsx",
                         boundary=boundary, boundary_name=name, crs=crs, key=key)


def geojson(rings: Mapping[str, Ring], *, crs: str | None = None, field: str = "网格编号",
            transform: Callable[[Any, Any], tuple[Any, Any]] | None = None) -> bytes:
    """A FeatureCollection of polygons keyed by `field`; `crs` as the 2008 `crs` member."""
    features = []
    for key, ring in rings.items():
        lon = np.array([p[1] for p in ring])
        lat = np.array([p[0] for p in ring])
        if transform is not None:
            lon, lat = transform(lon, lat)
        coords = [[float(x), float(y)] for x, y in zip(lon, lat, strict=True)]
        features.append({"type": "Feature", "properties": {field: key},
                         "geometry": {"type": "Polygon", "coordinates": [coords]}})
    doc: dict[str, Any] = {"type": "FeatureCollection", "features": features}
    if crs:
        doc["crs"] = {"type": "name", "properties": {"name": crs}}
    return json.dumps(doc, ensure_ascii=False).encode()


def shapefile_zip(rings: Mapping[str, Ring], *, epsg: int | None, field: str = "网格编号",
                  encoding: str = "GBK", folder: str = "") -> bytes:
    """A zipped shapefile written by pyogrio, projected into `epsg` (no .prj when None)."""
    from pyogrio import raw
    from pyproj import Transformer

    geoms = []
    for ring in rings.values():
        lon = np.array([p[1] for p in ring])
        lat = np.array([p[0] for p in ring])
        if epsg not in (None, 4490, 4326):
            lon, lat = Transformer.from_crs(4490, epsg, always_xy=True).transform(lon, lat)
        geoms.append(shapely.Polygon(np.column_stack((lon, lat))))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "grids.shp"
        raw.write(str(path), shapely.to_wkb(np.array(geoms, dtype=object)),
                  field_data=[np.array(list(rings), dtype=object)], fields=[field],
                  crs=f"EPSG:{epsg}" if epsg else None, geometry_type="Polygon",
                  encoding=encoding)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            for f in sorted(Path(tmp).iterdir()):
                z.write(f, folder + f.name)
        return buf.getvalue()


#: The hills of 东山 and 插旗 (the geohazard sample's polygon), (lat, lon).
HILLS = ((29.40, 112.70), (29.40, 112.85), (29.55, 112.85), (29.55, 112.70), (29.40, 112.70))


def geological(identifier: str = "geo-after-change") -> Alert:
    """A geological warning over HILLS: it calls the monitors of the hazard points inside."""
    base = cap_alert(identifier, severity=Severity.SEVERE, level_zh="橙色")
    info = msgspec.structs.replace(base.infos[0], event="地质灾害气象风险预警",
                                   categories=(Category.GEO,),
                                   areas=(Area("东山镇、插旗镇山区", polygons=(HILLS,)),))
    return msgspec.structs.replace(base, infos=(info,))
