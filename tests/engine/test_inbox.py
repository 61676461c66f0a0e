"""An alert being planned is not taken over by a sweeper while its worker is alive."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.engine.helpers import cap_alert, make_harness
from warnbus import keys
from warnbus.intake import accept


async def test_long_planning_keeps_its_inbox_item(redis_url: str) -> None:
    h = await make_harness(redis_url, lease_s=1.0)
    try:
        await accept(h.ctx, cap_alert())
        real = h.app.engine.intake.handle

        async def slow(*args: Any) -> None:  # a province-sized plan
            await asyncio.sleep(2.5)
            await real(*args)

        h.app.engine.intake.handle = slow  # type: ignore[method-assign]
        work = asyncio.create_task(h.app.engine.inbox_once())
        await asyncio.sleep(1.8)  # longer than the lease: idle unless kept claimed
        reply = await h.ctx.redis.xautoclaim(keys.INBOX, keys.GROUP, "sweeper", 1000, "0-0")
        assert reply[1] == [], "a live worker's item was taken over"
        assert await work == 1
        assert h.sent() == [] and sum((await h.ctx.lanes.depth()).values()) > 0
    finally:
        await h.app.close()
