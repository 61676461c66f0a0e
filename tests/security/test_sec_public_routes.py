"""The unauthenticated routes stay cheap and say nothing they should not, whatever a client sends.

- `/cap/feed.atom`: `limit` is ASCII digits 1..500 (a "²" passes `str.isdigit` and made `int`
  raise: a 500), else 400; links come from the configured public URL, never from the Host
  header; neither Host nor unknown parameters make another read, render or cache entry.
- `/cap/alerts/{id}.xml`: rendered once per message, however many ask at once.
- `/healthz`: up or down for anyone, probed at most once a second for all of them; the detail
  (Redis, broker, roles, feed names and their upstream errors) only with an officer's or an
  admin's token.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from urllib.parse import quote

import msgspec
import pytest_asyncio
from aiohttp.test_utils import TestClient
from lxml import etree

from tests.engine.helpers import Harness, cap_alert, make_harness, web_client
from warnbus.feeds.state import FeedState
from warnbus.flow.credentials import ENGINE
from warnbus.flow.intake import accept
from warnbus.runtime import metrics
from warnbus.runtime.app import token_hash
from warnbus.runtime.config import FeedSettings, TokenSettings
from warnbus.web.api import HEALTH

PUBLIC = "https://warn.example.gov.cn/wb"
A = "{http://www.w3.org/2005/Atom}"
OFFICER, ADMIN, FEED = "officer-token-public", "admin-token-public", "feed-token-public"


@pytest_asyncio.fixture
async def api(redis_url: str) -> AsyncIterator[tuple[TestClient, Harness]]:  # type: ignore[type-arg]
    """The API on a harness whose configured public URL is `PUBLIC`, with one published alert."""
    h = await make_harness(redis_url)
    h.app.links.base_url = PUBLIC
    h.app.tokens = (TokenSettings("duty", token_hash(OFFICER), roles=("officer",)),
                    TokenSettings("root", token_hash(ADMIN), roles=("admin",)),
                    TokenSettings("met", token_hash(FEED), roles=("feed",)))
    await accept(h.ctx, cap_alert(codes=("430623101000",)), ENGINE)
    async with web_client(h) as client:
        yield client, h


def renders(what: str) -> float:
    return float(metrics.CAP_RENDERS.labels(what)._value.get())


async def test_limit_is_ascii_digits_or_400_never_500(api) -> None:  # type: ignore[no-untyped-def]
    client, _h = api
    for bad in ("²", "١٢", "１０", "1e2", " 5", "5 ", "+5", "-1", "0x10", "0", "501", "9" * 5000,
                "1.0", ""):
        r = await client.get(f"/cap/feed.atom?limit={quote(bad)}")
        assert r.status == 400, (bad, r.status)
        assert (await r.json())["error"]["code"] == "invalid"
    r = await client.get("/cap/feed.atom?limit=1&limit=2")
    assert r.status == 400
    for good in ("1", "100", "500", "0007"):
        assert (await client.get(f"/cap/feed.atom?limit={good}")).status == 200, good


async def test_links_come_from_the_public_url_and_host_or_junk_make_no_cache_entry(api) -> None:  # type: ignore[no-untyped-def]
    client, _h = api
    r = await client.get("/cap/feed.atom")
    assert r.status == 200
    first = await r.read()
    built = renders("feed")
    hrefs = [el.get("href") or "" for el in etree.fromstring(first).iter(A + "link")]
    assert len(hrefs) == 2 and all(h.startswith(PUBLIC + "/cap/") for h in hrefs), hrefs
    for headers, query in (({"Host": "evil.example"}, ""),
                           ({"Host": "evil.example:8443", "X-Forwarded-Host": "evil.example",
                             "X-Forwarded-Proto": "https"}, ""),
                           ({}, "?utm_source=x"), ({}, "?limit=100&cachebust=1"),
                           ({"Host": "a.b"}, "?limit=100&x=" + "y" * 1000)):
        r = await client.get("/cap/feed.atom" + query, headers=headers)
        assert r.status == 200 and await r.read() == first, (headers, query)
    assert renders("feed") == built, "no other read or render, so no other cache entry"
    link = hrefs[1].removeprefix(PUBLIC)
    r = await client.get(link, headers={"Host": "evil.example"})
    assert r.status == 200 and b"evil" not in await r.read()


async def test_a_cap_file_is_rendered_once_for_a_burst(api) -> None:  # type: ignore[no-untyped-def]
    client, h = api
    aid = cap_alert(codes=("430623101000",)).alert_id
    before = renders("file")

    async def get() -> bytes:
        r = await client.get(f"/cap/alerts/{aid}.xml")
        assert r.status == 200
        return await r.read()

    bodies = await asyncio.gather(*(get() for _ in range(100)))
    assert len(set(bodies)) == 1
    for _ in range(100):
        assert await get() == bodies[0]
    assert renders("file") - before == 1
    # The feed too: a burst shares one read and render of the newest messages.
    feeds = renders("feed")
    r = await asyncio.gather(*(client.get(f"/cap/feed.atom?limit={n}") for n in range(1, 51)))
    assert {x.status for x in r} == {200}
    assert renders("feed") - feeds == 1
    # A message that is not published (or not there) is not kept: accepted later, it shows.
    later = cap_alert("43062304100000_20260715053000_9", codes=("430623102000",))
    assert (await client.get(f"/cap/alerts/{later.alert_id}.xml")).status == 404
    await accept(h.ctx, later, ENGINE)
    assert (await client.get(f"/cap/alerts/{later.alert_id}.xml")).status == 200


async def test_healthz_says_up_or_down_to_anyone_and_the_detail_to_a_credential(
    api,  # type: ignore[no-untyped-def]
) -> None:
    client, h = api
    feed = FeedSettings(name="prov-cma-internal", url="https://10.20.30.40/cap/index.atom")
    h.app.settings = msgspec.structs.replace(h.app.settings, feeds=(feed,))
    h.ctx.settings = msgspec.structs.replace(h.ctx.settings, feeds=(feed,))
    await FeedState(h.ctx.redis, feed.name).failure(h.clock.now(), "HTTP 500 from 10.20.30.40: "
                                                    "upstream says <secret/>")
    connections = 0

    async def broker(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        w.close()

    server = await asyncio.start_server(broker, "127.0.0.1", 0)
    h.app.mqtt_url = f"mqtt://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        replies = await asyncio.gather(*(client.get("/healthz") for _ in range(200)))
        for r in replies:
            assert r.status == 200 and await r.json() == {"ok": True}
        assert connections <= 2, "one probe serves the burst"
        for token in (OFFICER, ADMIN):
            r = await client.get("/healthz", headers={"Authorization": f"Bearer {token}"})
            detail = await r.json()
            assert r.status == 200 and detail["redis"] is True and detail["broker"] is True
            assert detail["feeds"][feed.name]["last_error"].startswith("HTTP 500 from 10.20")
        for token, status in ((FEED, 403), ("nobody", 401)):
            r = await client.get("/healthz", headers={"Authorization": f"Bearer {token}"})
            assert r.status == status and "feeds" not in await r.text()
        server.close()
        await server.wait_closed()
        client.server.app[HEALTH].ttl_s = 0.0  # not a second later: at once
        r = await client.get("/healthz")
        assert r.status == 503 and await r.json() == {"ok": False}
    finally:
        server.close()
