"""The county updates or cancels a feed's warning on its behalf: under the console's own
sender, referencing the feed's thread, only once an approver approved, and said so in the
message (CAP note), on the board and in the thread's history.

The console refused every Update and Cancel of another sender's thread: a feed's warning that
the bureau phoned to lift could be neither lifted nor corrected at the desk.
"""

from __future__ import annotations

from console_kit import red_form, sign_in

from tests.engine.helpers import cap_alert
from warnbus.domain.models import DeliveryKind, MsgType, Reference
from warnbus.flow.credentials import console_sender, of_feed
from warnbus.flow.intake import accept
from warnbus.runtime.config import FeedSettings
from warnbus.web.console.actions import PublishError, publish
from warnbus.web.console.base import CONSOLE
from warnbus.web.console.compose import DraftForm
from warnbus.web.console.drafts import Drafts

FEED = FeedSettings(name="qx-met", url="http://127.0.0.1:9/index.atom",
                    senders=("430623@qx.example.cn",))
HTML = {"Accept": "text/html"}


async def _approve(client, h, location: str) -> str:  # type: ignore[no-untyped-def]
    """Approve the draft `location` points at, as alan; the board it lands on."""
    assert "/console/drafts/df_" in location, location
    draft = location.split("/console/drafts/")[1].split("?")[0]
    s = await sign_in(client, "alan")
    r = await client.post(f"/console/drafts/{draft}/approve", data={"_csrf": s.csrf},
                          allow_redirects=False)
    await h.drain()
    return r.headers["Location"]


async def test_a_feeds_warning_is_updated_and_cancelled_on_its_behalf(web) -> None:  # type: ignore[no-untyped-def]
    client, h = web
    alert = cap_alert(codes=("430623101000",))
    cid = (await accept(h.ctx, alert, of_feed(FEED))).campaign_id
    await h.drain()
    ours = console_sender(h.ctx.settings, h.ctx.registry)
    s = await sign_in(client, "dora")
    r = await client.post("/console/compose", allow_redirects=False, data=red_form(
        s.csrf, kind="update", campaign=cid, headline="华容县暴雨红色预警更新",
        area="430623102000"))
    page = await (await client.get(r.headers["Location"], headers=HTML)).text()
    assert "本县代 430623@qx.example.cn 更新该预警，须审批人批准" in page
    approved = await _approve(client, h, r.headers["Location"])
    assert approved.startswith(f"/console/campaigns/{cid}")
    meta = await h.ctx.store.meta(cid)
    assert meta is not None and meta.sender == alert.sender  # still the feed's thread
    update = await h.ctx.alert(cid, meta.latest)
    assert update is not None and update.msg_type is MsgType.UPDATE
    assert update.sender == ours and update.references[0].sender == alert.sender
    assert update.note and "代华容县气象台更新该预警" in update.note and "审批：alan" in update.note
    sources = await h.ctx.store.messages.sources(cid)
    assert sources == {alert.alert_id: "feed qx-met", update.alert_id: "console"}
    prov = (await h.ctx.store.console.provenance(cid))[update.alert_id]
    assert (prov.drafted_by, prov.approved_by, prov.on_behalf_of) == ("dora", "alan",
                                                                       alert.sender)
    page = await (await client.get(f"/console/campaigns/{cid}", headers=HTML)).text()
    assert "数据源 qx-met（自动接入）" in page
    assert "本值守台：起草 Dora，审批 Alan；代 430623@qx.example.cn 发布" in page
    assert "华容县暴雨红色预警更新" in page  # the text the campaign carries now
    # The feed still continues its own thread.
    again = cap_alert("43062304100000_20260715060000_2", msg_type=MsgType.UPDATE,
                      codes=("430623101000", "430623102000"),
                      references=(Reference(alert.sender, alert.identifier, "x"),))
    assert (await accept(h.ctx, again, of_feed(FEED))).campaign_id == cid
    await h.drain()
    # The 解除 on its behalf ends the campaign; everyone reached gets it once.
    s = await sign_in(client, "dora")
    r = await client.post(f"/console/campaigns/{cid}/cancel", allow_redirects=False,
                          data={"_csrf": s.csrf, "reason": "气象台电话告知解除"})
    await _approve(client, h, r.headers["Location"])
    meta = await h.ctx.store.meta(cid)
    assert meta is not None and meta.state == "cancelled"
    lifted = await h.ctx.alert(cid, meta.cancelled_by)
    assert lifted is not None and lifted.sender == ours
    assert "代华容县气象台解除" in (lifted.note or "")
    notices = len([d for d in h.sent() if d.kind is DeliveryKind.CANCEL])
    assert notices
    # The feed's own Cancel afterwards joins the thread and notifies nobody again.
    late = cap_alert("43062304100000_20260715070000_3", msg_type=MsgType.CANCEL,
                     codes=("430623101000",),
                     references=(Reference(alert.sender, alert.identifier, "x"),))
    await accept(h.ctx, late, of_feed(FEED))
    await h.drain()
    assert len([d for d in h.sent() if d.kind is DeliveryKind.CANCEL]) == notices
    page = await (await client.get(f"/console/campaigns/{cid}", headers=HTML)).text()
    assert page.count("解除了该预警") == 1 and "重复的解除（未再通知）" in page


async def test_nothing_is_published_on_another_senders_behalf_without_an_approver(web) -> None:  # type: ignore[no-untyped-def]
    client, h = web
    alert = cap_alert(codes=("430623101000",))
    cid = (await accept(h.ctx, alert, of_feed(FEED))).campaign_id
    await h.drain()
    drafts = Drafts(h.ctx.redis)
    form = DraftForm(hazard="rainstorm", level="red", status="Actual", areas=("430623101000",),
                     headline="解除暴雨预警", description="误报", effective="2026-07-15T13:40",
                     expires="2026-07-15T19:30")
    d = await drafts.create("cancel", "red", form, "dora", h.clock.now(), cid)
    assert await drafts.move(d.id, "pending", "publishing")
    con = client.server.app[CONSOLE]
    try:
        await publish(h.ctx, drafts, d, await con.settings())
    except PublishError as e:
        assert "须经审批人批准" in e.message
    else:
        raise AssertionError("published on the feed's behalf without an approver")
    assert len(await h.ctx.store.thread_alerts(cid)) == 1
    meta = await h.ctx.store.meta(cid)
    assert meta is not None and meta.state == "active"
