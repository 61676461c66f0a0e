"""In Chromium, desktop (1280 px) and phone (390 px), two users: a console 解除 of an orange
warning and an Update that drops a township (issue 17's Show list).

The 解除: its preview promises no confirmation, no redial, no escalation, and shows the texts
each channel sends; what the test channels then carry (voice, SMS, WeCom, loudspeaker) is
exactly that: who lifts which warning for which area since when, no defence guidance, no key
to press, and nobody is called again. The Update: its confirmation says what changes (before
and after, on a map and in counts), the dropped township's people get a 解除 notice for their
area, and the board closes that township's grids (已移出), never leaving them pending.
Screenshots: artifacts/screenshots/ (docs/img/ with WARNBUS_DOC_SHOTS=1).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest_asyncio
from browser_kit import DESKTOP, live, phone_of, serve, shot, signed_page
from test_console_continuation_preview import shown

from tests.engine.helpers import Harness
from warnbus.domain.models import DeliveryKind, TargetKind
from warnbus.flow.filed import BEIJING

__all__ = ["live"]  # the fixture, from browser_kit
KEPT, DROPPED = "430623101000", "430623102000"  # 章华镇, 鲇鱼须镇
#: Anything that asks for a confirmation, in any channel's words.
ASKS = re.compile(r"按1|按键|回复1|确认收到|请确认|/ack/")
#: What a warning says that a 解除 must not: its alarm and the defence guidance.
WARNING_WORDS = ("紧急通知", "【橙色预警】", "防御指南", "转移", "加强巡查", "做好防御")
POLICY = Path(__file__).resolve().parents[2] / "rules" / "policy.toml"


@pytest_asyncio.fixture
async def called(redis_url: str, tmp_path: Path) -> AsyncIterator[tuple[str, Harness, Any]]:
    """The console on an engine whose orange 解除 is called as well as texted (voice, SMS,
    WeCom; the speakers as always), with the default: no confirmation asked of it."""
    head, orange = POLICY.read_text("utf-8").split("[levels.orange]", 1)
    was = 'cancel_channels = ["sms", "wecom"]'
    assert was in orange.split("[levels.", 1)[0]
    path = tmp_path / "policy.toml"
    path.write_text(head + "[levels.orange]" + orange.replace(
        was, 'cancel_channels = ["voice", "sms", "wecom"]', 1), "utf-8")
    async with serve(redis_url, policy=str(path)) as got:
        yield got


async def _approve(approver: Any, draft_url: str) -> str:
    await approver.goto(draft_url)
    await approver.click("#approve-btn")
    await approver.wait_for_selector("#board")
    return str(await approver.get_attribute("#board", "data-cid"))


async def _orange(browser: Any, base: str, h: Harness) -> tuple[Any, Any, str, str]:
    """Dora drafts an orange rainstorm warning for both townships, Alan approves it: the
    two pages, the campaign and the warning's defence guidance."""
    drafter = await signed_page(browser, base, "dora", **DESKTOP)
    await drafter.goto(f"{base}/console/compose")
    await drafter.select_option("#hazard", "rainstorm")
    await drafter.select_option("#level", "orange")
    await drafter.wait_for_function(
        "document.getElementById('headline').value.includes('暴雨橙色预警')")
    guidance = await drafter.input_value("#instruction")
    for town in (KEPT, DROPPED):
        await drafter.check(f'input.town[value="{town}"]')
    await drafter.click("#submit-btn")
    await drafter.click("#confirm-btn")
    await drafter.wait_for_selector("text=等待审批人批准")
    approver = await signed_page(browser, base, "alan", **DESKTOP)
    cid = await _approve(approver, drafter.url.split("?")[0])
    await h.drain()
    return drafter, approver, cid, guidance


def _since(h: Harness) -> str:
    """The engine's time now as the texts say it (7月15日13时40分, Beijing time)."""
    t = datetime.fromtimestamp(h.clock.now(), BEIJING)
    return f"{t.month}月{t.day}日{t.hour}时{t.minute}分"


async def _show_texts(page: Any) -> None:
    """Open the preview's texts and bring them into view (for the screenshot)."""
    await page.eval_on_selector_all("details:has(p.msg)", "ds => ds.forEach(d => d.open = true)")
    await page.locator("details:has(p.msg)").first.scroll_into_view_if_needed()
    await page.evaluate("window.scrollBy(0, -80)")


def _not_a_warning(text: str, guidance: str) -> None:
    assert not ASKS.search(text), text
    for word in WARNING_WORDS:
        assert word not in text, (word, text)
    for clause in re.split(r"[，。；！]", guidance):
        assert len(clause) < 6 or clause not in text, (clause, text)


