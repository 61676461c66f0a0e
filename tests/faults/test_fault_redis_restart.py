"""Redis crashes (SIGKILL) and comes back from its AOF in the middle of a campaign.

Redis runs with `appendfsync always`, so every write acknowledged before the crash is in the
AOF. A worker process keeps running through the outage; the API runs in this process over real
HTTP. While Redis is down `/healthz` answers 503 with `"redis": false` and an alert cannot be
accepted (no 202); after the restart the worker reconnects by itself, and every alert that got
a 202, before or after the crash, completes with nothing lost.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from faultkit import (
    FAST_POLICY,
    FAST_SITES,
    cap_xml,
    open_work,
    progress,
    recorded,
    save_figures,
    start_worker,
    wait_for,
    write_config,
)

from tests.engine.helpers import make_harness
from warnbus.domain.states import GridState
from warnbus.runtime.services import ManagedService
from warnbus.web.api import make_web_app

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
CAP = {"Content-Type": "application/cap+xml"}


async def test_redis_crash_and_aof_restart_mid_campaign(
    redis_factory: Callable[..., ManagedService], mosquitto_service: ManagedService,
    tmp_path: Path,
) -> None:
    svc = redis_factory(appendfsync="always")
    h = await make_harness(svc.url, policy=str(FAST_POLICY), sites=str(FAST_SITES),
                           start=time.time())
    h.app.mqtt_url = mosquitto_service.url  # /healthz checks the broker too
    token = h.app.api_token
    assert token
    auth = {**CAP, "Authorization": f"Bearer {token}"}
    client = TestClient(TestServer(make_web_app(h.app)))
    await client.start_server()
    worker = start_worker(write_config(tmp_path, svc.url, delay=0.03), tmp_path, "w")
    redis = h.ctx.redis
    try:
        r = await client.post("/api/v1/alerts", data=cap_xml("R-1", ("430623",)), headers=auth)
        assert r.status == 202, await r.text()
        first = await r.json()

        async def sending() -> bool:
            return int(await redis.llen("wbtest:sent")) > 400

        await wait_for(sending, 60, "the campaign to be under way")
        await asyncio.to_thread(svc.kill)  # a crash: no shutdown, no final fsync
        t_down = time.monotonic()
        r = await client.get("/healthz", headers=auth)
        body = await r.json()
        assert r.status == 503 and body["redis"] is False and body["broker"] is True, body
        r = await client.post("/api/v1/alerts", data=cap_xml("R-2", ("430623101000",)),
                              headers=auth)
        assert r.status >= 500, "nothing is accepted while Redis is down"
        await asyncio.sleep(3.0)  # the worker's loops fail and wait meanwhile
        await asyncio.to_thread(svc.start)
        outage = time.monotonic() - t_down
        r = await client.get("/healthz", headers=auth)
        assert r.status == 200 and (await r.json())["redis"] is True
        r = await client.post("/api/v1/alerts", data=cap_xml("R-3", ("430623105000",)),
                              headers=auth)
        assert r.status == 202, await r.text()
        third = await r.json()

        campaigns = (first["campaign_id"], third["campaign_id"])

        async def done() -> bool:
            # The cheap checks first: every delivery's state is read only at the end.
            if sum((await h.ctx.lanes.depth()).values()):
                return False
            for cid in campaigns:
                meta = await h.ctx.store.meta(cid)
                if meta is None or sum(meta.grid_count(g) for g in GridState.OPEN):
                    return False
            return not [cid for cid in campaigns if await open_work(h.ctx.store, cid)]

        async def diagnose() -> str:
            return (f"open {await open_work(h.ctx.store, first['campaign_id'])} "
                    f"{await open_work(h.ctx.store, third['campaign_id'])} "
                    f"log: {worker.log.read_text()[-3000:]}")

        # However slowly a loaded machine lets the worker go: it fails when the work stops.
        await wait_for(done, 60, "both accepted campaigns to complete", diagnose,
                       moving=lambda: progress(redis, *campaigns), every=0.5)
        rows = await recorded(redis)
        sent_ids = {r[0] for r in rows}
        lost = 0
        for cid in (first["campaign_id"], third["campaign_id"]):
            states = await h.ctx.store.delivery_states(cid)
            lost += sum(1 for d, st in states.items()
                        if st in ("sent", "delivered") and d not in sent_ids)
            assert not [d for d, st in states.items() if st in ("failed", "dead")]
        assert lost == 0
        meta = await h.ctx.store.meta(first["campaign_id"])
        # The county's 777 grids and the sites the rainstorm calls, tracked like them.
        tracked = await h.ctx.store.grids(first["campaign_id"])
        assert len(tracked) - sum(map(h.ctx.registry.is_site, tracked)) == 777
        assert meta and meta.grid_count(GridState.UNREACHED) == len(tracked), "timers survived"
        dups = len(rows) - len(sent_ids)
        assert dups <= 4 * 8, dups
        planned = 0
        for cid in (first["campaign_id"], third["campaign_id"]):
            planned += len(await h.ctx.store.delivery_states(cid))
        save_figures({"test": "redis-crash", "outage_s": round(outage, 1),
                      "deliveries": planned,
                      "sends": len(rows), "lost": lost, "duplicates": dups,
                      "counted": meta.duplicates})
    finally:
        worker.kill()
        await client.close()
        await h.app.close()
