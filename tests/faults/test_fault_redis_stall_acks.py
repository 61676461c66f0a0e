"""Confirmations during a Redis stall: answered 2xx only once durable, and none lost.

A campaign reaches a township through the real Twilio and WeCom channels (simulators). Then
Redis stops answering (SIGSTOP: a stall, as under a long fork or a frozen VM) while officers
press 1 in their calls, reply 1 by SMS, click WeCom's button, and WeCom resends each click
that got no answer in time. Every request is answered 2xx within a provider's patience
(WeCom resends after 5 s): the engine wrote what it could not store in Redis to its local
journal (fsynced) first. When Redis returns (resumed; or killed while stalled and restarted
from its AOF, so that nothing written during the stall reached it), the journal is replayed:
every confirmation answered 2xx is recorded, each person once, counted once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp.test_utils import TestClient, TestServer
from faultkit import save_figures, wait_for
from providerkit import World, start_world

from tests.engine.helpers import cap_alert
from warnbus.domain.states import TargetState
from warnbus.flow.credentials import ENGINE
from warnbus.flow.intake import accept
from warnbus.runtime.services import ManagedService
from warnbus.web.api import make_web_app

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "security"))
from seckit import twilio_signed, wecom_click

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]
TOWNSHIP = ("430623101000",)
HOOKS = "http://127.0.0.1:9/hooks"  # what the channels told the providers to call
PATIENCE_S = 4.5  # WeCom resends after 5 s without an answer
PER_KIND = 12


def _ids(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


async def _confirm_all(client: TestClient, w: World, cid: str  # type: ignore[type-arg]
                       ) -> tuple[list[tuple[str, int, float]], set[str]]:
    """Every kind of confirmation, concurrently: (kind, status, seconds) and who confirmed."""
    reg = w.h.ctx.registry.data.persons
    by_phone = {p.phone: p.id for p in reg.values()}
    by_wecom = {p.wecom: p.id for p in reg.values() if p.wecom}
    calls = [c for c in w.twilio.calls if f"c={cid}" in (c.get("StatusCallback") or "")]
    texts = [m for m in w.twilio.messages if f"c={cid}" in (m.get("StatusCallback") or "")]
    cards = [m for m in w.wecom.sent if m.task_id]
    keyed = {c.to for c in calls[:PER_KIND]}
    texted = [m for m in texts if m.to not in keyed][:PER_KIND]
    clicked = [m for m in cards if by_wecom[m.touser] not in
               {by_phone[p] for p in keyed | {m.to for m in texted}}][:PER_KIND]
    assert len(keyed) == len(texted) == len(clicked) == PER_KIND
    who = {by_phone[p] for p in keyed} | {by_phone[m.to] for m in texted} | {
        by_wecom[m.touser] for m in clicked}
    out: list[tuple[str, int, float]] = []

    async def timed(kind: str, post: Callable[[], Awaitable[int]]) -> None:
        t = time.monotonic()
        out.append((kind, await post(), time.monotonic() - t))

    async def key(call: object) -> int:
        ids = _ids(call.get("StatusCallback") or "")  # type: ignore[attr-defined]
        path = f"/hooks/voice/gather?c={ids['c']}&d={ids['d']}&t={ids['t']}"
        form = {"CallSid": call.sid, "AccountSid": w.twilio.account_sid,  # type: ignore[attr-defined]
                "Digits": "1", "To": call.to}  # type: ignore[attr-defined]
        r = await client.post(path, data=form, headers=twilio_signed(w, "http://127.0.0.1:9" + path,
                                                                        form))
        assert "<Hangup" in await r.text()
        return r.status

    async def text(msg: object, n: int) -> int:
        form = {"MessageSid": f"SM{n:032d}", "AccountSid": w.twilio.account_sid,
                "From": msg.to, "To": "+8673012110", "Body": "1"}  # type: ignore[attr-defined]
        r = await client.post("/hooks/sms/inbound", data=form,
                              headers=twilio_signed(w, f"{HOOKS}/sms/inbound", form))
        return r.status

    async def click(card: object) -> int:
        params, body = wecom_click(w, card.touser, card.task_id)  # type: ignore[attr-defined]

        async def once() -> int:
            r = await client.post("/hooks/wecom/callback", params=params, data=body)
            assert r.status != 200 or "<Encrypt>" in await r.text()  # the button turns grey
            return r.status

        first = asyncio.create_task(timed("wecom", once))
        await asyncio.sleep(1.0)  # WeCom resends while the first is still unanswered
        await timed("wecom-resend", once)
        await first
        return 0

    await asyncio.gather(*(timed("dtmf", lambda c=c: key(c)) for c in calls[:PER_KIND]),
                         *(timed("sms", lambda m=m, i=i: text(m, i)) for i, m in enumerate(texted)),
                         *(click(c) for c in clicked))
    return out, who


async def _replaying(acked: Callable[[], Awaitable[list[bool]]], journal: Path
                     ) -> tuple[int, list[int]]:
    """How far the replay is: the confirmations recorded, and the journal files' sizes."""
    return sum(await acked()), _sizes(journal)


