"""A flood on the public endpoints is cut by token buckets in Redis and does not starve the engine.

A client hammers `/ack/<garbage>` (2,000 requests, 50 at a time) while the engine plans and
sends a township's red campaign in the same process and on the same Redis. Beyond the bucket
(here burst 400, then 200/s for all clients; the shipped `/ack/` bucket is larger, see
`PUBLIC_LIMITS`) the flood gets 429 with Retry-After before any handler work; the campaign
still completes. A per-client bucket is tested with a small one. `/hooks/*` has a global bucket (provider callbacks come from a
few addresses) and is tested with a small one.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from structlog.testing import capture_logs

from tests.engine.helpers import cap_alert, make_harness
from warnbus.credentials import ENGINE
from warnbus.intake import accept
from warnbus.web.api import LIMITS, PublicLimit, make_web_app


async def test_ack_link_flood_is_limited_and_the_engine_carries_on(redis_url: str) -> None:
    h = await make_harness(redis_url)
    web_app = make_web_app(h.app)
    web_app[LIMITS] = (PublicLimit("/ack/", per_client=None, total=(200.0, 400.0)),)
    client = TestClient(TestServer(web_app))
    await client.start_server()
    try:
        res = await accept(h.ctx, cap_alert(codes=("430623101000",)), ENGINE)
        codes: list[int] = []
        retry_after: set[str] = set()

        async def flood() -> None:
            sem = asyncio.Semaphore(50)

            async def one(i: int) -> None:
                async with sem:
                    r = await client.post(f"/ack/forged-{i}")
                    codes.append(r.status)
                    if r.status == 429:
                        retry_after.add(r.headers.get("Retry-After", ""))
                    await r.read()

            await asyncio.gather(*(one(i) for i in range(2000)))

        with capture_logs() as logs:
            t = time.monotonic()
            flooding = asyncio.create_task(flood())
            sent = await h.drain()
            engine_s = time.monotonic() - t
            await flooding
            elapsed = time.monotonic() - t
        meta = await h.ctx.store.meta(res.campaign_id)
        assert sent > 100 and int(meta["t_sent"]) > 50, "the engine got its work done"
        handled = sum(1 for e in logs if e["event"] == "ack link rejected")
        limited = codes.count(429)
        assert handled == codes.count(403) and handled + limited == 2000
        # + one batch a process may hold unspent (`SharedLimit`: 0.1 s of the rate)
        assert handled <= 400 + 200 * elapsed + 20 + 5, (handled, elapsed)
        assert limited > 0
        assert retry_after and all(v.isdigit() and int(v) >= 1 for v in retry_after)
        print("FIGURES", {"test": "ack-flood", "requests": 2000, "limited": limited,
                          "handled": handled, "flood_s": round(elapsed, 2),
                          "engine_s": round(engine_s, 2)})
    finally:
        await client.close()
        await h.app.close()


async def test_hooks_have_a_global_bucket(redis_url: str) -> None:
    h = await make_harness(redis_url)
    web_app = make_web_app(h.app)
    web_app[LIMITS] = (PublicLimit("/hooks/", per_client=None, total=(1.0, 5.0)),)
    client = TestClient(TestServer(web_app))
    await client.start_server()
    try:
        codes = []
        for _ in range(12):
            r = await client.post("/hooks/sms/status", data={"x": "1"})
            codes.append(r.status)
        assert codes.count(429) >= 6 and 429 not in codes[:5], codes
        r = await client.get("/healthz")  # not a public-limited route
        assert r.status != 429
        body: Any = await (await client.post("/hooks/x")).json()
        assert body["error"]["code"] == "rate_limited"
    finally:
        await client.close()
        await h.app.close()


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
