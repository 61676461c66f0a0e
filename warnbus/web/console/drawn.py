"""A target area drawn on the console's map: read from the form, checked, written as CAP.

The compose page's script sends the drawn polygon in CAP form (`lat,lon` pairs separated by
spaces, WGS 84, first point = last point). The server trusts none of it: the ring must parse,
be closed, have at least three distinct corners, lie in range and near the county, and not
cross itself (shapely), else the officer gets a message in Chinese naming what is wrong.
"""

from __future__ import annotations

import math

import shapely

DEFAULT_DESC = "手绘区域"
MAX_POINTS = 200  # corners an officer draws by hand; more is not a drawing
DESC_MAX = 60
NEAR_DEG = 0.5  # a drawn area must come this close to the county's grids (about 50 km)
DIGITS = 6  # about 0.1 m: far finer than a click on the map

Ring = tuple[tuple[float, float], ...]  # (lat, lon), closed


class DrawnAreaError(ValueError):
    """The submitted polygon cannot be an alert area; `message` says why, in Chinese."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def parse_ring(text: str) -> Ring:
    """The (lat, lon) points of a CAP polygon text; () for an empty field."""
    tokens = text.split()
    if not tokens:
        return ()
    if len(tokens) > MAX_POINTS + 1:
        raise DrawnAreaError(f"手绘区域最多{MAX_POINTS}个顶点，当前{len(tokens) - 1}个")
    out = []
    for n, token in enumerate(tokens, 1):
        parts = token.split(",")
        try:
            if len(parts) != 2:
                raise ValueError(token)
            lat, lon = float(parts[0]), float(parts[1])
        except ValueError:
            raise DrawnAreaError(f"手绘区域第{n}个点“{token[:40]}”格式错误，"
                                 "应为“纬度,经度”") from None
        if not (math.isfinite(lat) and math.isfinite(lon)):
            raise DrawnAreaError(f"手绘区域第{n}个点不是有效数字")
        out.append((round(lat, DIGITS), round(lon, DIGITS)))
    return tuple(out)


def problem(ring: Ring, extent: tuple[float, float, float, float]) -> str | None:
    """Why `ring` cannot be an alert area (None: it can); `extent` = the county's grids'
    (lat0, lon0, lat1, lon1)."""
    if not ring:
        return None
    if len(ring) < 2 or ring[0] != ring[-1]:
        return "手绘区域边界未闭合（首点须与末点相同），请点击“完成”闭合区域"
    if len(set(ring[:-1])) < 3:
        return "手绘区域至少需要3个不同的顶点"
    if not all(-90 <= lat <= 90 and -180 <= lon <= 180 for lat, lon in ring):
        return "手绘区域坐标超出范围（纬度−90～90，经度−180～180）"
    lat0, lon0, lat1, lon1 = extent
    lats, lons = [p[0] for p in ring], [p[1] for p in ring]
    if (max(lats) < lat0 - NEAR_DEG or min(lats) > lat1 + NEAR_DEG
            or max(lons) < lon0 - NEAR_DEG or min(lons) > lon1 + NEAR_DEG):
        return (f"手绘区域不在本县范围内（本县约北纬{lat0:.2f}～{lat1:.2f}度、"
                f"东经{lon0:.2f}～{lon1:.2f}度），请检查坐标")
    poly = shapely.Polygon([(lon, lat) for lat, lon in ring])
    if not poly.is_valid:
        why = shapely.is_valid_reason(poly)
        if "intersection" in why.lower():
            return "手绘区域的边界自相交（边与边交叉），请重新绘制"
        return "手绘区域形状无效，请重新绘制"
    if poly.area <= 0:
        return "手绘区域面积为零，请重新绘制"
    return None


def cap_text(ring: Ring) -> str:
    """CAP `<polygon>` text: `lat,lon` pairs separated by spaces."""
    return " ".join(f"{_num(lat)},{_num(lon)}" for lat, lon in ring)


def _num(value: float) -> str:
    text = f"{value:.{DIGITS}f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def desc_of(value: str) -> str:
    """The areaDesc the officer gave the drawn area (bounded; default 手绘区域)."""
    return " ".join(value.split())[:DESC_MAX] or DEFAULT_DESC
