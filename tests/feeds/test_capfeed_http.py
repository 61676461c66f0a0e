"""The outbound CAP Atom feed and CAP files, over real HTTP, on a real redis-server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import msgspec
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from feedkit import feed_settings, fixture
from lxml import etree

from tests.engine.helpers import Harness, cap_alert, make_harness
from warnbus.domain.models import Alert, Scope, Status
from warnbus.feeds import FeedPoller
from warnbus.flow.credentials import ENGINE
from warnbus.flow.intake import accept
from warnbus.ingest import parse_cap
from warnbus.runtime.services import free_port
from warnbus.web.api import make_web_app
from warnbus.web.capfeed import CAP_FEED

A = "{http://www.w3.org/2005/Atom}"
THREAD = ("rainstorm-red.xml", "rainstorm-red-update.xml", "rainstorm-red-cancel.xml")


@pytest_asyncio.fixture
async def api(redis_url: str) -> AsyncIterator[tuple[TestClient, Harness]]:  # type: ignore[type-arg]
    """The feed routes on a test server whose public URL (what links start with) is its own."""
    h = await make_harness(redis_url)
    port = free_port()
    h.app.links.base_url = f"http://127.0.0.1:{port}"
    client = TestClient(TestServer(make_web_app(h.app), port=port))
    await client.start_server()
    # These tests are about content: no staleness (tests/security/test_sec_public_routes.py
    # is about the cache).
    client.server.app[CAP_FEED].cache_s = 0.0
    try:
        yield client, h
    finally:
        await client.close()
        await h.app.close()


async def publish(h: Harness) -> tuple[list[Alert], list[Alert]]:
    """The red thread (public) and two messages that must never be published."""
    public = [parse_cap(fixture(n)) for n in THREAD]
    restricted = msgspec.structs.replace(
        cap_alert("43062304100000_20260716000000_1"), scope=Scope.RESTRICTED,
        restriction="internal")
    draft = msgspec.structs.replace(cap_alert("43062304100000_20260716000000_2"),
                                    status=Status.DRAFT)
    for a in (public[0], restricted, draft, *public[1:]):
        assert (await accept(h.ctx, a, ENGINE)).created
        await h.drain()
    return public, [restricted, draft]


async def test_feed_lists_public_messages_newest_first_and_links_round_trip(api) -> None:  # type: ignore[no-untyped-def]
    client, h = api
    public, hidden = await publish(h)
    r = await client.get("/cap/feed.atom")
    assert r.status == 200 and r.content_type == "application/atom+xml"
    feed = etree.fromstring(await r.read())
    assert feed.tag == A + "feed"
    assert feed.findtext(A + "updated") == "2026-08-02T15:30:00+08:00"  # the newest message
    assert feed.find(A + "link").get("rel") == "self"
    entries = feed.findall(A + "entry")
    assert len(entries) == 3  # one per message of the thread; Restricted and Draft absent
    assert [e.findtext(A + "updated") for e in entries] == [
        "2026-08-02T15:30:00+08:00", "2026-08-02T07:00:00+08:00", "2026-08-02T04:00:00+08:00"]
    assert entries[0].findtext(A + "title").startswith("Cancel: ")
    assert len({e.findtext(A + "id") for e in entries}) == 3
    assert all(e.findtext(A + "id").startswith("urn:uuid:") for e in entries)
    for entry, alert in zip(entries, public[::-1], strict=True):
        (link,) = entry.findall(A + "link")
        assert link.get("rel") == "alternate" and link.get("type") == "application/cap+xml"
        r = await client.get(urlsplit(link.get("href")).path)
        assert r.status == 200 and r.content_type == "application/cap+xml"
        assert parse_cap(await r.read()) == alert
    for a in hidden:
        r = await client.get(f"/cap/alerts/{a.alert_id}.xml")
        assert r.status == 404
        assert (await r.json())["error"]["code"] == "not_found"


async def test_limit_etag_and_errors(api) -> None:  # type: ignore[no-untyped-def]
    client, h = api
    r = await client.get("/cap/feed.atom")
    assert r.status == 200 and etree.fromstring(await r.read()).findall(A + "entry") == []
    await publish(h)
    r = await client.get("/cap/feed.atom?limit=2")
    assert len(etree.fromstring(await r.read()).findall(A + "entry")) == 2
    etag = r.headers["ETag"]
    r = await client.get("/cap/feed.atom?limit=2", headers={"If-None-Match": etag})
    assert r.status == 304
    for bad in ("0", "abc", "100000"):
        r = await client.get(f"/cap/feed.atom?limit={bad}")
        assert r.status == 400 and (await r.json())["error"]["code"] == "invalid"
    for path in ("/cap/alerts/nonsense.xml", "/cap/alerts/al_00000000000000000000.xml"):
        assert (await client.get(path)).status == 404


async def test_another_warnbus_polls_this_feed(api, redis_url: str) -> None:  # type: ignore[no-untyped-def]
    """Downstream: a second warnbus (its own Redis database) subscribes to the Atom feed."""
    client, h = api
    public, _ = await publish(h)
    other = await make_harness(redis_url.rsplit("/", 1)[0] + "/1")
    try:
        poller = FeedPoller(other.ctx,
                            feed_settings("upstream", str(client.make_url("/cap/feed.atom"))))
        try:
            res = await poller.poll_once()
        finally:
            await poller.aclose()
        assert res.outcome == "ok" and res.counts["accepted"] == 3, res
        cid = await other.ctx.store.campaign_of(public[0].alert_id)
        assert cid and await other.ctx.store.alert(cid, public[2].alert_id) == public[2]
    finally:
        await other.app.close()
