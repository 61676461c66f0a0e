"""Polling one feed against a local feed server, into a real engine on a real redis-server."""

from __future__ import annotations

import random
from datetime import timedelta
from pathlib import Path

import pytest
from feedkit import FeedServer, Kit, atom, feed_settings, fixture, rss
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from tests.engine.helpers import T0, cap_alert
from warnbus.feeds import (
    alert_to_cap,
    backoff_delay,
    feed_health,
    refresh_feed_metrics,
)
from warnbus.ingest import parse_cap

FIXTURES_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "cap"
RED, UPDATE, CANCEL = "rainstorm-red.xml", "rainstorm-red-update.xml", "rainstorm-red-cancel.xml"


def publish_red_thread(server: FeedServer, names: tuple[str, ...] = (RED, UPDATE, CANCEL)) -> None:
    for n in names:
        server.put(f"/cap/{n}", fixture(n), content_type="application/cap+xml")
    entries = [{"id": f"urn:test:{n}", "href": server.url(f"/cap/{n}")} for n in names]
    server.put("/index.atom", atom(entries[::-1]), etag=f'"v{len(names)}"',
               content_type="application/atom+xml")


async def test_atom_entries_are_accepted_once_and_304_is_used(kit: Kit) -> None:
    publish_red_thread(kit.server, (RED, UPDATE))
    p = kit.poller(feed_settings("met-atom", kit.server.url("/index.atom")))
    res = await p.poll_once()
    assert res.outcome == "ok", res
    assert res.counts["accepted"] == 2 and res.counts["seen"] == 2
    ids = [parse_cap(fixture(n)).alert_id for n in (RED, UPDATE)]
    cid = await kit.h.ctx.store.campaign_of(ids[0])
    assert cid and await kit.h.ctx.store.campaign_of(ids[1]) == cid  # threaded by accept
    assert await kit.h.ctx.store.alert(cid, ids[1]) == parse_cap(fixture(UPDATE))

    res = await p.poll_once()
    assert res.outcome == "not_modified"
    assert kit.server.conditional[-1] == ("/index.atom", '"v2"', "")

    # The Cancel is published: only it is fetched; it goes through accept like any message.
    publish_red_thread(kit.server)
    res = await p.poll_once()
    assert res.outcome == "ok" and res.counts["accepted"] == 1 and res.counts["seen"] == 1
    assert [kit.server.hits[f"/cap/{n}"] for n in (RED, UPDATE, CANCEL)] == [1, 1, 1]
    await kit.h.drain()
    meta = await kit.h.ctx.store.meta(cid)
    assert meta and meta.state == "cancelled"

    health = (await feed_health(kit.h.ctx))["met-atom"]
    assert health["status"] == "ok" and health["consecutive_failures"] == 0
    assert health["entries"]["accepted"] == 3 and health["entries"]["seen"] == 3
    assert health["last_success"] == kit.h.clock.now()
    sample = REGISTRY.get_sample_value
    assert sample("warnbus_feed_polls_total", {"feed": "met-atom", "outcome": "ok"}) == 2
    assert sample("warnbus_feed_polls_total", {"feed": "met-atom", "outcome": "not_modified"}) == 1
    assert sample("warnbus_feed_entries_total", {"feed": "met-atom", "outcome": "accepted"}) == 3


async def test_validators_and_seen_entries_are_shared_through_redis(kit: Kit) -> None:
    """A process taking a feed over sends the stored Last-Modified and skips seen entries."""
    kit.server.put("/cap/red.xml", fixture(RED))
    lm = "Sun, 02 Aug 2026 08:00:00 GMT"
    kit.server.put("/rss.xml", rss([("g-red", "/cap/red.xml", None)]), last_modified=lm)
    feed = feed_settings("met-rss", kit.server.url("/rss.xml"), kind="rss")
    assert (await kit.poller(feed).poll_once()).counts["accepted"] == 1
    other = kit.poller(feed)  # another poller: a new process as far as memory goes
    assert (await other.poll_once()).outcome == "not_modified"
    assert kit.server.conditional[-1] == ("/rss.xml", "", lm)
    kit.server.put("/rss.xml", rss([("g-red", "/cap/red.xml", None)]))  # no validators now
    res = await other.poll_once()
    assert res.outcome == "ok" and res.counts["seen"] == 0
    assert kit.server.hits["/cap/red.xml"] == 1


