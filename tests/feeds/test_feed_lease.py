"""One poller per feed across processes: two engines on one Redis share a feed by lease."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest
import pytest_asyncio
from feedkit import FeedServer, atom, feed_settings, fixture

from tests.engine.helpers import T0, Harness, make_harness
from tests.waits import until
from warnbus.errors import ConfigError
from warnbus.feeds import FeedManager, feed_health
from warnbus.ingest import parse_cap
from warnbus.runtime.app import build_app
from warnbus.runtime.clock import ManualClock
from warnbus.runtime.config import FeedSettings, Settings, load_settings
from warnbus.runtime.context import Context
from warnbus.state import keys

LEASE_S = 1.0


@pytest_asyncio.fixture
async def two(redis_url: str) -> AsyncIterator[tuple[Harness, Harness, FeedServer]]:
    h1, h2 = await make_harness(redis_url), await make_harness(redis_url)
    server = FeedServer()
    await server.start()
    yield h1, h2, server
    await server.close()
    for h in (h1, h2):
        await h.app.close()


def polls(m: FeedManager) -> int:
    return sum(p.polls for p in m.pollers.values())


def feed(server: FeedServer) -> FeedSettings:
    server.put("/cap/red.xml", fixture("rainstorm-red.xml"))
    server.put("/index.atom", atom([{"id": "red", "href": server.url("/cap/red.xml")}]),
               etag='"1"')
    return feed_settings("shared", server.url("/index.atom"), interval_s=1.0)


async def test_one_poller_at_a_time_and_takeover(two: tuple[Harness, Harness, FeedServer]) -> None:
    h1, h2, server = two
    f = feed(server)
    for h in (h1, h2):  # as configured: both engines read the same [[feeds]]
        h.ctx.settings = msgspec.structs.replace(h.ctx.settings, feeds=(f,))
    m1 = FeedManager(h1.ctx, "p1", lease_s=LEASE_S)
    m2 = FeedManager(h2.ctx, "p2", lease_s=LEASE_S)
    await m1.start()
    await until(lambda: polls(m1) >= 1, "the first process to poll")
    await m2.start()
    # Both run for more than an interval (the holder polls twice more): only it polls.
    n = polls(m1)
    await until(lambda: polls(m1) >= n + 2, "two more polls of the lease holder")
    assert polls(m2) == 0
    assert server.hits["/cap/red.xml"] == 1  # fetched once, then 304s
    aid = parse_cap(fixture("rainstorm-red.xml")).alert_id
    assert await h2.ctx.store.campaign_of(aid)  # visible through either engine's store
    health = (await feed_health(h2.ctx))["shared"]
    assert health["status"] == "ok" and health["poller"] == m1.token

    # A clean stop releases the lease: the other process takes over at its next renewal.
    await m1.stop()
    t0 = time.monotonic()
    await until(lambda: polls(m2) >= 1, "the other process to take over")
    assert time.monotonic() - t0 < LEASE_S
    assert server.conditional[-1] == ("/index.atom", '"1"', "")  # validators from Redis
    assert server.hits["/cap/red.xml"] == 1

    # A crash (no release): the lease runs out, then the first process takes over again.
    m1 = FeedManager(h1.ctx, "p1", feeds=[f], lease_s=LEASE_S)
    await m1.start()
    # Its bid for the lease is refused: its poll job stays paused, it has not polled.
    await m1.renew_leases()
    assert not m1.pollers["shared"].holding and polls(m1) == 0
    assert m1._scheduler is not None
    assert m1._scheduler.get_job("feed:shared").next_run_time is None
    await m2.stop(release=False)
    t0 = time.monotonic()
    await until(lambda: polls(m1) >= 1, "the first process to take the expired lease")
    assert LEASE_S / 2 < time.monotonic() - t0 < LEASE_S * 2
    await m1.stop()


async def test_a_lost_lease_stops_polling_at_once(two: tuple[Harness, Harness, FeedServer]) -> None:
    h1, _h2, server = two
    f = feed(server)
    m1 = FeedManager(h1.ctx, "p1", feeds=[f], lease_s=LEASE_S)
    await m1.start()
    await until(lambda: polls(m1) >= 1, "the first poll")
    # Say the lease expired during a long pause and another process took it.
    await h1.ctx.redis.set(keys.feed("shared").lease, "someone-else", px=60_000)
    await m1.renew_leases()
    p = m1.pollers["shared"]
    assert not p.holding
    assert m1._scheduler is not None
    assert m1._scheduler.get_job("feed:shared").next_run_time is None  # paused
    n = polls(m1)
    await asyncio.sleep(1.2)
    assert polls(m1) == n
    await m1.stop()
    assert (await h1.ctx.redis.get(keys.feed("shared").lease)) == b"someone-else"


async def test_engine_polls_feeds_in_the_timer_role_only(redis_url: str) -> None:
    server = FeedServer()
    await server.start()
    f = feed(server)
    settings = Settings(redis_url=redis_url, mqtt_url="mqtt://127.0.0.1:9", feeds=(f,))
    apps = [await build_app(settings, clock=ManualClock(T0.timestamp()), channels={},
                            roles=roles, base_url="http://test") for roles in (["api"], ["timer"])]
    try:
        for app in apps:
            await app.engine.start()
        await until(lambda: server.hits["/index.atom"] >= 1, "the timer role to poll")
        assert polls(apps[1].engine.feeds) >= 1 and apps[0].engine.feeds.pollers == {}
        await apps[1].engine.stop()
        assert not await apps[1].ctx.redis.exists(keys.feed("shared").lease)  # released
    finally:
        for app in apps:
            await app.close()
        await server.close()


def test_feeds_configuration_is_strict(tmp_path: Path) -> None:
    path = tmp_path / "warnbus.toml"
    path.write_text(
        '[[feeds]]\nname = "qx"\nurl = "https://example.invalid/cap.atom"\nkind = "rss"\n'
        'interval_s = 120\nregions = ["430623"]\ncategories = ["Met"]\n', encoding="utf-8")
    (qx,) = load_settings(path, env={}).feeds
    assert (qx.kind, qx.interval_s, qx.regions, qx.enabled) == ("rss", 120.0, ("430623",), True)
    ok = {"name": '"qx"', "url": '"https://x.invalid/"'}
    for key, value in (("kind", '"json"'), ("interval_s", "0"), ("url", '"file:///etc/x"'),
                       ("name", '"a b"'), ("colour", "1")):
        fields = {**ok, key: value}
        path.write_text("[[feeds]]\n" + "".join(f"{k} = {v}\n" for k, v in fields.items()),
                        encoding="utf-8")
        with pytest.raises(ConfigError, match=key):
            load_settings(path, env={})
    dup = Settings(feeds=(feed_settings("a", "http://127.0.0.1:9/"),) * 2)
    with pytest.raises(ConfigError, match="duplicate"):
        FeedManager(Context(None, None, None, None, dup, None, None, None), "p")  # type: ignore[arg-type]
