"""The registry as a workbook (one sheet per kind, Chinese headers), or the empty template.

Every value is written as text: codes and phones keep their digits (no 1.38E+10), and a name
that begins with = + - @ stays a name, never a formula a spreadsheet would run (formula
injection). Columns that hold codes and numbers are formatted as text, so what an office types
into them stays text too. Written by openpyxl in write-only mode (a province: ~250k rows).
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence

import msgspec
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import Cell
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.datavalidation import DataValidation
from openpyxl.worksheet.worksheet import Worksheet

from warnbus.domain.models import RegistryData, mask_phone
from warnbus.domain.sites import SITE_KIND_ZH, SITE_ROLE_ZH
from warnbus.registry_io.kinds import LEVEL_ZH, ROLE_ZH, Kind
from warnbus.registry_io.sheets import EXAMPLE, SheetSpec
from warnbus.registry_io.workbook import KINDS, README_SHEET

_HEAD_FONT = Font(bold=True)
_HEAD_FILL = PatternFill("solid", fgColor="DDEBF7")
_NEEDED_FILL = PatternFill("solid", fgColor="FCE4D6")
_TEXT = "@"
#: What a column's cells may hold, offered as a list in Excel.
_CHOICES = {("persons", "role"): tuple(ROLE_ZH.values()),
            ("regions", "level"): tuple(LEVEL_ZH.values()),
            ("persons", "drill"): ("是", "否"),
            ("sites", "kind"): tuple(SITE_KIND_ZH.values()),
            ("site_people", "role"): tuple(SITE_ROLE_ZH.values())}
_EXTRA_ROWS = 2000  # rows below the data that keep the text format and the lists
#: The template's example row of each sheet (by column key; its first cell begins with
#: `sheets.EXAMPLE`, and the import skips it).
_EXAMPLES: dict[str, dict[str, str]] = {
    "regions": {"code": "430623101201", "name": "某某村", "level": "村（社区）",
                "parent": "430623101000"},
    "persons": {"id": "p-00001", "name": "张三", "role": "网格员", "region": "430623101201",
                "region_name": "某某村", "township": "章华镇", "phone": "13800000000",
                "drill": "否", "year": "2026"},
    "grids": {"township": "章华镇", "village": "430623101201", "village_name": "某某村",
              "id": "430623101201-01", "name": "某某村第一网格", "primary_id": "p-00001",
              "primary": "张三", "year": "2026"},
    "sites": {"id": "hp-430623101201-01", "name": "某某村后山滑坡隐患点", "kind": "地质灾害隐患点",
              "code": "430623010001", "township": "章华镇", "village": "430623101201",
              "village_name": "某某村", "grid": "430623101201-01", "lon": "112.50531",
              "lat": "29.52713", "year": "2026"},
    "site_people": {"site": "hp-430623101201-01", "site_name": "某某村后山滑坡隐患点",
                    "person_id": "", "name": "李四", "role": "群测群防员",
                    "phone": "13900000000", "year": "2026"},
    "rosters": {"roster": "430623-2026-flood", "roster_name": "2026年汛期值班表",
                "region": "430623101000", "region_name": "章华镇", "day": "2026-07-01",
                "start": "08:00", "duty": "王五", "duty_phone": "13700000000",
                "leader": "赵六", "leader_phone": "13600000000"},
}


def masked(data: RegistryData) -> RegistryData:
    """The registry with every phone number masked (`models.mask_phone`): for non-admins."""
    persons = {pid: msgspec.structs.replace(p, phone=mask_phone(p.phone))
               for pid, p in data.persons.items() if p.phone}
    return msgspec.structs.replace(data, persons={**data.persons, **persons})


def _text_cell(ws: Worksheet, value: str | None, as_text: bool) -> Cell:
    cell = WriteOnlyCell(ws, value)
    if value is not None:
        cell.data_type = "s"  # never a formula, whatever the first character
    if as_text:
        cell.number_format = _TEXT
    return cell


def _sheet(wb: Workbook, kind: Kind, rows: Iterable[Sequence[str | None]], *,
           example: bool = False) -> None:
    spec: SheetSpec = kind.spec
    ws = wb.create_sheet(spec.name)
    ws.freeze_panes = "A2"
    for i, col in enumerate(spec.columns, start=1):
        letter = get_column_letter(i)
        ws.column_dimensions[letter].width = col.width
        choices = _CHOICES.get((spec.kind, col.key))
        if choices:
            dv = DataValidation(type="list", formula1='"' + ",".join(choices) + '"',
                                allow_blank=True, showErrorMessage=False)
            dv.add(f"{letter}2:{letter}1048576")
            ws.data_validations.append(dv)
    head = []
    for col in spec.columns:
        cell = WriteOnlyCell(ws, col.header)
        cell.data_type = "s"
        cell.font = _HEAD_FONT
        cell.fill = _NEEDED_FILL if col.required else _HEAD_FILL
        head.append(cell)
    ws.append(head)
    flags = [c.as_text for c in spec.columns]
    if example:
        values = [_EXAMPLES.get(spec.kind, {}).get(c.key) or None for c in spec.columns]
        values[0] = f"{EXAMPLE}{values[0] or ''}（此行不导入）"
        ws.append([_text_cell(ws, v, t) for v, t in zip(values, flags, strict=True)])
    n = 0
    for row in rows:
        ws.append([_text_cell(ws, v, t) for v, t in zip(row, flags, strict=True)])
        n += 1
    if any(flags):
        for _ in range(_EXTRA_ROWS if n < 50_000 else 0):
            ws.append([_text_cell(ws, None, t) for t in flags])


def _readme(wb: Workbook, title: str) -> None:
    ws = wb.create_sheet(README_SHEET)
    ws.column_dimensions["A"].width = 16
    ws.column_dimensions["B"].width = 90
    wrap = Alignment(wrap_text=True, vertical="top")
    lines: list[tuple[str, str]] = [
        (title, ""),
        ("怎么用", "每种记录一张表，表头不要改（列的顺序可以变，标题行上面可以有表名）。"
                   "导入时只替换工作簿中有的表：只改人员就只保留「人员」表。删掉一行即删除该记录。"),
        ("导入", "控制台「网格台账 → 导入」上传本文件，或命令行 warnbus registry import 文件.xlsx；"
                 "先显示变化（新增、修改、删除，手机号变更单独标出）和每个问题所在的表、行、列，确认后应用，"
                 "无需重启，正在进行的叫应下一次呼叫即用新号码。"),
        ("边界", "网格边界不在表中：新增网格请同时导入边界文件"
                 "（GeoJSON，或含 .shp/.shx/.dbf/.prj 的 zip），"
                 "坐标系 CGCS2000（EPSG:4490 或高斯-克吕格投影）；"
                 "高德、腾讯等地图的 GCJ-02 坐标请在导入时选择 GCJ-02。"),
        ("值班表审批", "导入的新版本、或班次有变化的版本，须由审批人在控制台「值班安排」审批后生效"
                       "（此前按原已审批的版本或固定值班人员值班）；班次未变的版本保持原审批。"
                       "工作簿不能审批值班表。"),
        ("示例行",
         "模板每张表表头下的一行是示例（首格以“示例：”开头），导入时跳过，可删除或覆盖。"),
        ("橙色表头", "必填列"),
    ]
    for kind in KINDS:
        lines.append((f"「{kind.spec.name}」表", kind.spec.hint))
        lines += [(f"  {c.header}", c.hint) for c in kind.spec.columns if c.hint]
    for a, b in lines:
        ca, cb = WriteOnlyCell(ws, a), WriteOnlyCell(ws, b)
        ca.data_type = cb.data_type = "s"
        ca.alignment = cb.alignment = wrap
        ws.append([ca, cb])


def export_workbook(data: RegistryData, *, year: int | None = None,
                    title: str = "网格化管理台账", example: bool = False) -> bytes:
    """The registry as .xlsx bytes (phones as `data` has them: mask before for non-admins)."""
    wb = Workbook(write_only=True)
    _readme(wb, title)
    for kind in KINDS:
        _sheet(wb, kind, kind.rows(data, year), example=example)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def template_workbook() -> bytes:
    """The empty workbook an office fills in: the sheets, their headers, the 说明 sheet."""
    empty = RegistryData(**{f: {} for f in RegistryData.__struct_fields__})
    return export_workbook(empty, title="网格化管理台账（模板）", example=True)
