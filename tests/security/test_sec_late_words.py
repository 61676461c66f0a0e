"""What a person is told who confirms after the warning ended: never 已确认 as if in time.

The engine keeps a key press or a WeCom click after a Cancel (or past the expiry) as late; the
channel used to answer it from a bool, so the caller heard 已确认，谢谢 and the button turned
已确认收到 as for a confirmation in time. Through the engine's own web app, the real Twilio
voice and WeCom channels and their simulators: the words the person gets say the warning was
lifted (解除) or has ended, also to someone who had confirmed in time and confirms again.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from tests.engine.helpers import cap_alert
from warnbus.domain.models import MsgType, Reference
from warnbus.flow.credentials import ENGINE
from warnbus.flow.intake import accept
from warnbus.web.api import make_web_app

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "faults"))
from providerkit import SimRecord, World, start_world
from seckit import wecom_label

TOWNSHIP = ("430623101000",)
IDENT = "43062304100000_20260715053001_1"


@pytest_asyncio.fixture
async def env(redis_url: str) -> AsyncIterator[tuple[TestClient, World]]:  # type: ignore[type-arg]
    w = await start_world(redis_url, concurrency=8)
    client = TestClient(TestServer(make_web_app(w.h.app)))
    await client.start_server()
    yield client, w
    await client.close()
    await w.close()


async def _press(client: TestClient, w: World, call: SimRecord) -> str:  # type: ignore[type-arg]
    """Key 1 on `call` (its Gather as the simulator kept it): what the caller then hears."""
    press = w.twilio.prepare_press(call)
    assert press is not None, "the call asked for no key"
    url = urlsplit(press.url)
    r = await client.post(f"{url.path}?{url.query}", data=press.body,
                          headers=dict(press.headers))
    assert r.status == 200
    return await r.text()


async def _click(client: TestClient, w: World, user: str, task_id: str) -> str:  # type: ignore[type-arg]
    """A click on the card's button: the label WeCom then shows on it."""
    return await wecom_label(client, w, user, task_id)


async def _started(w: World, hours: int = 6) -> tuple[str, list[SimRecord], list[Any]]:
    """A warning's campaign, its calls and its cards (each to a different person)."""
    res = await accept(w.h.ctx, cap_alert(IDENT, codes=TOWNSHIP, hours=hours), ENGINE)
    await w.h.drain()
    cid = res.campaign_id
    calls = [c for c in w.twilio.calls if f"c={cid}" in (c.get("StatusCallback") or "")]
    cards = [m for m in w.wecom.sent if m.task_id]
    assert len(calls) >= 2 and len(cards) >= 2
    return cid, calls, cards


async def test_a_key_or_click_after_the_lifting_hears_it_was_lifted(env: Any) -> None:
    client, w = env
    cid, calls, cards = await _started(w)
    # In time: confirmed, in the call and on the button.
    assert "已确认" in await _press(client, w, calls[0])
    assert await _click(client, w, cards[0].touser, cards[0].task_id or "") == "已确认收到"
    cancel = cap_alert("43062304100000_20260715083000_9", msg_type=MsgType.CANCEL,
                       codes=TOWNSHIP, references=(
                           Reference(cap_alert().sender, IDENT, "2026-07-15T13:30:00+08:00"),))
    await accept(w.h.ctx, cancel, ENGINE)
    await w.h.drain()
    # After it: whoever presses or clicks, confirmed before or not, hears it was lifted.
    for call in calls[:2]:
        heard = await _press(client, w, call)
        assert "该预警已解除" in heard and "已确认" not in heard, heard
    for card in cards[:2]:
        label = await _click(client, w, card.touser, card.task_id or "")
        assert label == "预警已解除", label
    late = {e["tg"] for e in await w.h.ctx.store.audit(cid) if e.get("ev") == "late"}
    assert len(late) >= 2


async def test_a_key_or_click_past_the_expiry_hears_it_has_ended(env: Any) -> None:
    """Past its expiry, even before the timer marks the campaign expired."""
    client, w = env
    _cid, calls, cards = await _started(w, hours=1)
    w.h.clock.advance(3601)
    heard = await _press(client, w, calls[0])
    assert "该预警已结束" in heard and "已确认" not in heard, heard
    assert await _click(client, w, cards[0].touser, cards[0].task_id or "") == "预警已结束"


async def test_a_key_from_the_area_an_update_dropped_hears_it_was_lifted(env: Any) -> None:
    """An Update narrows the warning: a call of before, answered in the dropped township,
    hears its warning was lifted; in the township still warned, a key confirms."""
    client, w = env
    h = w.h
    res = await accept(h.ctx, cap_alert(IDENT, codes=("430623101000", "430623102000")), ENGINE)
    await h.drain()
    cid = res.campaign_id
    upd = cap_alert("43062304100000_20260715083000_2", msg_type=MsgType.UPDATE,
                    codes=("430623101000",), references=(
                        Reference(cap_alert().sender, IDENT, "2026-07-15T13:30:00+08:00"),))
    await accept(h.ctx, upd, ENGINE)
    await h.drain()
    by_phone = {p.phone: p.id for p in h.ctx.registry.data.persons.values() if p.phone}
    calls = [c for c in w.twilio.calls if f"c={cid}" in (c.get("StatusCallback") or "")
             and w.twilio.prepare_press(c) is not None]

    async def dropped(call: SimRecord) -> bool:
        held = await h.ctx.store.held(cid, by_phone[call.to])
        return bool(held) and all(g.state == "dropped" for g in held)

    gone = [c for c in calls if await dropped(c)]
    kept = [c for c in calls if not await dropped(c)]
    assert gone and kept
    heard = await _press(client, w, gone[0])
    assert "该预警已解除" in heard and "已确认" not in heard, heard
    assert "已确认" in await _press(client, w, kept[0])
