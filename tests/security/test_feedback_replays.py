"""A report after the ack is kept once per provider event: a replay of the same signed request
(or a provider's resend, or the same form posted again) changes nothing and is answered as the
first was, on every path that carries a report: Twilio keys, an SMS keyword, a WeCom card,
the ack page's form and an officer's entry. Through the engine's own web app."""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from channels import wecom_crypto as proto
from tests.engine.helpers import cap_alert
from warnbus.flow.credentials import ENGINE
from warnbus.flow.intake import accept

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "faults"))
from providerkit import World
from seckit import post_prepared, wecom_reply_label

TOWNSHIP = ("430623101000",)


async def _campaign(w: World, ident: str) -> str:
    res = await accept(w.h.ctx, cap_alert(ident, codes=TOWNSHIP), ENGINE)
    await w.h.drain()
    return res.campaign_id


async def test_replayed_keys_on_a_twilio_call_are_kept_once(provider_world: Any) -> None:
    client, w = provider_world
    cid = await _campaign(w, "43062304100000_20260715053101_1")
    call = next(c for c in w.twilio.calls if f"c={cid}" in (c.get("StatusCallback") or ""))
    asked = await post_prepared(client, w.twilio.prepare_press(call))
    keys = w.twilio.prepare_press(replace(call, form={**call.form, "Twiml": [asked]}), "435#")
    first = await post_prepared(client, keys)
    # Twilio retries an action it got no answer to; anyone who saw the request can replay it.
    again = await asyncio.gather(*(post_prepared(client, keys) for _ in range(3)))
    assert "已报送已转移35人" in first and all(a == first for a in again)
    history = await w.h.ctx.store.feedback.history(cid)
    assert [(f.report.count, f.via) for f in history] == [(35, "dtmf")]
    # Another report on another call of the person is a new event: kept.
    latest = await w.h.ctx.store.feedback.latest_of(cid, history[0].person_id)
    assert latest.n == 1 and latest.evacuated == 35


async def test_a_resent_sms_keyword_is_kept_once_even_when_it_races(provider_world: Any) -> None:
    client, w = provider_world
    cid = await _campaign(w, "43062304100000_20260715053102_1")
    sms = next(m for m in w.twilio.messages if m.get("Body"))
    req = w.twilio.prepare_reply(sms, "转移 35")
    # Resends of one reply (the same MessageSid) at once, in the same moment.
    answers = await asyncio.gather(*(post_prepared(client, req) for _ in range(4)))
    assert len(set(answers)) == 1
    history = await w.h.ctx.store.feedback.history(cid)
    assert [(f.report.count, f.via) for f in history] == [(35, "sms")]
    await post_prepared(client, req)
    assert len(await w.h.ctx.store.feedback.history(cid)) == 1
    # A new reply (another MessageSid) is another report.
    await post_prepared(client, w.twilio.prepare_reply(sms, "转移 40"))
    assert [f.report.count for f in await w.h.ctx.store.feedback.history(cid)] == [35, 40]


def _click(w: World, user: str, task_id: str, key: str, code: str, nonce: str
           ) -> tuple[dict[str, str], str]:
    """A card click as WeCom sends it, with its ResponseCode, sealed with `nonce` (a resend
    is sealed anew: another signature, the same click)."""
    cfg = w.h.channels["wecom"].config  # type: ignore[attr-defined]
    ts = str(int(time.time()))
    event = (f"<xml><ToUserName>{cfg.corp_id}</ToUserName><FromUserName>{user}</FromUserName>"
             f"<CreateTime>{ts}</CreateTime><MsgType>event</MsgType>"
             f"<Event>template_card_event</Event><EventKey>{key}</EventKey>"
             f"<TaskId>{task_id}</TaskId><AgentID>{cfg.agent_id}</AgentID>"
             f"<ResponseCode>{code}</ResponseCode></xml>")
    crypto = proto.WeComCrypto(str(cfg.token), str(cfg.encoding_aes_key), cfg.corp_id)
    encrypted, sig = crypto.seal(event.encode(), ts, nonce)
    return ({"msg_signature": sig, "timestamp": ts, "nonce": nonce},
            proto.callback_body(cfg.corp_id, encrypted, cfg.agent_id))


