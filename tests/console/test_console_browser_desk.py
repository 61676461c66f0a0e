"""The duty desk in headless Chromium, on a desktop and on a phone (390 px): a feed alert
arriving on an open home page with a notice and a beep, the pending list from the first
minute, a door-to-door result closing a grid, stopping the calling. Screenshots go to
artifacts/screenshots/ (the important ones are copied to docs/img/).
"""

from __future__ import annotations

import re

from browser_kit import DESKTOP, PHONE, SHOTS, grid_point, live, phone_of, shot, signed_page

from tests.engine.helpers import Harness, cap_alert
from tests.feeds.feedkit import FeedServer, atom, feed_settings, fixture
from warnbus.domain.models import AckVia, DeliveryKind
from warnbus.domain.steps import Step
from warnbus.feeds import FeedPoller
from warnbus.flow.acks import record_ack
from warnbus.flow.credentials import ENGINE, of_feed
from warnbus.flow.intake import accept

__all__ = ["live"]  # the fixture, from browser_kit



async def _campaign(h: Harness, feed: bool = False) -> str:
    """A red warning for township 101 (a feed's, or the engine's), its first wave sent."""
    alert = cap_alert(codes=("430623101000",))
    cred = of_feed(feed_settings("qx-met", "http://127.0.0.1:9/")) if feed else ENGINE
    cid = (await accept(h.ctx, alert, cred)).campaign_id
    await h.drain()
    return cid


async def test_a_feed_alert_rings_on_the_open_desk(live) -> None:  # type: ignore[no-untyped-def]
    base, h, browser = live
    server = FeedServer()
    await server.start()
    try:
        desk = await signed_page(browser, base, "alan", **DESKTOP)  # an approver
        phone = await signed_page(browser, base, "dora", **PHONE)  # a drafter
        for page in (desk, phone):
            await page.wait_for_function(
                "Number(document.getElementById('desk').dataset.updates) > 0")
        assert "当前没有进行中的预警" in await desk.inner_text("#live")
        await desk.wait_for_function("document.body.dataset.sound === 'on'")
        # The met bureau's feed publishes a red warning; the poller takes it in.
        server.put("/cap/red.xml", fixture("rainstorm-red.xml"),
                   content_type="application/cap+xml")
        server.put("/index.atom", atom([{"id": "urn:red", "href": server.url("/cap/red.xml")}]),
                   content_type="application/atom+xml")
        poller = FeedPoller(h.ctx, feed_settings("qx-met", server.url("/index.atom")))
        try:
            assert (await poller.poll_once()).counts["accepted"] == 1
        finally:
            await poller.aclose()
        await h.drain()
        notice = ".notice.n-alert:has-text('华容县气象台发布暴雨红色预警信号')"
        for page in (desk, phone):
            await page.wait_for_selector(notice)
            assert "数据源 qx-met（自动接入）" in await page.inner_text(notice)
            await page.wait_for_selector(
                "#live .live-card:has-text('华容县气象台发布暴雨红色预警信号')")
        await desk.wait_for_function("Number(document.body.dataset.beeps) >= 1")
        assert (await desk.title()).startswith("【1条新提示】")
        await shot(desk, "desk-notice.png", doc="console-desk-notice.png")
        await shot(phone, "desk-notice-phone.png", doc="console-desk-notice-phone.png")
        # A drafter submits a red warning: the approver is told, the drafter is not.
        csrf = await phone.get_attribute('meta[name="csrf"]', "content")
        r = await phone.context.request.post(f"{base}/console/compose", max_redirects=0, form={
            "_csrf": csrf, "kind": "alert", "hazard": "rainstorm", "level": "red",
            "status": "Actual", "headline": "华容县应急管理局发布暴雨红色预警",
            "description": "预计未来3小时降雨量将达100毫米以上。", "instruction": "立即转移。",
            "effective": "2026-07-15T13:30", "expires": "2026-07-15T19:30",
            "area": "430623102000", "confirmed": "1"})
        assert r.status == 303
        await desk.wait_for_selector(".notice.n-draft:has-text('华容县应急管理局发布暴雨红色预警')")
        await desk.wait_for_function("Number(document.body.dataset.beeps) >= 2")
        await phone.wait_for_selector("#drafts-box:has-text('华容县应急管理局发布暴雨红色预警')")
        assert await phone.locator(".notice.n-draft").count() == 0
        # The notice leads to the board: the alert's full text, its source, its history.
        await desk.click(f"{notice} a")
        await desk.wait_for_selector("#board")
        assert "预计未来3小时内万庾镇、插旗镇、注滋口镇" in await desk.inner_text(".alert-card")
        assert "数据源 qx-met（自动接入）" in await desk.inner_text(".source")
        assert "发布" in await desk.inner_text("table.history")
        await desk.screenshot(path=str(SHOTS / "board-feed.png"), full_page=False)
    finally:
        await server.close()


