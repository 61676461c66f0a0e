"""A worker SIGKILLed between the provider's accept and the attempt's record (issue 16, item 4).

The worker process sends through the recording test channels, whose answer comes back
`AFTER` seconds after the provider accepted (and the test channel journalled) the message,
as a slow HTTP response does. The test kills the worker right after accepts were journalled,
so the kill lands inside that window, several times, and restarts it. On main such a call
had no attempt row at all (the record showed only the resend, or nothing when the campaign
had ended). Now every call that was made is a row of the 叫应 record (`warnbus record`),
its outcome unknown where it was never recorded.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import pytest_asyncio
from faultkit import (
    FAST_POLICY,
    open_work,
    progress,
    recorded,
    save_figures,
    start_worker,
    wait_for,
)
from faultkit import write_config as worker_config

from tests.engine.helpers import Harness, cap_alert, make_harness
from warnbus.domain.models import Severity
from warnbus.flow.credentials import ENGINE
from warnbus.flow.intake import accept
from warnbus.flow.record import record_rows

KILLS = 3
AFTER = 0.4  # seconds from the provider's accept to its answer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]


@pytest_asyncio.fixture
async def planner(redis_url: str) -> AsyncIterator[Harness]:
    h = await make_harness(redis_url, policy=str(FAST_POLICY), start=time.time())
    yield h
    await h.app.close()


async def test_every_call_a_killed_worker_made_is_in_the_record(
        planner: Harness, redis_url: str, tmp_path: Path) -> None:
    h, redis = planner, planner.ctx.redis
    sent = datetime.now(UTC).replace(microsecond=0)
    # Yellow: SMS and WeCom, no redials (the first wave is the whole campaign).
    res = await accept(h.ctx, cap_alert(codes=("430623101000",), sent=sent,
                                        severity=Severity.MODERATE, level_zh="黄色"), ENGINE)
    await h.app.engine.inbox_once()
    cfg = worker_config(tmp_path, redis_url, delay=0.0, after=AFTER, concurrency=8)
    worker = start_worker(cfg, tmp_path, "w0")
    killed_after: list[int] = []
    try:
        for k in range(KILLS):
            base = int(await redis.llen("wbtest:sent"))

            async def accepted(base: int = base) -> bool:
                return int(await redis.llen("wbtest:sent")) > base

            await wait_for(accepted, 30, f"accepts before kill {k + 1}")
            worker.kill()  # the worker waits for the answers of what was just accepted
            killed_after.append(int(await redis.llen("wbtest:sent")))
            worker = start_worker(cfg, tmp_path, f"w{k + 1}")

        async def done() -> bool:
            return sum((await h.ctx.lanes.depth()).values()) == 0 and not await open_work(
                h.ctx.store, res.campaign_id)

        await wait_for(done, 60, "the campaign's sends to finish",
                       moving=lambda: progress(redis, res.campaign_id))
    finally:
        worker.kill()
    calls = Counter(str(r[0]) for r in await recorded(redis))
    rows = [r for r in await record_rows(h.ctx, res.alert_id) if r["attempt"]]
    per_delivery = Counter(r["delivery_id"] for r in rows)
    missing = {d: (n, per_delivery[d]) for d, n in calls.items() if per_delivery[d] < n}
    assert not missing, f"{len(missing)} calls without their row in the record: {missing}"
    unknown = [r for r in rows if r["outcome"] == "unknown"]
    assert unknown, "the kills landed between accept and record"
    save_figures({"test": "record-after-kill", "kills": KILLS, "calls": sum(calls.values()),
                  "rows": len(rows), "unknown_outcome": len(unknown), "missing": 0})
