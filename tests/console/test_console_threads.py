"""The console updates and cancels threads only while they are live, another sender's only
on its behalf with an approver; it says what it did to a draft.

An Update of a thread that had ended was "published" while the engine dropped it: it is now
refused before any draft, saying why; a draft that waited while its thread ended fails on
approval, and nothing is sent. Another sender's warning (a bureau's, received by API or a
feed) is updated or cancelled on the county's behalf (test_console_on_behalf.py): always
through an approver, whatever the level.
"""

from __future__ import annotations

from urllib.parse import unquote

from console_kit import campaigns, red_form, sign_in

from tests.engine.helpers import cap_alert
from warnbus.domain.models import Severity
from warnbus.flow.credentials import ENGINE
from warnbus.flow.intake import accept
from warnbus.state import keys

LIFTED = "该预警已解除，不能再更新或解除"


def said(r) -> str:  # type: ignore[no-untyped-def]
    assert r.status == 303, r.status
    return unquote(r.headers["Location"].split("msg=", 1)[-1])


async def update_and_cancel(client, csrf: str, cid: str) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    """What the board says to an Update of `cid` submitted, and to its cancel button."""
    r = await client.post("/console/compose", allow_redirects=False, data=red_form(
        csrf, level="yellow", kind="update", campaign=cid))
    update = said(r)
    r = await client.post(f"/console/campaigns/{cid}/cancel", allow_redirects=False,
                          data={"_csrf": csrf, "reason": "险情解除"})
    return update, said(r)


async def test_another_senders_thread_goes_to_an_approver_whatever_its_level(web) -> None:  # type: ignore[no-untyped-def]
    client, h = web
    alert = cap_alert(codes=("430623101000",), severity=Severity.MODERATE, level_zh="黄色")
    cid = (await accept(h.ctx, alert, ENGINE)).campaign_id
    await h.drain()
    s = await sign_in(client, "dora")
    r = await client.get(f"/console/compose?campaign={cid}", allow_redirects=False)
    assert r.status == 200 and 'name="campaign" value="' + cid in await r.text()
    update, cancel = await update_and_cancel(client, s.csrf, cid)
    # Yellow needs no approval for the console's own threads; on another's behalf it does.
    assert update == cancel == "已提交，等待审批人批准"
    assert await h.ctx.redis.zcard(keys.CONSOLE_DRAFTS) == 2
    assert len(await h.ctx.store.thread_alerts(cid)) == 1, "nothing published yet"


async def test_an_ended_thread_is_not_continued(web) -> None:  # type: ignore[no-untyped-def]
    client, h = web
    s = await sign_in(client, "dora")
    r = await client.post("/console/compose", data=red_form(s.csrf, level="yellow"),
                          allow_redirects=False)
    (cid,) = await campaigns(h)
    await h.drain()
    # A red Update waits for an approver; meanwhile the (yellow) thread is lifted at once.
    r = await client.post("/console/compose", allow_redirects=False, data=red_form(
        s.csrf, kind="update", campaign=cid, headline="暴雨红色预警更新"))
    waiting = r.headers["Location"].split("/drafts/")[1].split("?")[0]
    r = await client.post(f"/console/campaigns/{cid}/cancel", allow_redirects=False,
                          data={"_csrf": s.csrf, "reason": "降雨减弱"})
    assert "/campaigns/" in r.headers["Location"], r.headers["Location"]
    await h.drain()
    assert getattr(await h.ctx.store.meta(cid), "state", None) == "cancelled"
    drafts = await h.ctx.redis.zcard(keys.CONSOLE_DRAFTS)
    assert await update_and_cancel(client, s.csrf, cid) == (LIFTED, LIFTED)
    assert await h.ctx.redis.zcard(keys.CONSOLE_DRAFTS) == drafts
    messages = await h.ctx.redis.zcard(keys.MESSAGES)
    s = await sign_in(client, "alan")
    r = await client.post(f"/console/drafts/{waiting}/approve", data={"_csrf": s.csrf},
                          allow_redirects=False)
    assert r.headers["Location"].startswith(f"/console/drafts/{waiting}")
    r = await client.get(f"/console/drafts/{waiting}", headers={"Accept": "text/html"})
    assert f"发布失败，预警未发出：未发布：{LIFTED}。" in await r.text()
    assert await h.ctx.redis.zcard(keys.MESSAGES) == messages, "nothing was accepted"


async def test_a_draft_already_handled_is_not_rejected(web) -> None:  # type: ignore[no-untyped-def]
    """Rejecting a draft another approver had just published said 已退回 while it was out."""
    client, _h = web
    s = await sign_in(client, "dora")
    r = await client.post("/console/compose", data=red_form(s.csrf), allow_redirects=False)
    draft = r.headers["Location"].split("/drafts/")[1].split("?")[0]
    s = await sign_in(client, "alan")
    r = await client.post(f"/console/drafts/{draft}/approve", data={"_csrf": s.csrf},
                          allow_redirects=False)
    assert "/campaigns/" in r.headers["Location"]
    s = await sign_in(client, "anna")
    r = await client.post(f"/console/drafts/{draft}/reject", allow_redirects=False,
                          data={"_csrf": s.csrf, "reason": "区域有误"})
    assert said(r) == "该草稿已被处理"
    r = await client.get(f"/console/drafts/{draft}", headers={"Accept": "text/html"})
    assert "已发布" in await r.text()
