"""The console's registry workbook: upload -> preview (problems by sheet/row/column, or the
diff with phone changes highlighted) -> apply without a restart; history; editing a person."""

from __future__ import annotations

import io
import re
import sys
from pathlib import Path

import aiohttp
from console_kit import sign_in
from openpyxl import Workbook, load_workbook

from tests.engine.helpers import Harness
from warnbus.registry_io.export import export_workbook
from warnbus.state.registrybook import RegistryBook

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "registry_io"))
from sheets_kit import JULY, TOWN, office_edit, row_where
from xlsx_kit import append, column, edit, geojson, put, row_of

PID = "p43062300128"
RING = ((29.690, 112.500), (29.690, 112.501), (29.691, 112.501), (29.691, 112.500),
        (29.690, 112.500))


def _workbook(h: Harness, *, phone: str, new_grid: bool = False) -> bytes:
    def change(wb: Workbook) -> None:
        ws = wb["人员"]
        put(ws, row_of(ws, "人员编号", PID), "手机", phone)
        if new_grid:
            append(wb["网格"], {"村ADCD": "430623101001", "网格编号": "430623101001-99",
                               "网格名": "柳岗社区新网格", "网格员编号": "p43062300130"})

    return edit(export_workbook(h.ctx.registry.data), change)


async def _upload(client, csrf: str, workbook: bytes | None, boundary: bytes | None = None,  # type: ignore[no-untyped-def]
                  **fields: str) -> aiohttp.ClientResponse:
    form = aiohttp.FormData()
    form.add_field("_csrf", csrf)
    if workbook is not None:
        form.add_field("workbook", workbook, filename="台账.xlsx")
    if boundary is not None:
        form.add_field("boundary", boundary, filename="边界.geojson")
    for k, v in fields.items():
        form.add_field(k, v)
    return await client.post("/console/registry/upload", data=form, allow_redirects=False)


def _text(html: str) -> str:
    return re.sub(r"<[^>]+>", "", html)


async def test_upload_preview_apply(web) -> None:  # type: ignore[no-untyped-def]
    client, h = web
    s = await sign_in(client, "root")
    bad = _workbook(h, phone="1390000123")
    r = await _upload(client, s.csrf, bad)
    assert r.status == 303 and r.headers["Location"].startswith("/console/registry/imports/")
    page = await (await client.get(r.headers["Location"])).text()
    row = row_of(load_workbook(io.BytesIO(bad))["人员"], "人员编号", PID)
    assert f"「人员」表第{row}行「手机」列：号码应为11位手机号" in page
    assert "发现 1 个问题，不能应用" in page and "确认应用" not in page
    apply_bad = r.headers["Location"] + "/apply"
    r = await client.post(apply_bad, data={"_csrf": s.csrf}, allow_redirects=False)
    assert r.status == 303 and h.ctx.registry_version == 0

    good = _workbook(h, phone="13900001234", new_grid=True)
    r = await _upload(client, s.csrf, good, geojson({"430623101001-99": RING}))
    preview = r.headers["Location"]
    page = await (await client.get(preview)).text()
    assert "变化：人员：修改1；网格：新增1；其中手机号变更 1 人" in page
    assert '<mark class="phone">◆ 手机：+86199****2078 → +86139****1234</mark>' in page
    assert "确认应用（版本 0 → 1）" in page
    r = await client.post(preview + "/apply", data={"_csrf": s.csrf}, allow_redirects=False)
    assert r.status == 303 and "已应用：台账版本 1" in _unquote(r.headers["Location"])
    assert h.ctx.registry_version == 1
    assert h.ctx.registry.data.persons[PID].phone == "+8613900001234"
    assert "430623101001-99" in h.ctx.registry.data.grids
    # Applied once: the same preview cannot be applied again.
    r = await client.post(preview + "/apply", data={"_csrf": s.csrf}, allow_redirects=False)
    assert "已过期或已应用" in _unquote(r.headers["Location"])
    history = await (await client.get("/console/registry/history")).text()
    cells = re.findall(r"<td>(.*?)</td>", history)
    assert cells[:4] == ["1", "2026-07-15 13:30:00", "root", "导入 台账.xlsx、边界.geojson"]
    assert cells[4].startswith("人员：修改1；网格：新增1；其中手机号变更 1 人<details>")
    assert ("修改人员 p43062300128 肖飞秀 <mark class=\"phone\">◆ 手机：+86199****2078 → "
            in cells[4])


def _unquote(location: str) -> str:
    from urllib.parse import unquote

    return unquote(location)


