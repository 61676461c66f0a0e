"""`engine.lane_readers`: several loops read each channel's lanes; every delivery goes once."""

from __future__ import annotations

from collections import Counter

import msgspec
import pytest

from tests.engine.helpers import cap_alert, make_harness
from tests.waits import until
from warnbus.domain.meta import CampaignMeta
from warnbus.flow.credentials import ENGINE
from warnbus.flow.intake import accept
from warnbus.runtime.config import EngineSettings


async def test_each_channel_runs_its_readers_and_sends_each_delivery_once(
    redis_url: str,
) -> None:
    h = await make_harness(redis_url, lane_readers=3, batch=8, concurrency=4)
    try:
        await h.app.engine.start()
        names = sorted(t.get_name() for t in h.app.engine._tasks)
        assert [n for n in names if n.startswith("lane-sms")] == [
            "lane-sms-0", "lane-sms-1", "lane-sms-2"]
        # Two townships: many chunks of 4 for the three readers of each channel to share.
        res = await accept(h.ctx, cap_alert(codes=("430623101000", "430623102000")), ENGINE)

        async def settled() -> CampaignMeta | None:
            meta = await h.ctx.store.meta(res.campaign_id)
            idle = meta and meta.attempts and not any((await h.ctx.lanes.depth()).values())
            return meta if idle and len(h.sent()) == meta.attempts else None

        meta = await until(settled, "every lane read and every attempt recorded", within=30)
        sent = h.sent()
        assert len(sent) > 3 * 16
        assert Counter(d.id for d in sent).most_common(1)[0][1] == 1, "a delivery went twice"
        assert meta and meta.attempts == len(sent) and meta.duplicates == 0
    finally:
        await h.app.close()


def test_lane_readers_must_be_at_least_one() -> None:
    with pytest.raises(msgspec.ValidationError, match="lane_readers"):
        msgspec.convert({"lane_readers": 0}, EngineSettings)