async def test_a_console_cancel_says_what_is_lifted_on_every_channel(called) -> None:  # type: ignore[no-untyped-def]
    base, h, browser = called
    drafter, approver, cid, guidance = await _orange(browser, base, h)
    h.clock.advance(600)  # the first redials have gone out
    await h.drain()
    board = f"{base}/console/campaigns/{cid}"
    await drafter.goto(board)
    await drafter.fill("#board form input[name=reason]", "降雨减弱，解除预警")
    await drafter.click("#cancel-btn")  # confirmed in the dialog
    await drafter.wait_for_selector("text=等待审批人批准")
    draft_url = drafter.url.split("?")[0]
    # --- the preview: what each channel will carry, and no promise of a confirmation
    texts, stats = shown(await drafter.content())
    assert stats["deadline"] == "解除通知无需确认，不重拨、不升级"
    labels = {label.split("·")[0] for label in texts}
    assert labels == {"语音电话", "短信", "企业微信", "应急广播"}, texts
    prose = await drafter.inner_text("main")
    for never in ("5分钟", "须确认", "重拨2次", "全部重拨", "按1"):
        assert never not in prose, never
    assert "有效期" not in await drafter.inner_text("dl.kv")  # a 解除 has no period
    await _show_texts(drafter)
    await shot(drafter, "cancel-preview.png", doc="console-cancel-preview.png")
    phone = await phone_of(browser, drafter)
    await phone.goto(draft_url)
    await _show_texts(phone)
    await shot(phone, "cancel-preview-phone.png", doc="console-cancel-preview-phone.png")
    # --- Alan approves: the 解除 goes out on every channel, as previewed
    since = _since(h)
    assert await _approve(approver, draft_url) == cid
    await h.drain()
    await approver.wait_for_function("document.getElementById('cstate').textContent === '已解除'")
    lifts = [d for d in h.sent() if d.kind is DeliveryKind.CANCEL]
    assert {d.channel for d in lifts} == {"voice", "sms", "wecom", "loudspeaker"}
    by_medium = {"voice": "语音电话", "sms": "短信", "wecom": "企业微信", "loudspeaker": "应急广播"}
    for d in lifts:
        # who lifts which warning, since when, for which area
        assert "解除" in d.text and "华容县" in d.text and "暴雨橙色预警" in d.text, d.text
        assert since in d.text, (since, d.text)
        assert "章华镇" in d.text or d.target_kind is not TargetKind.PERSON, d.text
        _not_a_warning(d.text, guidance)
        assert not d.asks_confirmation and d.ack_url is None
        previewed = [t for label, t in texts.items() if label.startswith(by_medium[d.channel])]
        assert d.text in previewed or d.channel == "loudspeaker", (d.text, previewed)
    # Nobody is called again for it: no redial, no escalation.
    sent = len(h.sent())
    for _ in range(4):
        h.clock.advance(600)
        await h.drain()
    assert len(h.sent()) == sent
    await approver.reload()
    history = await approver.inner_text("table.history")
    assert "解除" in history and "解除了该预警" in history
    # The record a county files: the 解除 rows, nothing read that nobody could see read.
    await approver.goto(f"{base}/console/campaigns/{cid}/print")
    record = await approver.inner_text("main")
    assert "解除通知" in record and "已读" not in record