async def test_single_cap_url_and_embedded_cap(kit: Kit) -> None:
    kit.server.put("/latest.xml", fixture("flood-circle.xml"), etag='"f1"')
    p = kit.poller(feed_settings("sl-cap", kit.server.url("/latest.xml"), kind="cap",
                                 senders=("430623@sl.example.cn",)))
    assert (await p.poll_once()).counts["accepted"] == 1
    assert (await p.poll_once()).outcome == "not_modified"
    kit.server.put("/latest.xml", fixture("flood-circle.xml"))  # same body, no ETag: seen
    res = await p.poll_once()
    assert res.outcome == "ok" and res.counts["seen"] == 0

    body = atom([{"id": "urn:e:geo", "cap": fixture("geohazard-orange.xml").decode()}])
    kit.server.put("/embedded.atom", body)
    res = await kit.poller(feed_settings("zr-atom", kit.server.url("/embedded.atom"),
                                         senders=("430623@zrzy.example.cn",))).poll_once()
    assert res.counts["accepted"] == 1
    aid = parse_cap(fixture("geohazard-orange.xml")).alert_id
    assert await kit.h.ctx.store.campaign_of(aid)


@pytest.mark.parametrize(("doc", "words"), [
    ({"body": b"oops", "status": 500}, "HTTP 500"),
    ({"body": b"<html><title>Service Unavailable</title></html>"}, "HTML page"),
    ({"body": b"\x89PNG\r\n garbage"}, "not readable XML (malformed)"),
    ({"body": b"<feed/>", "delay": 1.0}, "within 0.3 s"),
    ({"body": b"x" * 5000}, "over the limit"),
])
async def test_index_failures_count_and_back_off(kit: Kit, doc: dict[str, object],
                                                 words: str) -> None:
    kit.server.put("/bad.atom", **doc)  # type: ignore[arg-type]
    feed = feed_settings("bad", kit.server.url("/bad.atom"), timeout_s=0.3, interval_s=10.0,
                         max_backoff_s=60.0, max_bytes=4096)
    p = kit.poller(feed)
    delays = []
    for n in (1, 2, 3, 4):
        res = await p.poll_once()
        assert res.outcome == "error" and res.error and words in res.error, res
        assert res.retry_in is not None
        delays.append(res.retry_in)
        health = (await feed_health(kit.h.ctx))["bad"]
        assert health["status"] == "failing" and health["consecutive_failures"] == n
        assert words in health["last_error"]
    assert all(10.0 <= d <= 60.0 for d in delays) and delays[0] <= 20.0
    await refresh_feed_metrics(kit.h.ctx)
    assert REGISTRY.get_sample_value("warnbus_feed_consecutive_failures", {"feed": "bad"}) == 4

    publish_red_thread(kit.server, (RED,))
    kit.server.put("/bad.atom", kit.server.docs["/index.atom"].body)
    assert (await p.poll_once()).outcome == "ok"
    assert (await feed_health(kit.h.ctx))["bad"]["status"] == "ok"


def test_backoff_grows_exponentially_with_jitter_and_is_capped() -> None:
    lows = [backoff_delay(n, 30.0, 900.0, rand=lambda: 0.0) for n in range(1, 10)]
    highs = [backoff_delay(n, 30.0, 900.0, rand=lambda: 1.0) for n in range(1, 10)]
    assert highs[:5] == [60.0, 120.0, 240.0, 480.0, 900.0] and set(highs[5:]) == {900.0}
    assert lows[:4] == [30.0, 60.0, 120.0, 240.0] and set(lows[5:]) == {450.0}
    rng = random.Random(7)
    spread = {backoff_delay(3, 30.0, 900.0, rand=rng.random) for _ in range(50)}
    assert len(spread) > 40 and all(120.0 <= d <= 240.0 for d in spread)
    assert backoff_delay(10**6, 30.0, 900.0) <= 900.0  # no overflow on absurd counts


