"""In Chromium: an open board follows its campaign without a reload, and a message after an
action is shown once.

A duty officer watching a board saw the counts change after an Update while the header (level,
area, the alert's text, the message history) stayed as first served; after the Cancel the
grids kept their calling colours (已升级 ...), the pending list its cards, and the page never
said the warning was lifted until it was reloaded. The snapshot now carries the header's
version; a new one makes the page fetch the header's parts. And the 已停止叫应 message stayed
in the address: every reload said it again.
"""

from __future__ import annotations

from datetime import timedelta

from browser_kit import DESKTOP, live, phone_of, shot, signed_page

from tests.engine.helpers import T0, Harness, cap_alert
from warnbus.domain.models import MsgType, Reference, Severity
from warnbus.flow.credentials import ENGINE
from warnbus.flow.intake import accept

__all__ = ["live"]  # the fixture, from browser_kit
TOWNS = ("430623101000", "430623102000")  # 章华镇, 鲇鱼须镇


async def _red(h: Harness, codes: tuple[str, ...] = TOWNS):  # type: ignore[no-untyped-def]
    alert = cap_alert(codes=codes)
    cid = (await accept(h.ctx, alert, ENGINE)).campaign_id
    await h.drain()
    return alert, cid


def _text_has(selector: str, text: str) -> str:
    return (f"(document.querySelector({selector!r}) || {{}}).textContent"
            f"?.includes({text!r}) === true")


