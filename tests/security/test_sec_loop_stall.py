"""A costly alert is matched off the event loop: webhooks and acks are not stalled meanwhile.

1,000 areas (the most an alert may have), each a county-wide polygon: matching them and the
registry check (each area once more on its own) takes a large part of a second. Done on the
event loop, every other request of the process waited that long; in a worker thread, the
loop keeps turning.
"""

from __future__ import annotations

import asyncio
import gc
import random
import time
from typing import Any

from seckit import WIDE, auth, cap_xml

from tests.engine.helpers import worst_lag
from warnbus.flow.matching import check_registry, costly
from warnbus.ingest import parse_cap
from warnbus.tools.bench.alerts import irregular_ring


def many_areas(n: int = 1000) -> bytes:
    rnd = random.Random(14)
    areas = []
    for k in range(n):
        ring = irregular_ring(29.55 + rnd.uniform(-0.05, 0.05), 112.6 + rnd.uniform(-0.05, 0.05),
                              0.3)
        points = " ".join(f"{lat},{lon}" for lat, lon in ring)
        areas.append(f"<area><areaDesc>区域{k}</areaDesc><polygon>{points}</polygon></area>")
    body = cap_xml("S-1", ())
    return body.replace("<area><areaDesc>华容县</areaDesc></area>".encode(),
                        "".join(areas).encode())


async def test_a_1000_area_alert_does_not_stall_the_loop_while_matched(api_client: Any) -> None:
    client, h = api_client
    body = many_areas()
    alert = parse_cap(body, max_bytes=len(body))
    assert costly(h.ctx, alert)
    # What it costs when done on the loop (here, deliberately, before the probe runs).
    t = time.perf_counter()
    check_registry(h.ctx, alert, h.ctx.rules.match(alert))
    on_loop = time.perf_counter() - t
    assert on_loop > 0.2, f"the alert is not costly enough to show anything ({on_loop:.3f}s)"

    # As Engine.start does: what lives as long as the process is kept out of full collections
    # (one of this test process's heap took 0.1 s, in whichever thread it fell).
    gc.freeze()
    try:
        stop = asyncio.Event()
        probe = asyncio.create_task(worst_lag(stop))
        await asyncio.sleep(0.05)
        t = time.perf_counter()
        r = await client.post("/api/v1/alerts", data=body, headers=auth(WIDE))
        took = time.perf_counter() - t
        stop.set()
        lag = await probe
    finally:
        gc.unfreeze()
    assert r.status == 202, await r.text()
    assert (await r.json())["targets"] > 0
    assert lag < max(0.1, on_loop / 4), (
        f"the loop stalled {lag:.3f}s while the alert ({on_loop:.3f}s of matching) was "
        f"accepted in {took:.3f}s")

