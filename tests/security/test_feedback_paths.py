"""Reports after the ack through the real Twilio channels and their simulator, via the
engine's own web app: an SMS keyword reply, and the keys after the confirmation on a call."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from tests.engine.helpers import cap_alert
from warnbus.flow.credentials import ENGINE
from warnbus.flow.intake import accept

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "faults"))
from providerkit import SimRecord
from seckit import post_prepared, wecom_label

TOWNSHIP = ("430623101000",)


async def test_an_sms_keyword_and_keys_on_a_call_land_in_the_record(provider_world: Any) -> None:
    client, w = provider_world
    res = await accept(w.h.ctx, cap_alert("43062304100000_20260715053002_1", codes=TOWNSHIP),
                       ENGINE)
    await w.h.drain()
    cid = res.campaign_id
    texts = [m for m in w.twilio.messages if m.get("Body")]
    calls = [c for c in w.twilio.calls if f"c={cid}" in (c.get("StatusCallback") or "")]
    assert texts and calls
    # An SMS "已转移 三十五 人" from a reached officer: confirmed there and kept.
    sms = texts[0]
    req = w.twilio.prepare_reply(sms, "已转移 三十五 人")
    assert req is not None
    await post_prepared(client, req)
    # A key 1, then the keys of a report: 4, 12, #.
    call = next(c for c in calls if c.to != sms.to)
    press = w.twilio.prepare_press(call)
    assert press is not None
    asked = await post_prepared(client, press)
    assert "已确认" in asked and "已转移人数请先按4" in asked and "/hooks/voice/feedback" in asked
    keys = w.twilio.prepare_press(replace(call, form={**call.form, "Twiml": [asked]}), "412#")
    assert keys is not None
    heard = await post_prepared(client, keys)
    assert "已报送已转移12人" in heard, heard
    persons = {p.phone: p.id for p in w.h.ctx.registry.data.persons.values()}
    history = await w.h.ctx.store.feedback.history(cid)
    assert sorted((f.person_id, f.report.count, f.via) for f in history) == sorted([
        (persons[sms.to], 35, "sms"), (persons[call.to], 12, "dtmf")])
    assert await w.h.ctx.store.is_acked(cid, persons[sms.to])
    # Keys nobody can read report nothing, and say so.
    again = await post_prepared(client, w.twilio.prepare_press(
        replace(call, form={**call.form, "Twiml": [asked]}), "9#"))  # type: ignore[arg-type]
    assert "未能报送" in again
    assert len(await w.h.ctx.store.feedback.history(cid)) == 2
    _ = SimRecord


async def test_a_wecom_card_button_confirms_and_reports(provider_world: Any) -> None:
    """确认并已到岗 on the card: confirmed and reported at once; the button says so."""
    client, w = provider_world
    res = await accept(w.h.ctx, cap_alert("43062304100000_20260715053003_1", codes=TOWNSHIP),
                       ENGINE)
    await w.h.drain()
    cid = res.campaign_id
    card = next(m for m in w.wecom.sent if m.task_id)
    label = await wecom_label(client, w, card.touser, card.task_id or "", key="fb:arrived")
    assert label == "已确认·已到岗"
    persons = {p.wecom: p.id for p in w.h.ctx.registry.data.persons.values() if p.wecom}
    pid = persons[card.touser]
    assert await w.h.ctx.store.is_acked(cid, pid)
    history = await w.h.ctx.store.feedback.history(cid)
    assert [(f.person_id, f.report.kind.value, f.via) for f in history] == [
        (pid, "arrived", "wecom")]