async def test_a_preview_made_before_another_change_cannot_be_applied(web) -> None:  # type: ignore[no-untyped-def]
    client, h = web
    s = await sign_in(client, "root")
    first = (await _upload(client, s.csrf, _workbook(h, phone="13900001234"))).headers["Location"]
    second = (await _upload(client, s.csrf, _workbook(h, phone="13700001234"))).headers["Location"]
    await client.post(first + "/apply", data={"_csrf": s.csrf})
    page = await (await client.get(second)).text()
    assert "台账已被他人更新（当前版本 1）：此预览不能应用" in page and "确认应用" not in page
    r = await client.post(second + "/apply", data={"_csrf": s.csrf}, allow_redirects=False)
    assert "台账已被他人更新（当前版本 1，本次变更基于版本 0）" in _unquote(r.headers["Location"])
    assert h.ctx.registry.data.persons[PID].phone == "+8613900001234"


async def test_an_upload_larger_than_an_alert_is_read(web) -> None:  # type: ignore[no-untyped-def]
    client, _h = web
    s = await sign_in(client, "root")
    r = await _upload(client, s.csrf, b"x" * (5 * 1024 * 1024))  # over the API's 4 MB
    assert r.status == 303
    assert ("无法导入：不是 Excel 工作簿（应为 .xlsx 或 .xls 文件）"
            in _unquote(r.headers["Location"]))


async def test_only_an_admin_uploads_and_every_role_exports_masked(web) -> None:  # type: ignore[no-untyped-def]
    client, h = web
    s = await sign_in(client, "dora")
    r = await _upload(client, s.csrf, _workbook(h, phone="13900001234"))
    assert r.status == 403
    assert not [k async for k in h.ctx.redis.scan_iter("wb:{reg}:staged:*")]
    r = await client.get("/console/registry/export.xlsx")
    ws = load_workbook(io.BytesIO(await r.read()))["人员"]
    assert ws.cell(row_of(ws, "人员编号", PID), 7).value == "+86199****2078"
    s = await sign_in(client, "root")
    r = await client.get("/console/registry/export.xlsx")
    ws = load_workbook(io.BytesIO(await r.read()))["人员"]
    assert ws.cell(row_of(ws, "人员编号", PID), 7).value == "+8619944532078"
    r = await client.get("/console/registry/template.xlsx")
    assert load_workbook(io.BytesIO(await r.read())).sheetnames == [
        "说明", "区划", "人员", "网格", "场所", "场所责任人", "值班表"]


async def test_edit_one_person_audited(web) -> None:  # type: ignore[no-untyped-def]
    client, h = web
    s = await sign_in(client, "root")
    url = f"/console/registry/people/{PID}"
    form = await (await client.get(url)).text()
    assert 'name="phone" value="+8619944532078"' in form
    r = await client.post(url, data={"_csrf": s.csrf, "phone": "139 0000 5555", "role": "primary",
                                     "v": "0"}, allow_redirects=False)
    assert ("已保存：台账版本 1（人员：修改1；其中手机号变更 1 人）"
            in _unquote(r.headers["Location"]))
    assert h.ctx.registry.data.persons[PID].phone == "+8613900005555"
    [(_, entry)] = await RegistryBook(h.ctx.redis).history()
    assert (entry.by, entry.source) == ("root", f"控制台编辑人员 {PID}")
    # A form shown before that change is refused, as is a bad phone or a role the grids forbid.
    r = await client.post(url, data={"_csrf": s.csrf, "phone": "13900006666", "role": "primary",
                                     "v": "0"}, allow_redirects=False)
    assert "台账已被他人更新" in _unquote(r.headers["Location"])
    for phone, role, said in (
            ("12345", "primary", "手机：号码应为11位手机号"),
            ("13900005555", "backup", "职位：此人是网格 430623101001-01（柳岗社区第1网格）"
                                      "的网格员，请先在网格中换人，再改职位"),
            ("13900005555", "county_duty",
             "职位：县值班员应属于县，此人属于柳岗社区（村（社区））")):
        r = await client.post(url, data={"_csrf": s.csrf, "phone": phone, "role": role, "v": "1"},
                              allow_redirects=False)
        assert said in _unquote(r.headers["Location"]), _unquote(r.headers["Location"])
    assert h.ctx.registry_version == 1
    s2 = await sign_in(client, "alan")
    r = await client.post(url, data={"_csrf": s2.csrf, "phone": "13900007777", "role": "primary",
                                     "v": "1"}, allow_redirects=False)
    assert r.status == 403 and h.ctx.registry_version == 1


