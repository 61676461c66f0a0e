"""An SMS reply confirms once, and only what reached the person; nothing confirms an ended campaign.

An SMS reply ("1") names no campaign. Through the engine's own web app and the real Twilio,
WeCom and ack-link paths:
- a reply is deduplicated by its MessageSid: resent or replayed (the signature has no
  timestamp), even once a new campaign has reached the person, it confirms nothing more,
  writes no audit entry, and is answered as the first was;
- a reply confirms only campaigns whose SMS had reached the person (accepted by the provider)
  before it arrived: a campaign started a moment earlier, whose SMS is still to go, is not
  confirmed by a reply meant for an older one;
- a confirmation of a cancelled or expired campaign (key press, SMS reply, WeCom click, ack
  link, console) changes no state; it is recorded as late (one audit entry per person, the
  `warnbus_acks_total{result="late"}` metric), and the ack link page says 该预警已解除/已结束，
  无需确认.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from tests.console.console_kit import console_client, sign_in
from tests.engine.helpers import cap_alert
from warnbus.domain.models import MsgType, Reference, TargetKind
from warnbus.flow.credentials import ENGINE
from warnbus.flow.intake import accept
from warnbus.runtime import metrics
from warnbus.runtime.app import token_hash
from warnbus.runtime.config import TokenSettings
from warnbus.state import keys
from warnbus.web.api import make_web_app

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "faults"))
from providerkit import World, start_world
from seckit import twilio_signed, wecom_click

TOWNSHIP = ("430623101000",)
INBOUND = "http://127.0.0.1:9/hooks/sms/inbound"  # what the channel told Twilio to call
OFFICER = "officer-token-late"


@pytest_asyncio.fixture
async def env(redis_url: str) -> AsyncIterator[tuple[TestClient, World]]:  # type: ignore[type-arg]
    w = await start_world(redis_url, concurrency=8)
    w.h.app.tokens = (TokenSettings("duty", token_hash(OFFICER), roles=("officer",)),)
    client = TestClient(TestServer(make_web_app(w.h.app)))
    await client.start_server()
    yield client, w
    await client.close()
    await w.close()


def _ident(n: int) -> str:
    return f"43062304100000_2026071505300{n}_1"


async def _reply(client: TestClient, w: World, phone: str, sid: str) -> tuple[int, str]:  # type: ignore[type-arg]
    form = {"MessageSid": sid, "SmsSid": sid, "AccountSid": w.twilio.account_sid,
            "From": phone, "To": "+8673012110", "Body": "1", "NumMedia": "0"}
    r = await client.post("/hooks/sms/inbound", data=form, headers=twilio_signed(w, INBOUND, form))
    return r.status, await r.text()


def _sms_person(w: World, cid: str) -> tuple[str, str]:
    """A person this campaign's SMS reached, and their phone."""
    for rec in w.twilio.messages:
        if f"c={cid}" in (rec.get("StatusCallback") or ""):
            person = next(p for p in w.h.ctx.registry.data.persons.values() if p.phone == rec.to)
            return person.id, rec.to
    raise AssertionError("no SMS of the campaign")


async def _audit(w: World, cid: str, person: str) -> list[str]:
    return [e["ev"] for e in await w.h.ctx.store.audit(cid)
            if e.get("tg") == person and e["ev"] in ("ack", "late")]


async def _state(w: World, cid: str) -> tuple[Any, ...]:
    ck = keys.campaign(cid)
    r = w.h.ctx.redis
    return (await r.hgetall(ck.acks), await r.hgetall(ck.dstate), await r.hgetall(ck.tstate),
            await r.hgetall(ck.grids), await r.smembers(ck.stopped), await r.hgetall(ck.meta))


