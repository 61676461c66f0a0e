"""In Chromium, desktop and phone (390 px): the publish confirmation, a rejected draft edited
and resubmitted, a Chinese 404, the printed record in Beijing time with Chinese headers, and
the registry and records pages usable at phone width. Screenshots: artifacts/screenshots/."""

from __future__ import annotations

from typing import Any

from browser_kit import DESKTOP, PHONE, shot
from test_console_browser import SHOTS, _signed_page, live

from tests.engine.helpers import T0

__all__ = ["live"]  # the fixture, shared with test_console_browser


async def _fits(page: Any) -> None:
    """Nothing sticks out sideways at this width (wide tables scroll inside their box)."""
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"] + 1, width


async def test_rejected_draft_edited_resubmitted_and_the_record_filed(live) -> None:  # type: ignore[no-untyped-def]
    base, h, browser = live
    drafter = await _signed_page(browser, base, "dora", **DESKTOP)
    await drafter.goto(f"{base}/console/compose")
    assert await drafter.input_value("#level") == ""  # no default level
    await drafter.select_option("#hazard", "rainstorm")
    await drafter.select_option("#level", "red")
    await drafter.wait_for_function(
        "document.getElementById('headline').value.includes('暴雨红色预警')")
    await drafter.check('input.town[value="430623101000"]')
    await drafter.click("#submit-btn")
    await drafter.wait_for_selector("#confirm-publish")
    text = await drafter.inner_text("#confirm-publish")
    assert "即将发布红色暴雨预警" in text and "个网格" in text and "提交审批" in text
    await drafter.click("#confirm-btn")
    await drafter.wait_for_selector("text=等待审批人批准")
    draft_url = drafter.url.split("?")[0]
    approver = await _signed_page(browser, base, "alan", **DESKTOP)
    await approver.goto(draft_url)
    await approver.fill("input[name=reason]", "应包括鲇鱼须镇")
    await approver.click("text=退回")
    await approver.wait_for_selector("text=已退回")
    # The drafter reads why, edits, resubmits: the same draft, a new revision.
    await drafter.goto(draft_url)
    assert "已被Alan退回：应包括鲇鱼须镇" in await drafter.inner_text("#rejected")
    await drafter.screenshot(path=str(SHOTS / "draft-rejected.png"), full_page=True)
    await drafter.click("#edit-btn")
    await drafter.wait_for_selector("#compose")
    assert await drafter.input_value("#level") == "red"
    await drafter.check('input.town[value="430623102000"]')
    await drafter.click("#submit-btn")
    await drafter.click("#confirm-btn")
    await drafter.wait_for_selector("text=已修改并重新提交，等待审批人批准")
    assert drafter.url.split("?")[0] == draft_url
    history = await drafter.inner_text("#draft-history")
    assert "Dora 起草" in history and "Alan 退回：应包括鲇鱼须镇" in history
    assert "Dora 修改后重新提交" in history
    await drafter.screenshot(path=str(SHOTS / "draft-resubmitted.png"), full_page=True)
    await approver.goto(draft_url)
    assert "鲇鱼须镇" in await approver.inner_text("#draft-area")
    await approver.click("#approve-btn")
    await approver.wait_for_selector("#board")
    cid = await approver.get_attribute("#board", "data-cid")
    await h.drain()
    for step in (200, 400):
        h.clock.advance(step)
        await h.drain()
    # The printed record: Chinese headers, Beijing time said at the top and in the headers.
    await approver.goto(f"{base}/console/campaigns/{cid}/print")
    main = await approver.inner_text("main")
    assert "本记录中的时间均为北京时间（UTC+8）" in main
    assert "发送时间（北京时间（UTC+8））" in main and "第几次" in main and "首次" in main
    assert T0.strftime("%H:%M") not in main.split("开始")[1][:40]  # not the UTC time
    assert "13:30" in main.split("开始")[1][:40]
    assert "值班员（签字）" in main and "带班领导（签字）" in main and "accepted" not in main
    await shot(approver, "record-print.png", doc="console-record-print.png")
    phone = await browser.new_context(locale="zh-CN", **PHONE,
                                      storage_state=await approver.context.storage_state())
    small = await phone.new_page()
    for path, name in ((f"/console/campaigns/{cid}/print", "record-print-phone.png"),
                       ("/console/records", "records-phone.png"),
                       ("/console/registry", "registry-phone.png"),
                       ("/console/registry/grids?q=柳岗", "registry-grids-phone.png"),
                       ("/console/registry/people?q=柳岗", "registry-people-phone.png"),
                       ("/console/registry/devices", "registry-devices-phone.png"),
                       ("/console/registry/history", "registry-history-phone.png")):
        await small.goto(f"{base}{path}")
        await _fits(small)
        await shot(small, name, doc="console-" + name if name.startswith("record-print") else "")
    await phone.close()


async def test_confirmation_and_errors_on_a_phone(live) -> None:  # type: ignore[no-untyped-def]
    base, _h, browser = live
    small = await _signed_page(browser, base, "dora", **PHONE)
    await small.goto(f"{base}/console/compose")
    await small.select_option("#hazard", "rainstorm")
    await small.select_option("#level", "yellow")
    await small.check('input.town[value="430623101000"]')
    await small.click("#submit-btn")
    await small.wait_for_selector("#confirm-btn")
    assert "确认发布：黄色预警" in await small.inner_text("#confirm-btn")
    await _fits(small)
    await small.screenshot(path=str(SHOTS / "compose-confirm-phone.png"), full_page=False)
    # A Chinese 404, in the console's frame.
    resp = await small.goto(f"{base}/console/campaigns/cp_nosuch")
    assert resp is not None and resp.status == 404
    assert "找不到该预警" in await small.inner_text("#error-message")
    assert "Not Found" not in await small.content()
    await small.screenshot(path=str(SHOTS / "error-404-phone.png"), full_page=False)
