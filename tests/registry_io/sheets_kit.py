"""The office's edits of the 值班表, 场所 and 场所责任人 sheets (tests of the workbook and CLI)."""

from __future__ import annotations

import shapely
from openpyxl import Workbook
from openpyxl.worksheet.worksheet import Worksheet
from xlsx_kit import HILLS, append, column, put, sample

from warnbus.domain.models import Role, SiteKind, SiteRole

TOWN = "430623101000"  # 章华镇
GRID = "430623101001-01"
JULY = "430623-2026-07"  # the flood season's version: one row per day (approved in its file)
YEAR = "430623-2026"  # the year's version: a rotation
NEW_MONITOR_PHONE = "13900007777"
CHANGED_PHONE = "13900008888"


def row_where(ws: Worksheet, **values: str) -> int:
    """The Excel row whose cells under the headers (keys) hold `values`."""
    cols = {h: column(ws, h) for h in values}
    for row in ws.iter_rows(min_row=2):
        if all(row[c - 1].value == values[h] for h, c in cols.items()):
            return int(row[0].row)
    raise KeyError(values)


def cell(ws: Worksheet, row: int, header: str) -> object:
    return ws.cell(row, column(ws, header)).value


def hazard_in_hills() -> tuple[str, str]:
    """A hazard point inside HILLS and its monitor (their phone is changed in 场所责任人)."""
    hills = shapely.Polygon([(lon, lat) for lat, lon in HILLS])
    for sid, s in sorted(sample().data.sites.items()):
        if s.kind is SiteKind.HAZARD_POINT and s.point and hills.contains(
                shapely.Point(s.point[1], s.point[0])):
            monitor = next(p.person for p in s.people if p.role is SiteRole.MONITOR)
            return sid, monitor
    raise AssertionError("no hazard point in the hills")


def new_spot() -> tuple[str, str, float, float]:
    """A grid in HILLS without a hazard point, and a point inside it: (village, grid, lat, lon)."""
    data = sample().data
    hills = shapely.Polygon([(lon, lat) for lat, lon in HILLS])
    taken = {s.grid for s in data.sites.values()}
    for gid, g in sorted(data.grids.items()):
        shape = shapely.Polygon([(lon, lat) for lat, lon in g.polygon])
        spot = shape.point_on_surface()
        lat, lon = round(spot.y, 5), round(spot.x, 5)
        if gid not in taken and hills.contains(spot) and shape.contains(shapely.Point(lon, lat)):
            return g.village, gid, lat, lon
    raise AssertionError("no free grid in the hills")


def office_edit(wb: Workbook) -> None:
    """What the Show asks: a swapped duty day, a changed monitor phone, an added hazard point
    whose monitor is new (name and phone)."""
    duty = wb["值班表"]
    a = row_where(duty, 值班表编号=JULY, 区划代码=TOWN, 日期="2026-07-15")
    b = row_where(duty, 值班表编号=JULY, 区划代码=TOWN, 日期="2026-07-16")
    for header in ("值班员编号", "值班员", "值班员手机"):
        x, y = cell(duty, a, header), cell(duty, b, header)
        put(duty, a, header, y)
        put(duty, b, header, x)
    sid, monitor = hazard_in_hills()
    people = wb["场所责任人"]
    put(people, row_where(people, 场所编号=sid, 人员编号=monitor), "手机", CHANGED_PHONE)
    village, grid, lat, lon = new_spot()
    append(wb["场所"], {"场所编号": "hp-new-01", "名称": "新发现滑坡隐患点",
                       "类型": "地质灾害隐患点", "村ADCD": village, "网格编号": grid,
                       "经度": str(lon), "纬度": str(lat)})
    append(people, {"场所编号": "hp-new-01", "姓名": "新监测员", "职责": "群测群防员",
                    "手机": NEW_MONITOR_PHONE})


def broken_edit(wb: Workbook) -> dict[str, tuple[str, str, int]]:
    """One broken row per kind of problem; what each is: (sheet, column, row)."""
    duty, sites, people = wb["值班表"], wb["场所"], wb["场所责任人"]
    out: dict[str, tuple[str, str, int]] = {}

    def july(day: str, town: str = TOWN) -> int:
        return row_where(duty, 值班表编号=JULY, 区划代码=town, 日期=day)

    n = july("2026-07-03", "430623102000")
    put(duty, n, "区划代码", "430623199000")
    out["430623199000 不是「区划」中的乡镇或县"] = ("值班表", "区划代码", n)
    n = july("2026-07-05")
    for header in ("值班员编号", "值班员", "值班员手机"):
        put(duty, n, header, None)
    out["章华镇 乡镇值班员 2026-07-05 无人值班（缺少这些日期的班次）"] = ("值班表", "值班员", n)
    n = july("2026-07-08", "430623103000")
    put(duty, n, "日期", "2026-07-07")
    out["已在第"] = ("值班表", "日期", n)  # 同一天只能有一个班次
    n = july("2026-07-10")
    put(duty, n, "值班员手机", "1380013800")
    out["号码应为11位手机号"] = ("值班表", "值班员手机", n)
    n = july("2026-07-12", "430623104000")
    put(duty, n, "日期", "2026-07-32")
    out["「2026-07-32」不是日期"] = ("值班表", "日期", n)
    n = july("2026-07-20", "430623105000")
    other = next(p for p in sample().data.persons.values()
                 if p.role is Role.TOWNSHIP_DUTY and p.region == TOWN)
    put(duty, n, "值班员编号", other.id)
    put(duty, n, "值班员", other.name)
    put(duty, n, "值班员手机", None)
    out[f"{other.name}（{other.id}）不属于"] = ("值班表", "值班员编号", n)
    hazards = sorted(sid for sid, s in sample().data.sites.items()  # two people each
                     if s.kind is SiteKind.HAZARD_POINT and s.point and len(s.people) > 1)
    n = row_where(sites, 场所编号=hazards[0])
    put(sites, n, "类型", "泥石流沟")
    out["类型应为：地质灾害隐患点、水库、山塘、危险区、避灾场所"] = ("场所", "类型", n)
    n = row_where(sites, 场所编号=hazards[1])
    put(sites, n, "经度", str(float(str(cell(sites, n, "经度"))) + 0.05))
    out["不在所在网格"] = ("场所", "经度", n)  # with how far, in metres
    n = row_where(sites, 场所编号=hazards[2])
    lon, lat = cell(sites, n, "经度"), cell(sites, n, "纬度")
    put(sites, n, "经度", lat)
    put(sites, n, "纬度", lon)
    out["经度和纬度是否填反了"] = ("场所", "纬度", n)
    n = row_where(people, 场所编号=hazards[3])
    put(people, n, "职责", "看门人")
    out["职责应为：群测群防员"] = ("场所责任人", "职责", n)
    n = row_where(people, 场所编号=hazards[4])
    put(people, n, "职责", "巡查员")
    out["巡查员不适用于地质灾害隐患点（可用："] = ("场所责任人", "职责", n)
    n = row_where(people, 场所编号=hazards[5])
    put(people, n, "场所编号", "hp-nowhere")
    out["「场所」中没有编号为 hp-nowhere 的场所"] = ("场所责任人", "场所编号", n)
    return out
