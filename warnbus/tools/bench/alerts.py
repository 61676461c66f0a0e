"""The warnings the benchmarks disseminate: red rainstorm alerts over a given area."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from warnbus.domain.models import (
    Alert,
    Area,
    Category,
    Certainty,
    Circle,
    Info,
    MsgType,
    Scope,
    Severity,
    Status,
    Urgency,
)

Ring = tuple[tuple[float, float], ...]
#: The CAP sender of the benchmarks' alerts (a provincial met bureau).
SENDER = "430000@qx.example.cn"


def red_alert(identifier: str, area: Area, *, sender: str = SENDER,
              hours: float = 6.0) -> Alert:
    """A red rainstorm warning (暴雨红色预警) for `area`, sent now, valid for `hours`."""
    sent = datetime.now(UTC).replace(microsecond=0)
    info = Info(
        categories=(Category.MET,), event="暴雨", urgency=Urgency.IMMEDIATE,
        severity=Severity.EXTREME, certainty=Certainty.LIKELY, language="zh-CN",
        effective=sent, expires=sent + timedelta(hours=hours), sender_name="气象台",
        headline="气象台发布暴雨红色预警信号",
        description="预计未来3小时降雨量将达100毫米以上，请做好防御。",
        instruction="危险区域人员立即转移。", parameters=(("level", "红色"),), areas=(area,),
    )
    return Alert(identifier=identifier, sender=sender, sent=sent, status=Status.ACTUAL,
                 msg_type=MsgType.ALERT, scope=Scope.PUBLIC, infos=(info,))


def geocode_area(code: str, desc: str = "") -> Area:
    """An area named by one region code (GB/T 2260 or a 9/12-digit 统计用区划代码)."""
    name = "GB/T 2260" if len(code) <= 6 else "TOWNSHIP"
    return Area(desc=desc or code, geocodes=((name, code),))


def polygon_area(ring: Ring, desc: str = "polygon") -> Area:
    return Area(desc=desc, polygons=(ring,))


def circle_area(lat: float, lon: float, radius_km: float, desc: str = "circle") -> Area:
    return Area(desc=desc, circles=(Circle(lat, lon, radius_km),))


def irregular_ring(lat: float, lon: float, radius_deg: float, sides: int = 9) -> Ring:
    """A closed, star-free but uneven polygon around (lat, lon): a storm cell's outline.

    Uneven radii make the boundary cut through grids at many angles, as a forecaster's
    hand-drawn polygon does; a plain rectangle aligned with the grid tiling would be easier.
    """
    points = []
    for k in range(sides):
        a = 2 * math.pi * k / sides
        r = radius_deg * (0.75 + 0.25 * math.sin(3 * a + 0.5))
        points.append((round(lat + r * math.cos(a), 5), round(lon + r * math.sin(a) * 1.15, 5)))
    return (*points, points[0])
