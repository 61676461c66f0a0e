"""The console in headless Chromium (Debian's, driven by Playwright): the whole duty night.

Sign in, compose a red warning, preview its reach, approve it as a second user, watch counts
and map change live as officers confirm (through the engine), record a manual confirmation,
cancel (解除) with approval, export the record. Screenshots go to artifacts/screenshots/.
"""

from __future__ import annotations

import asyncio
import csv
import io
from pathlib import Path
from typing import Any

import shapely
from browser_kit import SHOTS, live, signed_page, to_screen
from playwright.async_api import TimeoutError as PlaywrightTimeout

from rules.match import Matcher
from tests.engine.helpers import Harness
from warnbus.domain.models import AckVia, Area
from warnbus.flow.acks import record_ack
from warnbus.web.console import svgmap
from warnbus.web.console.drawn import parse_ring

__all__ = ["live"]  # the fixture, from browser_kit
_signed_page = signed_page  # test_console_registry_browser.py imports it from here

async def _count(page: Any, key: str) -> int:
    return int(await page.inner_text(f'[data-c="{key}"]'))


async def test_duty_night_in_the_browser(live) -> None:  # type: ignore[no-untyped-def]
    base, h, browser = live
    ctx = h.ctx
    drafter = await signed_page(browser, base, "dora", viewport={"width": 1366, "height": 900})
    # --- compose: hazard table, pre-filled texts, township tree, preview of reach
    await drafter.click("text=发布预警")
    await drafter.select_option("#hazard", "rainstorm")
    await drafter.select_option("#level", "red")
    await drafter.wait_for_function(
        "document.getElementById('headline').value.includes('暴雨红色预警')")
    assert "转移" in await drafter.input_value("#instruction")
    for town in ("430623101000", "430623102000"):
        await drafter.check(f'input.town[value="{town}"]')
    await drafter.click("#preview-btn")
    await drafter.wait_for_selector('#preview [data-p="grids"]')
    grids = int(await drafter.inner_text('#preview [data-p="grids"]'))
    assert grids > 0 and await drafter.locator("svg.map path.sel").count() == grids
    assert int(await drafter.inner_text('#preview [data-p="speakers"]')) > 0
    assert "须由第二人" in await drafter.inner_text("#preview")
    await drafter.screenshot(path=str(SHOTS / "compose.png"), full_page=True)
    await drafter.click("#submit-btn")
    # Confirmed before it goes anywhere: the level and the reach, once more.
    await drafter.wait_for_selector("#confirm-btn")
    assert f"覆盖{grids}个网格" in await drafter.inner_text("#confirm-publish")
    await drafter.screenshot(path=str(SHOTS / "compose-confirm.png"), full_page=True)
    await drafter.click("#confirm-btn")
    await drafter.wait_for_selector("text=等待审批人批准")
    assert not await ctx.redis.zcard("wb:campaigns")  # a drafter cannot publish red alone
    # --- approve with a second user
    approver = await signed_page(browser, base, "alan", viewport={"width": 1366, "height": 900})
    await approver.click("text=审批")
    await approver.click("text=华容县应急管理局发布暴雨红色预警")
    await approver.click("#approve-btn")
    await approver.wait_for_selector("#board")
    cid = await approver.get_attribute("#board", "data-cid")
    assert cid and "审批 Alan" in await approver.inner_text(".source")  # display name
    # --- live: the engine sends, officers confirm; counts and map follow without reload
    await h.drain()
    await approver.wait_for_function("Number(document.querySelector('[data-c=p_reached]')"
                                     ".textContent) > 0")
    targets = await ctx.store.targets(cid)
    primaries = sorted(t.id for t in targets.values()
                       if t.role is not None and t.role.value == "primary")
    for pid in primaries[: len(primaries) // 2]:
        await record_ack(ctx, cid, pid, AckVia.LINK)
    await approver.wait_for_function(
        "Number(document.querySelector('[data-c=p_confirmed]').textContent)"
        f" >= {len(primaries) // 2}")
    assert await approver.locator("svg.map path.s-confirmed").count() >= len(primaries) // 2
    # Nobody else answers: redials, then escalation; the 未叫醒 list fills in by itself.
    for step in (200, 400):
        h.clock.advance(step)
        await h.drain()
    await approver.wait_for_selector("#chase .chase form button:has-text('人工确认')")
    assert await approver.locator("svg.map path.s-escalated").count() > 0
    # The list re-renders live (SSE) while escalations land: a fill or click on a row that
    # was just replaced goes nowhere, so try again on the fresh row (bounded).
    for attempt in range(4):
        first = approver.locator("#chase .chase").first
        await first.locator("input[name=reason]").fill("电话回拨，已确认收到")
        try:
            async with approver.expect_navigation(timeout=6000):
                await first.locator("button:has-text('人工确认')").click()
            break
        except PlaywrightTimeout:
            assert attempt < 3, "the manual confirmation form never submitted"
    await approver.wait_for_selector("p.ok:has-text('人工确认')")
    acks = await ctx.store.acks(cid)
    assert any(a.via is AckVia.CONSOLE and a.by == "alan" for a in acks.values())
    await approver.wait_for_function("Number(document.getElementById('board').dataset.updates) > 0")
    await approver.screenshot(path=str(SHOTS / "board.png"))
    await approver.screenshot(path=str(SHOTS / "board-full.png"), full_page=True)
    phone = await browser.new_context(viewport={"width": 390, "height": 844}, locale="zh-CN",
                                      storage_state=await approver.context.storage_state())
    small = await phone.new_page()
    await small.goto(f"{base}/console/campaigns/{cid}?town=430623101000")
    await small.wait_for_selector("svg.map")
    await small.screenshot(path=str(SHOTS / "board-phone.png"), full_page=False)
    # --- cancel (解除): one click plus confirmation, approved by a second person
    await drafter.goto(f"{base}/console/campaigns/{cid}")
    await drafter.fill("#board form input[name=reason]", "降雨减弱，解除预警")
    await drafter.click("#cancel-btn")
    await drafter.wait_for_selector("text=等待审批人批准")
    await approver.goto(f"{base}/console/drafts")
    await approver.click("text=解除暴雨预警")
    await approver.click("#approve-btn")
    await approver.wait_for_selector("#board")
    await h.drain()
    await approver.wait_for_function("document.getElementById('cstate').textContent === '已解除'")
    # --- export the record
    async with approver.expect_download() as dl:
        await approver.click("text=导出叫应记录")
    path = await (await dl.value).path()
    text = await asyncio.to_thread(Path(path).read_text, encoding="utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert any(r["确认方式"] == "人工确认" and r["确认人"] == "Alan" for r in rows)
    assert any(r["步骤"] == "解除通知" for r in rows)
    await approver.goto(f"{base}/console/campaigns/{cid}/print")
    assert "起草 Dora，审批 Alan" in await approver.inner_text("main")


def _corner_grids(h: Harness, spots: list[tuple[float, float]]) -> list[tuple[str, float, float]]:
    """For spots given as fractions of the map, the grid there and a point inside it (map
    units): clicking there must give a corner inside that grid."""
    geom = svgmap.geometry(h.ctx.registry)
    grids = h.ctx.registry.data.grids
    shapes = {gid: shapely.Polygon([(lon, lat) for lat, lon in g.polygon])
              for gid, g in grids.items()}
    out = []
    for fx, fy in spots:
        lat, lon = geom.proj.latlon(fx * geom.width, fy * geom.height)
        gid = next(g for g, poly in shapes.items() if poly.contains(shapely.Point(lon, lat)))
        inner = shapes[gid].point_on_surface()
        x, y = geom.proj.xy(inner.y, inner.x)
        out.append((gid, x, y))
    return out


async def test_draw_the_area_on_the_map(live) -> None:  # type: ignore[no-untyped-def]
    base, h, browser = live
    reg = h.ctx.registry
    drafter = await signed_page(browser, base, "dora", viewport={"width": 1366, "height": 900})
    await drafter.goto(f"{base}/console/compose")
    await drafter.select_option("#hazard", "rainstorm")
    await drafter.select_option("#level", "orange")
    await drafter.wait_for_function(
        "document.getElementById('headline').value.includes('暴雨橙色预警')")
    corners = _corner_grids(h, [(0.30, 0.30), (0.62, 0.24), (0.70, 0.62), (0.36, 0.70)])
    # --- draw: four corners and a stray one, undo the stray one, finish
    await drafter.click("#draw-btn")
    for _gid, x, y in [*corners, (0, 500.0, 480.0)]:
        await drafter.mouse.click(*await to_screen(drafter, "#compose-map", x, y))
    assert await drafter.inner_text("#drawn-state") == "绘制中（5个点，未完成）"
    await drafter.click("#undo-btn")
    assert await drafter.inner_text("#drawn-state") == "绘制中（4个点，未完成）"
    assert await drafter.locator("#compose-map .draw-dot").count() == 4
    await drafter.click("#finish-btn")
    assert await drafter.inner_text("#drawn-state") == "已绘制（4个顶点）"
    ring = parse_ring(await drafter.input_value("#polygon"))
    assert len(ring) == 5 and ring[0] == ring[-1]
    # The page's projection is the server's: each corner lies in the grid clicked.
    for (gid, _x, _y), (lat, lon) in zip(corners, ring, strict=False):
        cell = shapely.Polygon([(b, a) for a, b in reg.data.grids[gid].polygon])
        assert cell.contains(shapely.Point(lon, lat)), (gid, lat, lon)
    outline = await drafter.get_attribute("#compose-map .draw-shape", "points")
    assert outline is not None and len(outline.split()) == 4  # the closed outline is drawn
    await drafter.fill("#polygon-desc", "城区易涝片区")
    # --- preview: exactly the grids the Matcher finds for the drawn polygon
    await drafter.click("#preview-btn")
    await drafter.wait_for_selector('#preview [data-p="grids"]')
    want = set(Matcher(reg.data).match_areas([Area("drawn", polygons=(ring,))]).grids)
    assert int(await drafter.inner_text('#preview [data-p="grids"]')) == len(want) > 20
    sel = await drafter.eval_on_selector_all("#compose-map path.sel",
                                             "ps => ps.map(p => p.dataset.g)")
    assert set(sel) == want
    await drafter.screenshot(path=str(SHOTS / "compose-draw.png"), full_page=True)
    await drafter.click("#submit-btn")
    await drafter.click("#confirm-btn")
    await drafter.wait_for_selector("text=等待审批人批准")  # orange: a second person
    # --- approve: the approver sees the drawn area on the draft's map
    approver = await signed_page(browser, base, "alan", viewport={"width": 1366, "height": 900})
    await approver.click("text=审批")
    await approver.click("text=华容县应急管理局发布暴雨橙色预警")
    await approver.wait_for_selector("#draft-map path.drawn")
    assert "城区易涝片区（地图绘制，4个顶点）" in await approver.inner_text("#draft-area")
    assert await approver.locator("#draft-map path.sel").count() == len(want)
    await approver.screenshot(path=str(SHOTS / "draft-draw.png"), full_page=True)
    await approver.click("#approve-btn")
    await approver.wait_for_selector("#board svg.map path.drawn")
    cid = await approver.get_attribute("#board", "data-cid")
    await h.drain()
    # Published with the polygon (the campaign tracks the sites in it beside its grids).
    assert {g for g in await h.ctx.store.grids(cid) if not reg.is_site(g)} == want
    await approver.reload()
    await approver.wait_for_selector("#board svg.map path.drawn")
    await approver.screenshot(path=str(SHOTS / "board-draw.png"))
    # --- on a phone, by touch: three taps, then a tap on the first corner closes the area
    phone = await browser.new_context(viewport={"width": 390, "height": 844}, locale="zh-CN",
                                      has_touch=True, is_mobile=True, bypass_csp=True,
                                      storage_state=await drafter.context.storage_state())
    small = await phone.new_page()
    await small.goto(f"{base}/console/compose")
    await small.locator("#draw-btn").scroll_into_view_if_needed()
    await small.locator("#draw-btn").tap()
    taps = [(300.0, 200.0), (560.0, 230.0), (450.0, 430.0), (300.0, 200.0)]
    for x, y in taps:
        await small.touchscreen.tap(*await to_screen(small, "#compose-map", x, y))
    assert await small.inner_text("#drawn-state") == "已绘制（3个顶点）"
    assert len(parse_ring(await small.input_value("#polygon"))) == 4
    await small.locator("#draw-card").screenshot(path=str(SHOTS / "compose-draw-phone.png"))
    await phone.close()