def _sizes(journal: Path) -> list[int]:
    return sorted(p.stat().st_size for p in journal.glob("*.wbj"))


@pytest.mark.parametrize("returns", ["resumed", "restarted"])
async def test_confirmations_during_a_redis_stall_are_durable_before_2xx(
    redis_factory: Callable[..., ManagedService], tmp_path: Path, returns: str,
) -> None:
    svc = redis_factory(appendfsync="always")
    journal = tmp_path / "journal"
    w = await start_world(svc.url, concurrency=64, journal_dir=str(journal))
    client = TestClient(TestServer(make_web_app(w.h.app)))
    await client.start_server()
    try:
        cid = (await accept(w.h.ctx, cap_alert(codes=TOWNSHIP), ENGINE)).campaign_id
        await w.h.drain()
        await w.h.app.engine.start()  # the journal's replay loop (and the other roles)
        assert svc.pid is not None
        os.kill(svc.pid, signal.SIGSTOP)
        stalled = time.monotonic()
        try:
            answers, who = await _confirm_all(client, w, cid)
            journaled = sorted(journal.glob("*.wbj"))
            sizes = [p.stat().st_size for p in journaled]
        finally:
            if returns == "resumed":
                os.kill(svc.pid, signal.SIGCONT)
            else:
                await asyncio.to_thread(svc.kill)  # what the stall held never reached it
        stall_s = time.monotonic() - stalled
        if returns == "restarted":
            await asyncio.to_thread(svc.start)
        slow = [a for a in answers if a[2] > PATIENCE_S]
        assert all(a[1] == 200 for a in answers), answers
        assert not slow, f"answered after a provider's patience: {slow}"
        assert len(journaled) == 1 and sizes[0] > 0, "what Redis did not take is on disk"
        store = w.h.ctx.store

        async def acked() -> list[bool]:
            return [await store.is_acked(cid, p) for p in who]

        async def recorded() -> bool:
            return all(await acked())

        # The replay is waited for as long as it goes on (a loaded machine slows it); it
        # fails when it stops with a confirmation missing.
        await wait_for(recorded, 30, "every confirmation answered 2xx to be recorded",
                       moving=lambda: _replaying(acked, journal))
        meta = await store.meta(cid)
        acks = [e["tg"] for e in await store.audit(cid) if e["ev"] == "ack"]
        assert sorted(acks) == sorted(who), "each person confirmed once in the record"
        assert meta is not None and meta.target_count(TargetState.ACKED) == len(who), meta

        async def replayed() -> bool:
            return not any(p.stat().st_size for p in journal.glob("*.wbj"))

        await wait_for(replayed, 10, "the journal to be emptied once replayed")
        save_figures({"test": f"redis_stall_acks_{returns}", "confirmations": len(answers),
                      "persons": len(who), "stall_s": round(stall_s, 1),
                      "slowest_answer_s": round(max(a[2] for a in answers), 2)})
    finally:
        await client.close()
        await w.close()