async def test_a_replayed_sms_reply_confirms_nothing_more(env: Any) -> None:
    client, w = env
    first = await accept(w.h.ctx, cap_alert(_ident(1), codes=TOWNSHIP), ENGINE)
    await w.h.drain()
    pid, phone = _sms_person(w, first.campaign_id)
    answer = await _reply(client, w, phone, "SM" + "a" * 32)
    assert answer[0] == 200 and await w.h.ctx.store.is_acked(first.campaign_id, pid)
    # Twilio resends it (or someone replays the captured request): the same answer, nothing new.
    assert await _reply(client, w, phone, "SM" + "a" * 32) == answer
    assert await _audit(w, first.campaign_id, pid) == ["ack"]
    # A new campaign reaches the same person; the old reply, replayed, does not confirm it.
    w.h.clock.advance(60)
    second = await accept(w.h.ctx, cap_alert(_ident(2), codes=TOWNSHIP), ENGINE)
    await w.h.drain()
    assert _sms_person(w, second.campaign_id)
    before = await _state(w, second.campaign_id)
    assert await _reply(client, w, phone, "SM" + "a" * 32) == answer
    assert await _state(w, second.campaign_id) == before
    assert await _audit(w, second.campaign_id, pid) == []
    assert await _audit(w, first.campaign_id, pid) == ["ack"]
    # The person's own, new reply does confirm it.
    assert (await _reply(client, w, phone, "SM" + "b" * 32))[0] == 200
    assert await w.h.ctx.store.is_acked(second.campaign_id, pid)


async def test_a_reply_confirms_only_campaigns_whose_sms_reached_the_person(env: Any) -> None:
    client, w = env
    old = await accept(w.h.ctx, cap_alert(_ident(1), codes=TOWNSHIP), ENGINE)
    await w.h.drain()
    pid, phone = _sms_person(w, old.campaign_id)
    w.h.clock.advance(60)
    new = await accept(w.h.ctx, cap_alert(_ident(2), codes=TOWNSHIP), ENGINE)
    assert await w.h.app.engine.inbox_once()  # started: targets, grids, listed as active
    assert new.campaign_id in await w.h.ctx.store.active_campaigns()
    assert not any(f"c={new.campaign_id}" in (r.get("StatusCallback") or "")
                   for r in w.twilio.messages), "its SMS has not gone out yet"
    # A reply to the old SMS arrives now: it confirms the old campaign only.
    assert (await _reply(client, w, phone, "SM" + "c" * 32))[0] == 200
    assert await w.h.ctx.store.is_acked(old.campaign_id, pid)
    assert not await w.h.ctx.store.is_acked(new.campaign_id, pid)
    await w.h.drain()  # the new campaign's SMS goes out now
    assert not await w.h.ctx.store.is_acked(new.campaign_id, pid)
    assert await _audit(w, new.campaign_id, pid) == []
    w.h.clock.advance(30)
    assert (await _reply(client, w, phone, "SM" + "d" * 32))[0] == 200
    assert await w.h.ctx.store.is_acked(new.campaign_id, pid), "a reply after it does"