async def test_an_update_that_drops_a_township(live) -> None:  # type: ignore[no-untyped-def]
    base, h, browser = live
    drafter, approver, cid, guidance = await _orange(browser, base, h)
    h.clock.advance(120)
    await h.drain()
    reg = h.ctx.registry
    gone = {g for g in await h.ctx.store.grids(cid) if g.startswith(DROPPED[:9])}
    assert gone
    # --- Dora drafts the Update from the board: 鲇鱼须镇 no longer in it
    await drafter.goto(f"{base}/console/campaigns/{cid}")
    await drafter.click("#board .tools a:has-text('更新')")
    await drafter.wait_for_selector("#compose")
    if await drafter.is_checked(f'input.town[value="{DROPPED}"]'):
        await drafter.uncheck(f'input.town[value="{DROPPED}"]')
    if not await drafter.is_checked(f'input.town[value="{KEPT}"]'):
        await drafter.check(f'input.town[value="{KEPT}"]')
    await drafter.click("#submit-btn")
    await drafter.wait_for_selector("#update-change")
    change = await drafter.inner_text("#update-change")
    kept = len(await h.ctx.store.grids(cid)) - len(gone)
    assert f"移出{len(gone)}个" in change and f"保留{kept}个" in change, change
    assert await drafter.locator("#update-change path.s-dropped").count() == len(gone)
    texts, _stats = shown(await drafter.content())
    lift = texts["短信·解除（移出预警范围的区域）"]
    assert "鲇鱼须镇" in lift and "章华镇" not in lift, lift
    assert "不再包括：鲇鱼须镇" in texts["短信·更新（须确认）"]
    await drafter.locator("#update-change").scroll_into_view_if_needed()
    await shot(drafter, "update-narrow.png", doc="console-update-narrow.png")
    await drafter.click("#confirm-btn")
    await drafter.wait_for_selector("text=等待审批人批准")
    draft_url = drafter.url.split("?")[0]
    # Alan reads the same change on his phone before approving.
    phone = await phone_of(browser, approver)
    await phone.goto(draft_url)
    times = await phone.inner_text("#draft-times")  # Beijing time, as people write it
    assert "T" not in times and times.endswith("（北京时间）"), times
    assert f"移出{len(gone)}个" in await phone.inner_text("#update-change")
    await phone.locator("#update-change").scroll_into_view_if_needed()
    await shot(phone, "update-narrow-phone.png", doc="console-update-narrow-phone.png")
    assert await _approve(approver, draft_url) == cid
    await h.drain()
    # --- the dropped township's people and speakers get their area's 解除, nobody else does
    meta = await h.ctx.store.meta(cid)
    assert meta is not None
    lifted = [d for d in h.sent() if d.kind is DeliveryKind.CANCEL and d.alert_id == meta.latest]
    dropped_people = ({reg.data.grids[g].primary for g in gone}
                      - {reg.data.grids[g].primary for g in reg.data.grids
                         if g.startswith(KEPT[:9])})
    assert {d.target_id for d in lifted if d.target_kind is TargetKind.PERSON} == dropped_people
    assert {d.address for d in lifted if d.channel == "loudspeaker"} == set(
        reg.children_of(DROPPED))
    for d in lifted:
        assert "解除" in d.text, d.text
        if d.target_kind is TargetKind.PERSON:
            assert d.text == lift or d.channel != "sms", (d.text, lift)
            assert "鲇鱼须镇" in d.text and "章华镇" not in d.text, d.text
        _not_a_warning(d.text, guidance)
    # --- the board closes the township: 已移出, not pending, live
    await approver.wait_for_function(
        f"document.querySelector('[data-c=\"g_closed\"]').textContent === '{len(gone)}'")
    for gid in gone:
        assert await approver.locator(f'#board svg.map path[data-g="{gid}"].s-closed').count() == 1
        assert await approver.locator(f'#chase .chase[data-grid="{gid}"]').count() == 0
    town = approver.locator(f'span[data-r="{DROPPED}"][data-k="closed"]')
    assert await town.count() == 0 or await town.inner_text() == str(len(gone))
    await approver.reload()  # the header and the alert's text are the Update's
    history = await approver.inner_text("table.history")
    assert "更新" in history and "当前内容" in history
    assert "鲇鱼须镇" not in await approver.inner_text(".alert-card")
    await shot(approver, "board-narrowed.png", doc="console-board-narrowed.png")
    await shot(approver, "board-narrowed-full.png", full_page=True)
    await phone.goto(f"{base}/console/campaigns/{cid}")
    await phone.wait_for_selector("svg.map")
    assert await phone.locator("#board svg.map path.s-closed").count() == len(gone)
    await shot(phone, "board-narrowed-phone.png", doc="console-board-narrowed-phone.png")
    # --- then the 解除 of what is left: it lifts the kept township, the dropped one is not
    # counted again; Alan's desk names who drafted it.
    await drafter.goto(f"{base}/console/campaigns/{cid}")
    await drafter.fill("#board form input[name=reason]", "降雨减弱")
    await drafter.click("#cancel-btn")
    await drafter.wait_for_selector("text=等待审批人批准")
    _texts, stats = shown(await drafter.content())
    assert int(stats["grids"]) == kept
    assert "有效期" not in await drafter.inner_text("dl.kv")  # a 解除 has no period
    assert "语音约" not in await drafter.inner_text("main")  # no call is made for it
    await approver.goto(f"{base}/console/")
    pending = approver.locator("#drafts-box")
    assert "起草 Dora" in await pending.inner_text()
    assert await pending.locator('span.user[title="登录名：dora"]').count() == 1