async def test_a_wecom_report_click_resent_or_replayed_is_kept_once(provider_world: Any) -> None:
    client, w = provider_world
    cid = await _campaign(w, "43062304100000_20260715053103_1")
    card = next(m for m in w.wecom.sent if m.task_id)
    task = card.task_id or ""
    first = _click(w, card.touser, task, "fb:arrived", "RC-1", "11111")
    label = await wecom_reply_label(client, w, *first)
    assert label == "已确认·已到岗"
    # The same request replayed, and WeCom's resend of the click (sealed anew).
    assert await wecom_reply_label(client, w, *first) == label
    assert await wecom_reply_label(client, w, *_click(w, card.touser, task, "fb:arrived", "RC-1",
                                           "22222")) == label
    history = await w.h.ctx.store.feedback.history(cid)
    assert [(f.report.kind.value, f.via) for f in history] == [("arrived", "wecom")]
    # Another click (another ResponseCode) is another report.
    await wecom_reply_label(client, w, *_click(w, card.touser, task, "fb:zero", "RC-2", "33333"))
    assert [f.report.kind.value for f in await w.h.ctx.store.feedback.history(cid)] == [
        "arrived", "zero"]


async def test_the_ack_page_form_posted_again_is_kept_once(provider_world: Any) -> None:
    client, w = provider_world
    cid = await _campaign(w, "43062304100000_20260715053104_1")
    link = next(m for m in w.twilio.messages if "/ack/" in (m.get("Body") or ""))
    path = "/ack/" + (link.get("Body") or "").split("/ack/", 1)[1].split()[0]
    page = await (await client.post(path, headers={"Accept": "text/html"})).text()
    assert "报送反馈" in page
    form_id = page.split('name="form_id" value="', 1)[1].split('"', 1)[0]
    fields = {"kind": "evacuated", "count": "12", "form_id": form_id}
    html = {"Accept": "text/html"}
    first = await client.post(path + "/feedback", data=fields, headers=html)
    text = await first.text()
    assert first.status == 200 and "已转移 12 人" in text
    # A double click, a resend, a replay of the same form: answered as the first was.
    again = await asyncio.gather(*(client.post(path + "/feedback", data=fields, headers=html)
                                   for _ in range(3)))
    assert [r.status for r in again] == [200, 200, 200]
    assert all("已转移 12 人" in t for t in [await r.text() for r in again])
    r = await client.post(path + "/feedback", data=fields)
    assert r.status == 200 and (await r.json())["status"] == "recorded"
    history = await w.h.ctx.store.feedback.history(cid)
    assert [(f.report.count, f.via) for f in history] == [(12, "link")]
    # The same form changed and sent again (back, edit, send) is another report, not one
    # answered as kept and dropped.
    r = await client.post(path + "/feedback", data={**fields, "count": "15"})
    assert r.status == 200
    assert [f.report.count for f in await w.h.ctx.store.feedback.history(cid)] == [12, 15]
    # A fresh form (the page shows one after each report) is a new report.
    fresh = text.split('name="form_id" value="', 1)[1].split('"', 1)[0]
    assert fresh != form_id
    r = await client.post(path + "/feedback", data={**fields, "count": "20", "form_id": fresh})
    assert r.status == 200
    assert [f.report.count for f in await w.h.ctx.store.feedback.history(cid)] == [12, 15, 20]
    # A token no form carries is refused, naming the field.
    r = await client.post(path + "/feedback", data={**fields, "form_id": "x<y"})
    assert r.status == 422 and "form_id" in (await r.json())["error"]["message"]
