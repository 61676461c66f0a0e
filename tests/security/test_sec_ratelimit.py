"""A flood on the public endpoints is cut by token buckets in Redis and does not starve the engine.

A client hammers `/ack/<garbage>` (2,000 requests, 50 at a time) while the engine plans and
sends a township's red campaign in the same process and on the same Redis. Requests on the
public routes carry a signature (an ack link's HMAC, a provider's), checked first: forged ones
spend a budget of their own (here burst 200, then 100/s for all clients; see `PUBLIC_LIMITS`)
and beyond it get 429 with Retry-After, before any work but that check; the campaign still
completes, and genuine ack links tapped during the flood are all confirmed. The same for
`/hooks/*`: thousands of forged Twilio and WeCom callbacks never cost a genuine one a 429. A
per-client bucket is tested with a small one.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from structlog.testing import capture_logs

from channels.aliyun_sms import AliyunSms
from channels.testing import TestChannel, TestChannelConfig
from tests.channels_aliyun.aliyun_kit import HOOK_SECRET, sms_config
from tests.engine.helpers import cap_alert, make_harness
from warnbus.domain.states import TargetState
from warnbus.flow.credentials import ENGINE
from warnbus.flow.intake import accept
from warnbus.plugin import Medium
from warnbus.runtime.app import build_app
from warnbus.runtime.config import Settings
from warnbus.web.api import LIMITS, PublicLimit, make_web_app

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "faults"))
from providerkit import start_world
from seckit import twilio_signed, wecom_click

TOWNSHIP = ("430623101000",)
HOOKS = "http://127.0.0.1:9"  # the public base the channels gave the providers


async def test_ack_link_flood_is_limited_and_the_engine_carries_on(redis_url: str) -> None:
    h = await make_harness(redis_url)
    web_app = make_web_app(h.app)
    web_app[LIMITS] = (PublicLimit("/ack/", per_client=None, total=(200.0, 400.0),
                                   failures=(100.0, 200.0)),)
    client = TestClient(TestServer(web_app))
    await client.start_server()
    try:
        res = await accept(h.ctx, cap_alert(codes=("430623101000",)), ENGINE)
        codes: list[int] = []
        retry_after: set[str] = set()
        underway = asyncio.Event()  # the flood has spent its budget

        async def flood() -> None:
            sem = asyncio.Semaphore(50)

            async def one(i: int) -> None:
                async with sem:
                    r = await client.post(f"/ack/forged-{i}")
                    codes.append(r.status)
                    if r.status == 429:
                        retry_after.add(r.headers.get("Retry-After", ""))
                        underway.set()
                    await r.read()

            await asyncio.gather(*(one(i) for i in range(2000)))

        with capture_logs() as logs:
            t = time.monotonic()
            flooding = asyncio.create_task(flood())
            sent = await h.drain()
            engine_s = time.monotonic() - t
            await underway.wait()
            links = sorted({d.ack_url for d in h.sent() if d.ack_url})[:30]
            genuine = [(await client.post(link.removeprefix("http://test"))).status
                       for link in links]
            await flooding
            elapsed = time.monotonic() - t
        meta = await h.ctx.store.meta(res.campaign_id)
        assert meta and sent > 100 and meta.target_count(TargetState.SENT) > 50, "work done"
        assert len(links) == 30 and genuine == [200] * 30, genuine
        handled = sum(1 for e in logs if e["event"] == "ack link rejected")
        limited = codes.count(429)
        assert handled == codes.count(403) and handled + limited == 2000
        # + one batch a process may hold unspent (`SharedLimit`: 0.1 s of the rate)
        assert handled <= 200 + 100 * elapsed + 10 + 5, (handled, elapsed)
        assert limited > 0
        assert retry_after and all(v.isdigit() and int(v) >= 1 for v in retry_after)
        print("FIGURES", {"test": "ack-flood", "requests": 2000, "limited": limited,
                          "handled": handled, "flood_s": round(elapsed, 2),
                          "engine_s": round(engine_s, 2)})
    finally:
        await client.close()
        await h.app.close()


async def test_hooks_spend_separate_buckets_when_verified_and_when_not(redis_url: str) -> None:
    """Small buckets: forged callbacks spend their own (403, then 429); genuine ones are
    limited too, by the budget they share (the shipped ones are large, see PUBLIC_LIMITS)."""
    w = await start_world(redis_url, concurrency=8)
    await accept(w.h.ctx, cap_alert(codes=TOWNSHIP), ENGINE)
    await w.h.drain()
    web_app = make_web_app(w.h.app)
    web_app[LIMITS] = (PublicLimit("/hooks/", per_client=None, total=(0.1, 5.0),
                                   failures=(0.1, 3.0)),)
    client = TestClient(TestServer(web_app))
    await client.start_server()
    try:
        forged = [(await client.post("/hooks/sms/status?c=x", data={"x": "1"})).status
                  for _ in range(6)]
        assert forged == [403, 403, 403, 429, 429, 429], forged
        genuine = []
        for rec in list(w.twilio.messages)[:7]:
            url = rec.get("StatusCallback") or ""
            form = {"MessageSid": rec.sid, "MessageStatus": "sent", "To": rec.to}
            r = await client.post(url.removeprefix(HOOKS), data=form,
                                  headers=twilio_signed(w, url, form))
            genuine.append(r.status)
        assert genuine == [200] * 5 + [429] * 2, genuine
        assert (await client.get("/healthz")).status != 429  # not a public-limited route
        body: Any = await (await client.post("/hooks/sms/status")).json()
        assert body["error"]["code"] == "rate_limited"
    finally:
        await client.close()
        await w.close()


async def test_forged_callbacks_by_the_thousand_never_refuse_a_genuine_one(redis_url: str
                                                                          ) -> None:
    """3,000 forged Twilio and WeCom callbacks (unsigned, mis-signed, undecryptable), 50 at a
    time, against small buckets; genuine signed callbacks sent meanwhile all get 200."""
    w = await start_world(redis_url, concurrency=8)
    res = await accept(w.h.ctx, cap_alert(codes=TOWNSHIP), ENGINE)
    await w.h.drain()
    web_app = make_web_app(w.h.app)
    web_app[LIMITS] = (PublicLimit("/hooks/", per_client=None, total=(50.0, 100.0),
                                   failures=(20.0, 40.0)),)
    client = TestClient(TestServer(web_app))
    await client.start_server()
    cards = [m for m in w.wecom.sent if m.task_id][:20]
    messages = list(w.twilio.messages)[:40]
    assert len(cards) == 20 and len(messages) == 40
    try:
        forged: list[int] = []
        genuine: list[tuple[str, int]] = []
        underway = asyncio.Event()  # the flood has spent its budget

        async def one_forged(i: int) -> None:
            kind = i % 3
            if kind == 0:
                r = await client.post("/hooks/sms/status?c=x&d=y&t=z", data={
                    "MessageSid": f"SM{i}", "MessageStatus": "delivered"},
                    headers={"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"})
            elif kind == 1:
                r = await client.post("/hooks/sms/inbound", data={"From": "+8613800000000",
                                                                  "Body": "1"})
            else:
                params, body = wecom_click(w, cards[0].touser, cards[0].task_id or "",
                                           token="not-the-token")
                r = await client.post("/hooks/wecom/callback", params=params, data=body)
            forged.append(r.status)
            if len(forged) >= 300:
                underway.set()
            await r.read()

        async def flood() -> None:
            sem = asyncio.Semaphore(50)

            async def bounded(i: int) -> None:
                async with sem:
                    await one_forged(i)

            await asyncio.gather(*(bounded(i) for i in range(3000)))

        async def genuine_ones() -> None:
            for n, (rec, card) in enumerate(zip(messages, cards + cards, strict=True)):
                url = rec.get("StatusCallback") or ""
                form = {"MessageSid": rec.sid, "MessageStatus": "delivered", "To": rec.to}
                r = await client.post(url.removeprefix(HOOKS), data=form,
                                      headers=twilio_signed(w, url, form))
                genuine.append(("twilio", r.status))
                if n < len(cards):
                    params, body = wecom_click(w, card.touser, card.task_id or "")
                    r = await client.post("/hooks/wecom/callback", params=params, data=body)
                    genuine.append(("wecom", r.status))
                await asyncio.sleep(0)

        flooding = asyncio.create_task(flood())
        await underway.wait()
        await genuine_ones()
        await flooding
        assert genuine and all(status == 200 for _kind, status in genuine), genuine
        assert set(forged) <= {400, 403, 429} and forged.count(429) > 1000, {
            s: forged.count(s) for s in set(forged)}
        assert len(await w.h.ctx.store.acks(res.campaign_id)) == len(cards)
    finally:
        await client.close()
        await w.close()


async def test_per_client_bucket_when_configured(redis_url: str) -> None:
    h = await make_harness(redis_url)
    web_app = make_web_app(h.app)
    web_app[LIMITS] = (PublicLimit("/ack/", per_client=(1.0, 3.0), total=(1000.0, 1000.0)),)
    client = TestClient(TestServer(web_app))
    await client.start_server()
    try:
        codes = [(await client.post(f"/ack/x{i}")).status for i in range(8)]
        assert codes[:3] == [403, 403, 403] and codes.count(429) >= 4, codes
    finally:
        await client.close()
        await h.app.close()


async def test_a_flood_on_wrong_push_paths_never_refuses_a_cloud_providers_push(
    redis_url: str,
) -> None:
    """Aliyun and Tencent sign a push with a secret path (and the source network): pushes to
    any other path spend the failures' budget, after the fact; genuine ones are all served."""
    channels = {"sms": AliyunSms.from_config("sms", sms_config(
        "127.0.0.1:9", "http://127.0.0.1:9/hooks/sms")),
        **{n: TestChannel(n, TestChannelConfig(medium=Medium(n)))
           for n in ("voice", "wecom", "loudspeaker")}}
    app = await build_app(Settings(redis_url=redis_url, mqtt_url="mqtt://127.0.0.1:9"),
                          channels=channels, base_url="http://test")
    web_app = make_web_app(app)
    # The genuine pushes' budget barely refills (a loaded machine's slow requests would
    # refill a faster one as they go): the first 40 leave 20, the next 100 meet its end.
    web_app[LIMITS] = (PublicLimit("/hooks/", per_client=None, total=(0.01, 60.0),
                                   failures=(5.0, 10.0)),)
    client = TestClient(TestServer(web_app))
    await client.start_server()
    try:
        flood: list[int] = []

        async def wrong(i: int) -> None:
            r = await client.post(f"/hooks/sms/guess-{i}/sms-report", json=[{"biz_id": "x"}])
            flood.append(r.status)

        async def flooding() -> None:
            sem = asyncio.Semaphore(50)

            async def bounded(i: int) -> None:
                async with sem:
                    await wrong(i)

            await asyncio.gather(*(bounded(i) for i in range(2000)))

        task = asyncio.create_task(flooding())
        genuine = []
        for i in range(40):
            r = await client.post(f"/hooks/sms/{HOOK_SECRET}/sms-report",
                                  json=[{"biz_id": f"b{i}", "success": True}])
            genuine.append(r.status)
            await asyncio.sleep(0)
        await task
        assert genuine == [200] * 40, genuine
        assert set(flood) == {404}
        # Genuine pushes spend the budget they share, checked before any work.
        more = await asyncio.gather(*(client.post(
            f"/hooks/sms/{HOOK_SECRET}/sms-report", json=[{"biz_id": f"m{i}"}])
            for i in range(100)))
        assert {r.status for r in more} == {200, 429}
    finally:
        await client.close()
        await app.close()