async def test_the_open_board_follows_an_update_and_the_cancel(live) -> None:  # type: ignore[no-untyped-def]
    base, h, browser = live
    alert, cid = await _red(h, TOWNS[:1])
    h.clock.advance(500)  # redials done, grids escalated to the backup officers
    await h.drain()
    board = await signed_page(browser, base, "both", **DESKTOP)
    await board.goto(f"{base}/console/campaigns/{cid}")
    await board.wait_for_function("Number(document.getElementById('board').dataset.updates) > 0")
    await board.evaluate("window.servedOnce = true")  # gone if the page were loaded again
    phone = await phone_of(browser, board)  # the same officer's phone, on the same board
    await phone.goto(f"{base}/console/campaigns/{cid}?town={TOWNS[0]}")
    await phone.wait_for_function("Number(document.getElementById('board').dataset.updates) > 0")
    assert "红色" in await board.inner_text("#board p.head")
    assert TOWNS[1] not in await board.inner_text("#board p.head")  # the areaDesc: the codes
    assert "红色预警" in await board.inner_text("main h1")
    assert await board.locator("#board svg.map path.s-escalated").count() > 0
    added = f'#board span[data-r="{TOWNS[1]}"]'
    assert await board.locator(added).count() == 0
    view = await board.get_attribute("#board svg.map", "viewBox")
    expires = await board.inner_text("#cexpires")
    # --- an Update from the feed: orange, a second township, new text
    update = cap_alert("43062304100000_20260715054000_2", msg_type=MsgType.UPDATE,
                       codes=TOWNS, severity=Severity.SEVERE, level_zh="橙色",
                       sent=T0 + timedelta(minutes=9),
                       references=(Reference(alert.sender, alert.identifier, "x"),))
    await accept(h.ctx, update, ENGINE)
    await h.drain()
    await board.wait_for_function(_text_has("#board p.head .lv", "橙色"))
    assert TOWNS[1] in await board.inner_text("#board p.head")
    assert "橙色预警" in await board.inner_text(".alert-card")
    assert "橙色预警" in await board.inner_text("main h1") and "橙色预警" in await board.title()
    assert await board.inner_text("#cexpires") != expires  # the Update's own expiry
    # The map shows the township added, and its row in the table (its counts live).
    assert await board.get_attribute("#board svg.map", "viewBox") != view
    assert await board.locator(added).count() > 0
    history = await board.inner_text("#board table.history")
    assert "更新" in history and "当前内容" in history and "已被更新取代" in history
    await board.wait_for_function(  # the added township's first wave, counted live
        f"Number(document.querySelector('{added}[data-k=\"delivered\"]')?.textContent) > 0"
        f" || Number(document.querySelector('{added}[data-k=\"pending\"]')?.textContent) > 0"
        f" || Number(document.querySelector('{added}[data-k=\"sent\"]')?.textContent) > 0")
    assert await board.evaluate("window.servedOnce") is True  # no reload
    # --- the Cancel: the page says it is lifted, nobody called, nothing pending
    cancel = cap_alert("43062304100000_20260715053000_3", msg_type=MsgType.CANCEL,
                       codes=TOWNS, sent=T0 + timedelta(minutes=10),
                       references=(Reference(alert.sender, update.identifier, "x"),))
    await board.fill("#stop-form input[name=reason]", "正在填写")  # the officer is typing
    await accept(h.ctx, cancel, ENGINE)
    await h.drain()
    await board.wait_for_selector("#ended")
    assert "该预警已解除" in await board.inner_text("#ended")
    assert await board.inner_text("#cstate") == "已解除"
    assert "解除了该预警" in await board.inner_text("#board table.history")
    await board.wait_for_selector("#none-pending")
    assert "该预警已解除，叫应已结束" in await board.inner_text("#chase")
    assert await board.locator("#chase .chase").count() == 0
    assert await board.inner_text('[data-c="waiting"]') == "0"
    for count in ("p_pending", "g_calling", "g_escalated"):
        assert await board.inner_text(f'[data-c="{count}"]') == "0", count
    assert int(await board.inner_text('[data-c="g_ended"]')) > 0
    for colour in ("pending", "sent", "delivered", "escalated", "door"):
        assert await board.locator(f"#board svg.map path.s-{colour}").count() == 0, colour
    # What the officer typed is kept until they leave the form; then the tools follow.
    assert await board.input_value("#stop-form input[name=reason]") == "正在填写"
    await board.fill("#stop-form input[name=reason]", "")
    await board.locator("h2").first.click()
    await board.wait_for_function("!document.getElementById('stop-btn')")
    assert await board.locator("#cancel-btn").count() == 0
    assert await board.evaluate("window.servedOnce") is True  # still no reload
    # The phone, in a township's drill-down, says the same.
    await phone.wait_for_selector("#ended")
    assert await phone.inner_text("#cstate") == "已解除"
    assert "橙色" in await phone.inner_text("#board p.head .lv")
    assert await phone.locator("#chase .chase").count() == 0
    assert await phone.locator("#board svg.map path.s-escalated").count() == 0
    await shot(phone, "board-lifted-phone.png")
    await board.evaluate("window.scrollTo(0, 0)")
    await shot(board, "board-lifted.png", doc="console-board-lifted.png")
    # A grid's card on the map says the same.
    grid = await board.get_attribute("#board svg.map path.s-ended", "data-g")
    await board.locator(f'#board svg.map path[data-g="{grid}"]').dispatch_event("click")
    await board.wait_for_selector(f'#grid-panel[data-grid="{grid}"]')
    panel = await board.inner_text("#grid-panel")
    assert "未确认·已结束" in panel and "叫应中" not in panel and "下一步" not in panel, panel


async def test_a_message_after_an_action_shows_once(live) -> None:  # type: ignore[no-untyped-def]
    base, h, browser = live
    _alert, cid = await _red(h)
    board = await signed_page(browser, base, "alan", **DESKTOP)  # an approver
    await board.goto(f"{base}/console/campaigns/{cid}")
    await board.fill("#stop-form input[name=reason]", "气象台电话告知为误报")
    await board.click("#stop-btn")  # confirmed in the dialog
    await board.wait_for_selector("p.ok:has-text('已停止叫应')")
    await board.wait_for_function("!location.search.includes('msg=')")
    assert "ms=" not in board.url and "mt=" not in board.url
    await board.reload()
    await board.wait_for_selector("#stopped")  # the state is shown, the message is not
    assert await board.locator("p.ok").count() == 0
    # The same on a phone with the session of the desktop, and for a drill-down's address.
    phone = await phone_of(browser, board)
    await phone.goto(f"{base}/console/campaigns/{cid}?town={TOWNS[0]}")
    await phone.wait_for_selector("#board")
    assert await phone.locator("p.ok").count() == 0