async def test_entry_failures_are_retried_and_bad_entries_are_not(kit: Kit) -> None:
    kit.server.put("/cap/red.xml", b"busy", status=503)
    kit.server.put("/cap/garbage.xml", b"<alert>not cap</alert>")
    kit.server.put("/mixed.atom", atom([
        {"id": "g", "href": kit.server.url("/cap/garbage.xml")},
        {"id": "r", "href": kit.server.url("/cap/red.xml")},
    ]), etag='"m1"')
    p = kit.poller(feed_settings("mixed", kit.server.url("/mixed.atom")))
    with capture_logs() as logs:
        res = await p.poll_once()
    assert res.outcome == "ok"
    assert res.counts["rejected"] == 1 and res.counts["errors"] == 1
    assert {e["event"] for e in logs} >= {"feed entry rejected", "feed entry not fetched"}
    # The failed entry keeps the validators out, so the next poll reads the feed again.
    kit.server.put("/cap/red.xml", fixture(RED))
    res = await p.poll_once()
    assert [c for c in kit.server.conditional if c[0] == "/mixed.atom"][-1] == (
        "/mixed.atom", "", "")
    assert res.counts == {**res.counts, "seen": 1, "accepted": 1, "rejected": 0}
    assert kit.server.hits["/cap/garbage.xml"] == 1
    assert (await p.poll_once()).outcome == "not_modified"


async def test_expired_skipped_out_of_scope_rejected(kit: Kit) -> None:
    old = cap_alert("43062304100000_20260713000000_1", sent=T0 - timedelta(days=2), hours=1)
    kit.server.put("/cap/old.xml", alert_to_cap(old))
    kit.server.put("/cap/red.xml", fixture(RED))
    kit.server.put("/f.atom", atom([{"id": "old", "href": kit.server.url("/cap/old.xml")},
                                    {"id": "red", "href": kit.server.url("/cap/red.xml")}]))
    geo_only = feed_settings("geo-only", kit.server.url("/f.atom"), categories=("Geo",))
    with capture_logs() as logs:
        res = await kit.poller(geo_only).poll_once()
    assert res.counts["skipped"] == 1 and res.counts["rejected"] == 1
    rejected = next(e for e in logs if e["event"] == "feed alert rejected")
    assert rejected["code"] == "forbidden" and "category Met" in rejected["error"]
    assert not await kit.h.ctx.store.campaign_of(old.alert_id)
    assert not await kit.h.ctx.store.campaign_of(parse_cap(fixture(RED)).alert_id)

    # A feed of this county (a region scope) takes the same red alert.
    county = feed_settings("county", kit.server.url("/f.atom"), regions=("430623",))
    res = await kit.poller(county).poll_once()
    assert res.counts["accepted"] == 1 and res.counts["skipped"] == 1


async def test_a_feed_requiring_signatures_takes_only_signed_alerts(kit: Kit) -> None:
    signed = fixture("signed/rainstorm-red.signed.xml")
    tampered = fixture("signed/rainstorm-red-update.tampered.xml")
    ca = str(FIXTURES_DIR / "signed" / "ca.pem")
    for name, body, want in (("signed", signed, "accepted"),
                             ("tampered", tampered, "rejected"),
                             ("unsigned", fixture("flood-circle.xml"), "rejected")):
        kit.server.put(f"/{name}.xml", body)
        feed = feed_settings(f"sig-{name}", kit.server.url(f"/{name}.xml"), kind="cap",
                             signature="require", trust=(ca,))
        res = await kit.poller(feed).poll_once()
        assert res.counts[want] == 1, (name, res.counts)