async def test_the_pending_list_from_the_first_minute(live) -> None:  # type: ignore[no-untyped-def]
    base, h, browser = live
    cid = await _campaign(h)
    h.clock.advance(40)
    grids = sorted(await h.ctx.store.grids(cid))
    desk = await signed_page(browser, base, "alan", **DESKTOP)
    await desk.goto(f"{base}/console/campaigns/{cid}")
    await desk.wait_for_function("Number(document.getElementById('board').dataset.updates) > 0")
    assert int(await desk.inner_text('[data-c="waiting"]')) == len(grids)
    assert await desk.locator("#chase .chase").count() == min(60, len(grids))
    first = desk.locator("#chase .chase").first
    assert (await first.locator("a.tel").first.get_attribute("href") or "").startswith("tel:+86")
    assert "叫应中 · 第1轮 · 已呼叫3次 · 下一步 13:33:00 第1次重拨" in await first.inner_text()
    # Five officers confirm on their phones: the list follows without a reload.
    gone = [(await desk.locator("#chase .chase").nth(i).get_attribute("data-grid")) or ""
            for i in range(5)]
    for gid in gone:
        await record_ack(h.ctx, cid, h.ctx.registry.data.grids[gid].primary, AckVia.DTMF)
    await desk.wait_for_function(
        f"document.querySelector('[data-c=\"waiting\"]').textContent === '{len(grids) - 5}'")
    for gid in gone:
        assert await desk.locator(f'#chase .chase[data-grid="{gid}"]').count() == 0
    await desk.locator("h2:has-text('待确认名单')").evaluate("e => e.scrollIntoView()")
    await shot(desk, "board-pending.png", doc="console-board-pending.png")
    # A grid clicked on the map shows its people and calls.
    gid = grids[-1]
    await desk.locator("svg.map").scroll_into_view_if_needed()
    await desk.mouse.click(*await grid_point(desk, "#board svg.map", h, gid))
    await desk.wait_for_selector(f'#grid-panel:not([hidden]) .chase[data-grid="{gid}"]')
    officer = h.ctx.registry.data.persons[h.ctx.registry.data.grids[gid].primary]
    assert officer.name in await desk.inner_text("#grid-panel")
    await desk.locator("#grid-panel").screenshot(path=str(SHOTS / "board-grid-panel.png"))
    # On a phone: the list with numbers to tap, from the first minute.
    phone = await phone_of(browser, desk)
    await phone.goto(f"{base}/console/campaigns/{cid}?town=430623101000")
    await phone.locator("#chase").scroll_into_view_if_needed()
    tel = phone.locator("#chase .chase a.tel").first
    assert (await tel.get_attribute("href") or "").startswith("tel:+86") and await tel.is_visible()
    await shot(phone, "board-pending-phone.png", doc="console-board-pending-phone.png")


