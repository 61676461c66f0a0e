"""Duty rosters (值班表) and sites (场所, 场所责任人) in the registry workbook (issue 19 item 3):
what an office edits in the exported workbook is read back, every problem located by sheet,
row and column in Chinese, shown as a diff, and applied without a restart: a geological
warning calls the new hazard point's monitor at once; a changed roster version is approved
in the console like any version, then the next escalation goes to the new duty officer."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from datetime import date, datetime

import pytest
import pytest_asyncio
import shapely
from openpyxl import Workbook, load_workbook
from openpyxl.worksheet.worksheet import Worksheet
from xlsx_kit import HILLS, append, column, edit, geological, preview, put, sample, sample_xlsx

from tests.engine.helpers import Harness, cap_alert, make_harness
from warnbus.domain.duty import BEIJING, Approval, DutySource, schedule_digest
from warnbus.domain.models import DeliveryKind, Level, Role, SiteKind, SiteRole
from warnbus.domain.steps import Step
from warnbus.flow.credentials import ENGINE
from warnbus.flow.intake import accept
from warnbus.registry_io.service import Preview, encode_report, report

TOWN = "430623101000"  # 章华镇
GRID = "430623101001-01"
JULY = "430623-2026-07"  # the flood season's version: one row per day (approved in its file)
YEAR = "430623-2026"  # the year's version: a rotation
#: Ten minutes before the 08:00 handover of 15 July: the township step falls after it.
START = datetime(2026, 7, 15, 7, 50, tzinfo=BEIJING).timestamp()
INSIDE = ((29.672, 112.502), (29.672, 112.51), (29.679, 112.51), (29.679, 112.502),
          (29.672, 112.502))  # inside GRID only
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


def _hazard_in_hills() -> tuple[str, str]:
    """A hazard point inside HILLS and its monitor (their phone is changed in 场所责任人)."""
    hills = shapely.Polygon([(lon, lat) for lat, lon in HILLS])
    for sid, s in sorted(sample().data.sites.items()):
        if s.kind is SiteKind.HAZARD_POINT and s.point and hills.contains(
                shapely.Point(s.point[1], s.point[0])):
            monitor = next(p.person for p in s.people if p.role is SiteRole.MONITOR)
            return sid, monitor
    raise AssertionError("no hazard point in the hills")


def _new_spot() -> tuple[str, str, float, float]:
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
    sid, monitor = _hazard_in_hills()
    people = wb["场所责任人"]
    put(people, row_where(people, 场所编号=sid, 人员编号=monitor), "手机", CHANGED_PHONE)
    village, grid, lat, lon = _new_spot()
    append(wb["场所"], {"场所编号": "hp-new-01", "名称": "新发现滑坡隐患点", "类型": "地质灾害隐患点",
                       "村ADCD": village, "网格编号": grid, "经度": str(lon), "纬度": str(lat)})
    append(people, {"场所编号": "hp-new-01", "姓名": "新监测员", "职责": "群测群防员",
                    "手机": NEW_MONITOR_PHONE})


def _holders() -> tuple[str, str]:
    """The July version's township duty officers of 15 and 16 July."""
    book = sample().duty
    return (str(book.shift(TOWN, Role.TOWNSHIP_DUTY, date(2026, 7, 15)).person),
            str(book.shift(TOWN, Role.TOWNSHIP_DUTY, date(2026, 7, 16)).person))


async def test_the_office_edit_is_read_and_shown() -> None:
    p = await preview(edit(sample_xlsx(), office_edit))
    assert p.candidate.problems == [], [str(x) for x in p.candidate.problems]
    data, was = p.candidate.data, sample().data
    day15, day16 = _holders()
    july = data.rosters[JULY]
    entry = next(e for e in july.entries if (e.region, e.role) == (TOWN, Role.TOWNSHIP_DUTY))
    shifts = {s.day: s.person for s in entry.shifts}
    assert (shifts["2026-07-15"], shifts["2026-07-16"]) == (day16, day15)
    # The workbook never approves: the changed version waits for the console's approver.
    assert was.rosters[JULY].approved_by and july.approved_by is None and july.approved_at is None
    # Every other version is as it was (rotations kept, approvals kept).
    assert {k: v for k, v in data.rosters.items() if k != JULY} == {
        k: v for k, v in was.rosters.items() if k != JULY}
    _sid, monitor = _hazard_in_hills()
    assert data.persons[monitor].phone == "+86" + CHANGED_PHONE
    new = data.sites["hp-new-01"]
    [sp] = new.people
    assert sp.role is SiteRole.MONITOR and data.persons[sp.person].phone == "+86" + NEW_MONITOR_PHONE
    assert data.persons[sp.person].role is Role.SITE and sp.person not in was.persons
    assert p.diff.counts()["sites"] == {"added": 1, "changed": 0, "removed": 0}
    assert p.diff.counts()["rosters"] == {"added": 0, "changed": 1, "removed": 0}
    assert p.diff.summary() == "人员：新增1，修改1；场所：新增1；值班表：修改1；其中手机号变更 1 人"
    lines = p.diff.lines()
    phone = next(x for x in lines if x.startswith(f"人员 修改 {monitor}"))
    assert "◆手机号变更" in phone and CHANGED_PHONE not in phone  # highlighted, masked
    names = {pid: data.persons[pid].name for pid in (day15, day16)}
    roster = next(x for x in lines if x.startswith(f"值班表 修改 {JULY}"))
    assert "审批 已审批（华容县应急管理局） → 待审批" in roster
    assert (f"章华镇 乡镇值班员 07-15 {names[day15]}、07-16 {names[day16]} → "
            f"07-15 {names[day16]}、07-16 {names[day15]}") in roster


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


