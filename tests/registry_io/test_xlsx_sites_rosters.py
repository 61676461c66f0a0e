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
from sheets_kit import (
    CHANGED_PHONE,
    GRID,
    JULY,
    NEW_MONITOR_PHONE,
    TOWN,
    YEAR,
    broken_edit,
    cell,
    hazard_in_hills,
    office_edit,
    row_where,
)
from xlsx_kit import append, edit, geojson, geological, preview, put, sample, sample_xlsx

from tests.engine.helpers import Harness, cap_alert, make_harness
from warnbus.domain.duty import BEIJING, Approval, DutySource, schedule_digest
from warnbus.domain.models import DeliveryKind, Level, Role, SiteRole
from warnbus.domain.steps import Step
from warnbus.flow.credentials import ENGINE
from warnbus.flow.intake import accept
from warnbus.registry_io.service import Preview, decode_report, encode_report, report
from warnbus.state.registrybook import RegistryBook

#: Ten minutes before the 08:00 handover of 15 July: the township step falls after it.
START = datetime(2026, 7, 15, 7, 50, tzinfo=BEIJING).timestamp()
INSIDE = ((29.672, 112.502), (29.672, 112.51), (29.679, 112.51), (29.679, 112.502),
          (29.672, 112.502))  # inside GRID only


def _holders() -> tuple[str, str]:
    """The July version's township duty officers of 15 and 16 July."""
    book = sample().duty
    return (str(book.shift(TOWN, Role.TOWNSHIP_DUTY, date(2026, 7, 15)).person),
            str(book.shift(TOWN, Role.TOWNSHIP_DUTY, date(2026, 7, 16)).person))


async def test_the_office_edit_is_read_and_shown() -> None:
    p = await preview(edit(sample_xlsx(), office_edit))
    assert p.candidate.problems == [], [str(x) for x in p.candidate.problems]
    assert p.candidate.warnings == [f"值班表 {JULY}（2026年7月主汛期值班表）的班次有变化："
                                    "应用后须由审批人在控制台「值班安排」审批才生效"]
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
    _sid, monitor = hazard_in_hills()
    assert data.persons[monitor].phone == "+86" + CHANGED_PHONE
    new = data.sites["hp-new-01"]
    [sp] = new.people
    assert sp.role is SiteRole.MONITOR
    assert data.persons[sp.person].phone == "+86" + NEW_MONITOR_PHONE
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


async def test_a_roster_sheet_without_the_leaders_columns_is_refused_not_emptied() -> None:
    """Without the 带班领导 columns, every version's leaders would go without a word (the
    diff alone showed it): the sheet is refused at its header; the column kept with empty
    cells is how an office leaves leaders out."""

    def drop(wb: Workbook) -> None:
        duty = wb["值班表"]
        for col in sorted((c.column for c in duty[1] if str(c.value).startswith("带班领导")),
                          reverse=True):
            duty.delete_cols(col)

    p = await preview(edit(sample_xlsx(), drop))
    said = [str(x) for x in p.candidate.problems]
    assert any(s.startswith("「值班表」表第1行「带班领导」列：缺少此列") for s in said), said

    def blank(wb: Workbook) -> None:
        duty = wb["值班表"]
        for c in duty[1]:
            if str(c.value).startswith("带班领导"):
                for row in range(2, duty.max_row + 1):
                    duty.cell(row, c.column).value = None

    p = await preview(edit(sample_xlsx(), blank))
    assert not [x for x in p.candidate.problems if "带班领导" in str(x)]


async def test_a_site_numbered_as_a_grid_is_refused_at_its_cell() -> None:
    """Sites and grids share one id space (a campaign tracks both by id)."""
    clash: dict[str, object] = {}

    def renumber(wb: Workbook) -> None:
        grid_id = cell(wb["网格"], 3, "网格编号")
        put(wb["场所"], 3, "场所编号", grid_id)
        clash["id"] = grid_id

    p = await preview(edit(sample_xlsx(), renumber))
    said = [str(x) for x in p.candidate.problems]
    assert (f"「场所」表第3行「场所编号」列：编号与网格 {clash['id']} 相同"
            "（场所与网格编号不能重复）") in said, said


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
    [(_, entry)] = await RegistryBook(h.ctx.redis).history()  # the change history keeps it
    assert entry.summary == "人员：新增1，修改1；场所：新增1；值班表：修改1；其中手机号变更 1 人"
    assert {c.kind for c in decode_report(entry.diff).diff.changes} == {
        "persons", "sites", "rosters"}
    data = h.ctx.registry.data
    new_monitor = data.sites["hp-new-01"].people[0].person
    _sid, monitor = hazard_in_hills()

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


@pytest.mark.parametrize("day", ["2026/7/15", "2026年7月15日", "2026.07.15", date(2026, 7, 15),
                                 datetime(2026, 7, 15)])
async def test_office_ways_of_writing_a_day(day: object) -> None:
    """Text as offices type it, or a date cell (Excel turns 2026/7/15 into one)."""
    def change(wb: Workbook) -> None:
        duty = wb["值班表"]
        put(duty, row_where(duty, 值班表编号=JULY, 区划代码=TOWN, 日期="2026-07-15"), "日期", day)

    p = await preview(edit(sample_xlsx(), change))
    assert p.candidate.problems == [] and p.diff.empty


async def test_a_new_danger_zone_takes_its_range_from_the_boundary_file() -> None:
    """A danger zone typed without coordinates: its range from a GeoJSON feature keyed by its
    场所编号, its grid found from the range; without the file, its row says what is missing."""
    data = sample().data
    gid, grid = sorted(data.grids.items())[0]
    inner = shapely.Polygon([(lon, lat) for lat, lon in grid.polygon]).buffer(-0.0005)
    ring = tuple((round(lat, 6), round(lon, 6)) for lon, lat in inner.exterior.coords)

    def change(wb: Workbook) -> None:
        n = append(wb["场所"], {"场所编号": "dz-new-01", "名称": "新划危险区", "类型": "危险区",
                               "村ADCD": grid.village, "户数": "12", "人数": "35"})
        expected.append(n)
        append(wb["场所责任人"], {"场所编号": "dz-new-01", "姓名": "新转移责任人",
                                 "职责": "危险区转移责任人", "手机": "13900006666"})

    expected: list[int] = []
    blob = edit(sample_xlsx(), change)
    p = await preview(blob, boundary=geojson({"dz-new-01": ring}, field="场所编号"))
    assert p.candidate.problems == [], [str(x) for x in p.candidate.problems]
    zone = p.candidate.data.sites["dz-new-01"]
    assert zone.polygon == ring and zone.grid == gid and (zone.households, zone.residents) == (
        12, 35)
    assert "1 个场所的范围已更新" in p.candidate.boundary
    bare = await preview(blob)
    assert [str(x) for x in bare.candidate.problems] == [
        f"「场所」表第{expected[0]}行「经度」列：没有位置：请填写经度和纬度，"
        "或在边界文件中按场所编号给出范围"]