async def test_a_door_to_door_result_closes_the_grid(live) -> None:  # type: ignore[no-untyped-def]
    base, h, browser = live
    cid = await _campaign(h)
    h.clock.advance(500)  # the redials, then the backups: escalated grids lead the list
    await h.drain()
    desk = await signed_page(browser, base, "alan", **DESKTOP)
    await desk.goto(f"{base}/console/campaigns/{cid}")
    card = desk.locator("#chase .chase.s-escalated").first
    gid = await card.get_attribute("data-grid") or ""
    async with desk.expect_navigation():
        await card.locator("button:has-text('安排入户')").click()
    head = h.ctx.person(h.ctx.registry.chain(gid, at=h.clock.now())[2] or "")
    assert head is not None
    await desk.wait_for_selector(f"p.ok:has-text('已通知{head.name}入户叫应')")
    await h.drain()
    await desk.wait_for_selector(f'svg.map path[data-g="{gid}"].s-door')
    assert "入户中" in await desk.inner_text(f'#chase .chase[data-grid="{gid}"]')
    # The village head opens the link in their message on a phone and enters the result.
    texts = [d.text for d in h.sent()
             if d.target_id == head.id and d.step == int(Step.DOOR_TO_DOOR)]
    link = re.search(r"https?://\S+?(/door/[A-Za-z0-9_.-]+)", "\n".join(texts))
    assert link, texts
    visitor = await browser.new_context(locale="zh-CN", **PHONE)  # no console session at all
    phone = await visitor.new_page()
    await phone.goto(base + link.group(1))
    assert h.ctx.registry.data.grids[gid].name in await phone.inner_text("main")
    await phone.check("input[name=outcome][value=moved]")
    await phone.fill("textarea[name=note]", "3户7人已转移至村委会")
    await shot(phone, "door-link-phone.png", doc="console-door-link-phone.png",
                   full_page=True)
    await phone.click("#door-submit")
    await phone.wait_for_selector("#door-done:has-text('已转移')")
    # The board closes the grid on the result, live.
    await desk.wait_for_selector(f'svg.map path[data-g="{gid}"].s-visited')
    await desk.wait_for_function(
        f"!document.querySelector('#chase .chase[data-grid=\"{gid}\"]')")
    await desk.goto(f"{base}/console/campaigns/{cid}/grids/{gid}")
    text = await desk.inner_text("main")
    assert "入户结果：已转移：3户7人已转移至村委会" in text and "已入户" in text
    await shot(desk, "door-grid.png", doc="console-door-grid.png", full_page=True)
    # An officer enters a result at the console for another grid, on a phone.
    small = await phone_of(browser, desk)
    await small.goto(f"{base}/console/campaigns/{cid}")
    other = small.locator("#chase .chase.s-escalated").first
    other_gid = await other.get_attribute("data-grid") or ""
    await other.locator(".door-form select").select_option("nobody_home")
    await other.locator(".door-form input[name=note]").fill("两户无人，已电话联系")
    async with small.expect_navigation():
        await other.locator(".door-form button").click()
    await small.wait_for_selector("p.ok:has-text('已登记入户结果：无人在家，该网格已结束叫应')")
    assert await small.locator(f'svg.map path[data-g="{other_gid}"].s-visited').count() == 1
    await shot(small, "board-door-phone.png", doc="console-board-door-phone.png")


async def test_stop_calling(live) -> None:  # type: ignore[no-untyped-def]
    base, h, browser = live
    cid = await _campaign(h, feed=True)
    grids = await h.ctx.store.grids(cid)
    drafter = await signed_page(browser, base, "dora", **DESKTOP)
    await drafter.goto(f"{base}/console/campaigns/{cid}")
    assert await drafter.locator("#stop-btn").count() == 0  # an approver's decision
    desk = await signed_page(browser, base, "alan", **DESKTOP)
    await desk.goto(f"{base}/console/campaigns/{cid}")
    await desk.fill("#stop-form input[name=reason]", "气象台电话告知为误报")
    async with desk.expect_navigation():
        await desk.click("#stop-btn")  # confirmed in the dialog
    await desk.wait_for_selector(f"p.ok:has-text('已停止叫应，{len(grids)}个网格不再呼叫')")
    banner = await desk.inner_text("#stopped")
    assert "Alan" in banner and "气象台电话告知为误报" in banner
    assert await desk.inner_text('[data-c="p_pending"]') == "0"
    assert await desk.inner_text('[data-c="g_stopped"]') == str(len(grids))
    assert await desk.inner_text('[data-c="g_calling"]') == "0"
    assert await desk.locator("svg.map path.s-stopped").count() == len(grids)
    assert "没有待确认的网格（已停止叫应）" in await desk.inner_text("#chase")
    await shot(desk, "board-stopped.png", doc="console-board-stopped.png")
    # Nothing more is called: the redials and the chain would run to 1,200 s.
    calls = [d for d in h.sent() if d.kind in DeliveryKind.CALLS]
    for _ in range(7):
        h.clock.advance(200)
        await h.drain()
    assert [d for d in h.sent() if d.kind in DeliveryKind.CALLS] == calls
    phone = await phone_of(browser, desk)
    await phone.goto(f"{base}/console/")
    await phone.wait_for_selector(".live-card:has-text('已停止叫应')")
    await phone.goto(f"{base}/console/campaigns/{cid}")
    await phone.screenshot(path=str(SHOTS / "board-stopped-phone.png"))