async def test_confirmations_of_a_cancelled_campaign_are_late_on_every_channel(env: Any) -> None:
    client, w = env
    h = w.h
    res = await accept(h.ctx, cap_alert(_ident(1), codes=TOWNSHIP), ENGINE)
    await h.drain()
    cid = res.campaign_id
    # Five different persons, one for each way to confirm (one late entry per person).
    people = h.ctx.registry.data.persons
    by_phone = {p.phone: p.id for p in people.values() if p.phone}
    by_wecom = {p.wecom: p.id for p in people.values() if p.wecom}
    messages = [r for r in w.twilio.messages if f"c={cid}" in (r.get("StatusCallback") or "")]
    sms = messages[0]
    sms_pid, phone = by_phone[sms.to], sms.to
    call = next(c for c in w.twilio.calls if by_phone[c.to] != sms_pid)
    card = next(m for m in w.wecom.sent if m.task_id
                and by_wecom[m.touser] not in (sms_pid, by_phone[call.to]))
    taken = {sms_pid, by_phone[call.to], by_wecom[card.touser]}
    persons = sorted(t.id for t in (await h.ctx.store.targets(cid)).values()
                     if t.kind is TargetKind.PERSON and t.id not in taken)
    link_pid, console_pid = persons[0], persons[-1]
    press = w.twilio.prepare_press(call)
    link = h.app.links.token(cid, link_pid, h.clock.now())
    cancel = cap_alert(_ident(9), msg_type=MsgType.CANCEL, codes=TOWNSHIP, references=(
        Reference(cap_alert().sender, _ident(1), "2026-07-15T13:30:00+08:00"),))
    await accept(h.ctx, cancel, ENGINE)
    await h.drain()
    meta = await h.ctx.store.meta(cid)
    assert meta and meta.state == "cancelled"
    before = await _state(w, cid)
    audit = len(await h.ctx.store.audit(cid))
    late = {via: metrics.ACKS.labels(via, "late")._value.get()
            for via in ("dtmf", "wecom", "sms", "link", "console")}

    assert press is not None
    r = await client.post(urlsplit(press.url).path + "?" + urlsplit(press.url).query,
                          data=press.body, headers=dict(press.headers))
    assert r.status == 200
    params, body = wecom_click(w, card.touser, card.task_id or "")
    r = await client.post("/hooks/wecom/callback", params=params, data=body)
    assert r.status == 200
    assert (await _reply(client, w, phone, "SM" + "e" * 32))[0] == 200
    r = await client.get(f"/ack/{link}")
    page = await r.text()
    assert r.status == 200 and "该预警已解除，无需确认" in page and "<button" not in page
    for _ in range(2):  # tapped twice: one audit entry
        r = await client.post(f"/ack/{link}", headers={"Accept": "text/html"})
        assert r.status == 200 and "该预警已解除，无需确认" in await r.text()
    r = await client.post(f"/ack/{link}")
    assert r.status == 200 and (await r.json())["status"] == "late"
    r = await client.post("/api/v1/acks", headers={"Authorization": f"Bearer {OFFICER}"},
                          json={"campaign_id": cid, "person_id": console_pid,
                                "reason": "电话回访"})
    assert r.status == 200 and (await r.json())["status"] == "late"

    assert await _state(w, cid) == before, "no state change"
    entries = (await h.ctx.store.audit(cid))[audit:]
    assert {e["ev"] for e in entries} == {"late"}
    lately = {e["tg"] for e in entries}
    assert {sms_pid, link_pid, console_pid} <= lately and len(entries) == len(lately)
    assert {e["via"] for e in entries} == {"dtmf", "wecom", "sms", "link", "console"}
    for via, n in late.items():
        assert metrics.ACKS.labels(via, "late")._value.get() > n, via


async def test_an_expired_campaign_is_over_for_ack_links_at_its_expiry(env: Any) -> None:
    """Past its expiry (even before the timer marks it expired) a link confirms nothing,
    and says the warning has expired (it said 已结束: the campaign was read as active)."""
    client, w = env
    h = w.h
    res = await accept(h.ctx, cap_alert(_ident(1), codes=TOWNSHIP, hours=1), ENGINE)
    await h.drain()
    pid = next(t.id for t in (await h.ctx.store.targets(res.campaign_id)).values()
               if t.kind is TargetKind.PERSON)
    link = h.app.links.token(res.campaign_id, pid, h.clock.now())
    h.clock.advance(3601)
    r = await client.get(f"/ack/{link}")
    assert "该预警已过期，无需确认" in await r.text()
    r = await client.post(f"/ack/{link}")
    assert (await r.json())["status"] == "late"
    assert not await h.ctx.store.is_acked(res.campaign_id, pid)


async def test_a_console_confirmation_of_a_cancelled_campaign_is_late(redis_url: str) -> None:
    async with console_client(redis_url) as (client, h):
        res = await accept(h.ctx, cap_alert(_ident(1), codes=TOWNSHIP), ENGINE)
        await h.drain()
        cancel = cap_alert(_ident(9), msg_type=MsgType.CANCEL, codes=TOWNSHIP, references=(
            Reference(cap_alert().sender, _ident(1), "2026-07-15T13:30:00+08:00"),))
        await accept(h.ctx, cancel, ENGINE)
        await h.drain()
        gid, _g = sorted((await h.ctx.store.grids(res.campaign_id)).items())[0]
        primary = h.ctx.registry.data.grids[gid].primary
        s = await sign_in(client, "dora")
        r = await client.post(f"/console/campaigns/{res.campaign_id}/ack", data={
            "_csrf": s.csrf, "grid": gid, "person": primary, "reason": "电话回拨已确认"},
            allow_redirects=False)
        assert r.status == 303 and "该预警已解除" in unquote(r.headers["Location"])
        assert not await h.ctx.store.is_acked(res.campaign_id, primary)
        assert [e["via"] for e in await h.ctx.store.audit(res.campaign_id)
                if e["ev"] == "late"] == ["console"]
