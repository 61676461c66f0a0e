"""Forged provider callbacks and ack links change nothing, are logged, and are refused.

The engine's own web app (real Twilio and WeCom channels, a real campaign in Redis) receives:
Twilio status callbacks and SMS replies without a signature, with a wrong one, or signed with
another account's token; WeCom button clicks signed with another token, or signed but not
decryptable; ack links that were tampered with, expired, replayed, or re-pointed at another
person. Each is refused with no change to the campaign's state or audit, and a warning is
logged; a genuine request of each kind (the positive control) does change it.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from structlog.testing import capture_logs
from twilio.request_validator import RequestValidator

from channels import wecom_crypto as proto
from tests.engine.helpers import cap_alert
from warnbus.flow.credentials import ENGINE
from warnbus.flow.intake import accept
from warnbus.state import keys
from warnbus.web.api import make_web_app

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "faults"))
from providerkit import World, start_world
from seckit import wecom_click

TOWNSHIP = ("430623101000",)


@pytest_asyncio.fixture
async def env(redis_url: str) -> AsyncIterator[tuple[TestClient, World, str]]:  # type: ignore[type-arg]
    w = await start_world(redis_url, concurrency=8)
    res = await accept(w.h.ctx, cap_alert(codes=TOWNSHIP), ENGINE)
    await w.h.drain()
    client = TestClient(TestServer(make_web_app(w.h.app)))
    await client.start_server()
    yield client, w, res.campaign_id
    await client.close()
    await w.close()


async def _state(w: World, cid: str) -> tuple[Any, ...]:
    ck = keys.campaign(cid)
    r = w.h.ctx.redis
    return (await r.hgetall(ck.acks), await r.hgetall(ck.dstate), await r.hgetall(ck.tstate),
            await r.hgetall(ck.grids), await r.xlen(ck.audit))


def _twilio_token(w: World) -> str:
    return str(w.h.channels["sms"].config.auth_token)  # type: ignore[attr-defined]


def _person_with_sms(w: World) -> tuple[str, str]:
    rec = next(iter(w.twilio.messages))
    pid = next(p.id for p in w.h.ctx.registry.data.persons.values() if p.phone == rec.to)
    return pid, rec.to


async def test_forged_twilio_callbacks_change_nothing(env: Any) -> None:
    client, w, cid = env
    pid, phone = _person_with_sms(w)
    reply = {"MessageSid": "SM" + "1" * 32, "AccountSid": w.twilio.account_sid, "From": phone,
             "To": "+8673012110", "Body": "1", "NumMedia": "0"}
    public = "http://127.0.0.1:9/hooks/sms/inbound"  # what the channel told Twilio to call
    before = await _state(w, cid)
    forgeries = {
        "missing": {},
        "garbage": {"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"},
        "other-account": {"X-Twilio-Signature":
                          RequestValidator("another-token").compute_signature(public, reply)},
        "other-body": {"X-Twilio-Signature": RequestValidator(_twilio_token(w)).compute_signature(
            public, {**reply, "Body": "no"})},
    }
    with capture_logs() as logs:
        for name, headers in forgeries.items():
            r = await client.post("/hooks/sms/inbound", data=reply, headers=headers)
            assert r.status == 403, name
            status = {"MessageSid": "SM1", "MessageStatus": "delivered", "To": phone}
            r = await client.post("/hooks/sms/status?c=x", data=status, headers=headers)
            assert r.status == 403, name
    assert await _state(w, cid) == before, "no state change"
    rejected = [e for e in logs if "twilio webhook rejected" in e["event"]]
    assert len(rejected) == 2 * len(forgeries)
    assert all(phone not in str(e) for e in logs), "the phone number is not logged in full"
    # Positive control: the same reply, signed as Twilio would, confirms.
    sig = RequestValidator(_twilio_token(w)).compute_signature(public, reply)
    r = await client.post("/hooks/sms/inbound", data=reply, headers={"X-Twilio-Signature": sig})
    assert r.status == 200
    assert await w.h.ctx.store.is_acked(cid, pid)


def _click(w: World, user: str, task_id: str, *,
           token: str | None = None) -> tuple[dict[str, str], str]:
    # The event key "ack" is spelled out by the tests that need it.
    return wecom_click(w, user, task_id, token=token, key="ack")


async def test_forged_wecom_clicks_change_nothing(env: Any) -> None:
    client, w, cid = env
    card = next(m for m in w.wecom.sent if m.task_id)
    pid = next(p.id for p in w.h.ctx.registry.data.persons.values() if p.wecom == card.touser)
    from channels.wecom import ACK_KEY

    before = await _state(w, cid)
    with capture_logs() as logs:
        params, body = _click(w, card.touser, card.task_id or "", token="not-the-token")
        r = await client.post("/hooks/wecom/callback", params=params, data=body.replace(
            "<EventKey>ack", f"<EventKey>{ACK_KEY}"))
        assert r.status == 403
        params, _ = _click(w, card.touser, card.task_id or "")
        junk = proto.callback_body("x", "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=", 1)
        r = await client.post("/hooks/wecom/callback", params=params, data=junk)
        assert r.status in (400, 403)
        other = next(p for p in w.h.ctx.registry.data.persons.values()
                     if p.wecom and p.wecom != card.touser)
        params, body = _click(w, other.wecom or "", card.task_id or "")
        r = await client.post("/hooks/wecom/callback", params=params,
                              data=body.replace("<EventKey>ack", f"<EventKey>{ACK_KEY}"))
        assert r.status == 403, "a card clicked by someone it was not sent to"
    assert await _state(w, cid) == before
    assert len([e for e in logs if e["event"] == "wecom callback rejected"]) == 3
    params, body = _click(w, card.touser, card.task_id or "")
    r = await client.post("/hooks/wecom/callback", params=params,
                          data=body.replace("<EventKey>ack", f"<EventKey>{ACK_KEY}"))
    assert r.status == 200
    assert await w.h.ctx.store.is_acked(cid, pid), "positive control"


async def test_ack_links_forged_expired_replayed_or_for_someone_else(env: Any) -> None:
    client, w, cid = env
    h = w.h
    persons = sorted(await h.ctx.store.targets(cid))[:2]
    a, b = (p for p in persons if not p.startswith("area:"))
    links = h.app.links
    good = links.token(cid, a, h.clock.now())
    body_s, sig_s = good.split(".")
    import base64

    def enc(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    other_body = base64.urlsafe_b64decode(body_s + "==").replace(a.encode(), b.encode())
    bad = {
        "re-pointed": enc(other_body) + "." + sig_s,
        "bad-signature": body_s + "." + enc(b"\x00" * 16),
        "expired": links.token(cid, a, h.clock.now() - links.ttl_s - 10),
        "garbage": "not-a-token",
        "other-campaign": links.token("cp_ffffffffffffffffffff", a, h.clock.now()),
    }
    before = await _state(w, cid)
    with capture_logs() as logs:
        for name, token in bad.items():
            r = await client.post(f"/ack/{token}")
            assert r.status in (403, 404), (name, r.status)
    assert await _state(w, cid) == before
    assert len([e for e in logs if e["event"] == "ack link rejected"]) == 4
    r = await client.post(f"/ack/{good}")
    assert r.status == 200 and (await r.json())["status"] == "recorded"
    after_first = await _state(w, cid)
    r = await client.post(f"/ack/{good}")  # replayed: a duplicate, nothing changes
    assert r.status == 200 and (await r.json())["status"] == "duplicate"
    assert await _state(w, cid) == after_first
    acks = await h.ctx.store.acks(cid)
    assert set(acks) == {a}, "only the link's own person is confirmed"