async def test_the_board_of_a_campaign_whose_grid_was_removed(web) -> None:  # type: ignore[no-untyped-def]
    """A registry change removes a grid a running campaign holds: the board, its township
    view and its chase list still answer; the grid is on the 未叫醒 list when it comes up."""
    from tests.engine.helpers import cap_alert
    from warnbus.domain.models import RegistryData
    from warnbus.flow.credentials import ENGINE
    from warnbus.flow.intake import accept

    client, h = web
    res = await accept(h.ctx, cap_alert(codes=("430623101000",)), ENGINE)
    await h.drain()
    data = h.ctx.registry.data
    gone = "430623101001-01"
    await h.app.engine.registry.apply(
        RegistryData(data.regions, {k: v for k, v in data.grids.items() if k != gone},
                     data.persons, data.devices),
        expected=0, by="root", source="test", year=None, summary="", diff=b"{}",
        validated=False)
    h.clock.advance(3600)  # past the whole chain: the removed grid goes on the 未叫醒 list
    await h.drain()
    assert (await h.ctx.store.grids(res.campaign_id))[gone].state.value == "unreached"
    await sign_in(client, "alan")
    cid = res.campaign_id
    for path in (f"/console/campaigns/{cid}", f"/console/campaigns/{cid}?town=430623101000",
                 f"/console/campaigns/{cid}/chase?town=430623101000",
                 f"/console/campaigns/{cid}/chase?village=430623101001", "/console/"):
        r = await client.get(path, headers={"Accept": "text/html"})
        assert r.status == 200, (path, r.status, (await r.text())[:300])
    county = await (await client.get(f"/console/campaigns/{cid}/chase")).text()
    assert f"{gone}（已从台账删除）" in county


async def test_rosters_and_sites_through_the_console_then_the_version_is_approved(
        web) -> None:  # type: ignore[no-untyped-def]
    """The same service as the CLI: the preview counts sites and rosters and says the changed
    version waits for approval; applied, /console/duty shows it 待审批 with the shifts the
    approver sees; approved, it is in force; changed again by an import, its approval no
    longer holds (待重新审批) until an approver approves the new shifts."""
    from warnbus.domain.duty import schedule_digest

    client, h = web
    s = await sign_in(client, "root")
    r = await _upload(client, s.csrf, edit(export_workbook(h.ctx.registry.data), office_edit))
    preview = r.headers["Location"]
    page = _text(await (await client.get(preview)).text())
    assert "变化：人员：新增1，修改1；场所：新增1；值班表：修改1；其中手机号变更 1 人" in page
    assert (f"值班表 {JULY}（2026年7月主汛期值班表）的班次有变化：应用后须由审批人在控制台"
            "「值班安排」审批才生效") in page
    r = await client.post(preview + "/apply", data={"_csrf": s.csrf}, allow_redirects=False)
    assert h.ctx.registry_version == 1 and not (await h.ctx.duty_book()).approved(JULY)

    s = await sign_in(client, "alan")  # an approver
    duty = await (await client.get("/console/duty")).text()
    digest = schedule_digest(h.ctx.registry.data.rosters[JULY])
    assert f'/console/duty/rosters/{JULY}/approve' in duty and f'value="{digest}"' in duty
    r = await client.post(f"/console/duty/rosters/{JULY}/approve",
                          data={"_csrf": s.csrf, "digest": "stale"}, allow_redirects=False)
    assert "内容已更新，请查看后重新审批" in _unquote(r.headers["Location"])
    assert not (await h.ctx.duty_book()).approved(JULY)
    r = await client.post(f"/console/duty/rosters/{JULY}/approve",
                          data={"_csrf": s.csrf, "digest": digest}, allow_redirects=False)
    assert "已审批生效" in _unquote(r.headers["Location"])
    assert (await h.ctx.duty_book()).approved(JULY)

    def swap_back(wb: Workbook) -> None:
        ws = wb["值班表"]
        a = row_where(ws, 值班表编号=JULY, 区划代码=TOWN, 日期="2026-07-20")
        b = row_where(ws, 值班表编号=JULY, 区划代码=TOWN, 日期="2026-07-21")
        for header in ("值班员编号", "值班员", "值班员手机"):
            x, y = ws.cell(a, column(ws, header)).value, ws.cell(b, column(ws, header)).value
            put(ws, a, header, y)
            put(ws, b, header, x)

    s = await sign_in(client, "root")
    r = await _upload(client, s.csrf, edit(export_workbook(h.ctx.registry.data), swap_back))
    await client.post(r.headers["Location"] + "/apply", data={"_csrf": s.csrf})
    assert h.ctx.registry_version == 2 and not (await h.ctx.duty_book()).approved(JULY)
    s = await sign_in(client, "alan")
    assert "待重新审批（审批后内容已变更）" in await (await client.get("/console/duty")).text()
    digest = schedule_digest(h.ctx.registry.data.rosters[JULY])
    r = await client.post(f"/console/duty/rosters/{JULY}/approve",
                          data={"_csrf": s.csrf, "digest": digest}, allow_redirects=False)
    assert "已审批生效" in _unquote(r.headers["Location"])
    assert (await h.ctx.duty_book()).approved(JULY)
