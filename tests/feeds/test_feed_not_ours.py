"""A province feed carries other counties' alerts: those are "not ours", skipped, not errors."""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgspec
import pytest_asyncio
from feedkit import FeedServer, atom, feed_settings, fixture
from structlog.testing import capture_logs

from tests.engine.helpers import Harness, cap_alert, make_harness
from warnbus.feeds import FeedPoller, alert_to_cap, feed_health
from warnbus.ingest import parse_cap

RED = "rainstorm-red.xml"


@pytest_asyncio.fixture
async def env(redis_url: str) -> AsyncIterator[tuple[Harness, FeedServer]]:
    h = await make_harness(redis_url)
    server = FeedServer()
    await server.start()
    yield h, server
    await server.close()
    await h.app.close()


async def test_an_alert_for_another_county_is_skipped_not_an_error(
    env: tuple[Harness, FeedServer],
) -> None:
    h, server = env
    # 湘阴县 (430624): a neighbour county of the same province feed.
    other = cap_alert("43062404100000_20260715053000_1", codes=("430624101000", "430624102000"))
    server.put("/cap/other.xml", alert_to_cap(other))
    server.put("/cap/red.xml", fixture(RED))
    server.put("/province.atom", atom([
        {"id": "other", "href": server.url("/cap/other.xml")},
        {"id": "red", "href": server.url("/cap/red.xml")},
    ]), etag='"p1"')
    feed = feed_settings("province", server.url("/province.atom"))
    h.ctx.settings = msgspec.structs.replace(h.ctx.settings, feeds=(feed,))
    poller = FeedPoller(h.ctx, feed)

    with capture_logs() as logs:
        res = await poller.poll_once()
    assert res.outcome == "ok", res
    assert res.counts == {**res.counts, "seen": 2, "accepted": 1, "skipped": 1, "rejected": 0,
                          "errors": 0}
    skipped = next(e for e in logs if e["event"] == "feed alert not for this registry, skipped")
    assert skipped["code"] == "outside_registry" and skipped["alert_id"] == other.alert_id
    assert "geocodes 430624101000, 430624102000" in skipped["error"], skipped
    assert not any(e["event"] == "feed poll failed" for e in logs)
    assert not await h.ctx.store.campaign_of(other.alert_id)
    assert await h.ctx.store.campaign_of(parse_cap(fixture(RED)).alert_id)

    # Healthy, nothing to retry: the skipped entry is seen and never fetched again.
    health = (await feed_health(h.ctx))["province"]
    assert health["status"] == "ok" and health["consecutive_failures"] == 0, health
    assert health["entries"]["skipped"] == 1 and health["entries"]["rejected"] == 0
    server.put("/province.atom", atom([
        {"id": "other", "href": server.url("/cap/other.xml")},
        {"id": "red", "href": server.url("/cap/red.xml")},
    ]), etag='"p2"')  # the index changed (a new ETag): it is read again, its entries are not
    res = await poller.poll_once()
    assert res.outcome == "ok" and res.counts["seen"] == 0, res
    assert server.hits["/cap/other.xml"] == 1
    await poller.aclose()