async def test_every_problem_is_named_by_sheet_row_and_column_in_chinese() -> None:
    expected: dict[str, tuple[str, str, int]] = {}

    def change(wb: Workbook) -> None:
        expected.update(broken_edit(wb))

    p = await preview(edit(sample_xlsx(), change))
    said = [str(x) for x in p.candidate.problems]
    for message, (sheet, col, row) in expected.items():
        where = f"「{sheet}」表第{row}行「{col}」列："
        assert any(s.startswith(where) and message in s for s in said), (message, where, said)
    # Nothing else, but the day the row of an unknown region leaves without anyone (whose
    # it was is not known: the gap is real); a row's own problem is not reported twice.
    rest = [s for s in said if not any(
        s.startswith(f"「{sh}」表第{r}行「{c}」列：") and m in s
        for m, (sh, c, r) in expected.items())]
    assert len(rest) == 2 and all("鲇鱼须镇 乡镇" in s and "2026-07-03 无人值班" in s
                                  for s in rest), rest


async def test_a_version_written_day_by_day_keeps_its_rotation_and_approval() -> None:
    """An office writes the year's rotation out day by day (as many keep rosters): the same
    shifts, so no change and the approval stands; with one day swapped, the version is its
    rotation plus that day, and waits for approval."""
    data = sample().data
    year = data.rosters[YEAR]
    town = [e for e in year.entries if e.region == TOWN]

    def write_out(swap: bool) -> bytes:
        def change(wb: Workbook) -> None:
            ws = wb["值班表"]
            n = row_where(ws, 值班表编号=YEAR, 区划代码=TOWN)
            ws.delete_rows(n)
            plan = {e.role: e.rotation for e in town}
            duty, lead = plan[Role.TOWNSHIP_DUTY], plan[Role.TOWNSHIP_LEADER]
            first = append(ws, {"值班表编号": YEAR})
            for k in range(365):
                who = duty[(k + 1 if swap and k == 9 else k) % len(duty)]
                for header, value in (
                        ("值班表编号", YEAR), ("区划代码", TOWN),
                        ("日期", date.fromordinal(date(2026, 1, 1).toordinal() + k).isoformat()),
                        ("值班员编号", who), ("带班领导", data.persons[lead[k % len(lead)]].name)):
                    put(ws, first + k, header, value)
        return edit(sample_xlsx(), change)

    same = await preview(write_out(swap=False))
    assert same.candidate.problems == [] and same.diff.empty
    assert same.candidate.data.rosters[YEAR] == year
    swapped = await preview(write_out(swap=True))
    assert swapped.candidate.problems == []
    got = swapped.candidate.data.rosters[YEAR]
    entry = next(e for e in got.entries if (e.region, e.role) == (TOWN, Role.TOWNSHIP_DUTY))
    duty = next(e for e in town if e.role is Role.TOWNSHIP_DUTY)
    assert entry.rotation == duty.rotation and [s.day for s in entry.shifts] == ["2026-01-10"]
    assert got.approved_by is None and swapped.diff.summary() == "值班表：修改1"


async def test_a_masked_or_hostile_cell_never_approves_or_creates_silently() -> None:
    """An 审批人 column is not read (the workbook never approves); a name nobody has, without
    a phone, is a problem, not a person without a number."""

    def change(wb: Workbook) -> None:
        duty = wb["值班表"]
        n = row_where(duty, 值班表编号="430623-2027-flood", 区划代码=TOWN)
        put(duty, n, "值班员", "无名氏、" + str(cell(duty, n, "值班员")).split("、", 1)[1])
        put(duty, n, "值班员编号", None)
        put(duty, n, "值班员手机", None)
        duty.cell(1, duty.max_column + 1).value = "审批人"
        duty.cell(n, duty.max_column).value = "局长"

    p = await preview(edit(sample_xlsx(), change))
    said = [str(x) for x in p.candidate.problems]
    assert any("没有名为「无名氏」的乡镇值班员：新增人员请同时填写手机" in s for s in said), said
    assert "「值班表」表中未识别的列未导入：审批人" in p.candidate.warnings


@pytest_asyncio.fixture
async def h(redis_url: str) -> AsyncIterator[Harness]:
    harness = await make_harness(redis_url, start=START)
    yield harness
    await harness.app.close()


async def _apply(h: Harness, p: Preview) -> int:
    return await h.app.engine.registry.apply(
        p.candidate.data, expected=p.base_version, by="root", source=p.source,
        year=p.candidate.year, summary=p.diff.summary(), diff=encode_report(report(p)))


async def test_applied_the_alert_and_escalation_use_the_new_data(h: Harness) -> None:
    """Apply while running: a geological warning calls the new hazard point's new monitor
    and the changed monitor at the new phone; the changed July version waits for approval
    (meanwhile the year's version holds the day), and once approved in the console the
    township step goes to the officer swapped in."""
    day15, day16 = _holders()
    def both(wb: Workbook) -> None:
        office_edit(wb)
        broken_edit(wb)

    broken = await preview(edit(sample_xlsx(), both))
    assert not broken.candidate.ok
    p = await preview(edit(sample_xlsx(), office_edit))
    assert p.candidate.ok
    assert await _apply(h, p) == 1
    data = h.ctx.registry.data
    new_monitor = data.sites["hp-new-01"].people[0].person
    _sid, monitor = _hazard_in_hills()

    res = await accept(h.ctx, geological(), ENGINE)
    await h.drain()
    assert "hp-new-01" in await h.ctx.store.grids(res.campaign_id)
    sent = [d for d in h.sent() if d.campaign_id == res.campaign_id]
    assert {d.address for d in sent if d.target_id == new_monitor
            and d.channel in ("voice", "sms")} == {"+86" + NEW_MONITOR_PHONE}
    assert {d.address for d in sent if d.target_id == monitor
            and d.channel in ("voice", "sms")} == {"+86" + CHANGED_PHONE}

    book = await h.ctx.duty_book()
    assert not book.approved(JULY)
    waiting = book.shift(TOWN, Role.TOWNSHIP_DUTY, date(2026, 7, 15))
    assert (waiting.roster, waiting.source) == (YEAR, DutySource.ROSTER)
    assert h.ctx.duty is not None
    july = data.rosters[JULY]
    assert await h.ctx.duty.approve(JULY, Approval("alan", START, schedule_digest(july)))
    book = await h.ctx.duty_book()
    assert book.shift(TOWN, Role.TOWNSHIP_DUTY, date(2026, 7, 15)).person == day16

    # A red warning for GRID, nobody answers: the township step (after 08:00) goes to the
    # officer the workbook swapped into 15 July.
    red = await accept(h.ctx, cap_alert("red-after-import", codes=(TOWN,), polygon=INSIDE),
                       ENGINE)
    await h.drain()
    assert set(await h.ctx.store.grids(red.campaign_id)) == {GRID}
    policy = h.ctx.rules.policy_for(Level.RED)
    for offset in (*policy.redial_times(), *policy.escalation_times()[:3]):
        h.clock.set(START + offset)
        await h.drain()
    got = {d.target_id for d in h.sent() if d.campaign_id == red.campaign_id
           and d.kind is DeliveryKind.ESCALATION and d.step == int(Step.chain(3))}
    assert got == {day16} and day15 != day16


async def test_template_example_rows_are_shown_and_skipped() -> None:
    from warnbus.registry_io.export import template_workbook

    blob = template_workbook()
    wb = load_workbook(io.BytesIO(blob))
    assert str(wb["值班表"]["A2"].value).startswith("示例：")
    p = await preview(blob)
    assert p.diff.empty and p.candidate.problems == []


@pytest.mark.parametrize("day", ["2026/7/15", "2026年7月15日", "2026.07.15"])
async def test_office_ways_of_writing_a_day(day: str) -> None:
    def change(wb: Workbook) -> None:
        duty = wb["值班表"]
        put(duty, row_where(duty, 值班表编号=JULY, 区划代码=TOWN, 日期="2026-07-15"), "日期", day)

    p = await preview(edit(sample_xlsx(), change))
    assert p.candidate.problems == [] and p.diff.empty
