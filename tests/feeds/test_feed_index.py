"""Reading Atom and RSS index feeds (pure: no network, no Redis)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from feedkit import atom, fixture, rss

from warnbus.errors import IngestError
from warnbus.feeds.errors import FeedError
from warnbus.feeds.index import parse_index

BASE = "http://127.0.0.1:8000/feeds/index.atom"


def test_atom_links_are_resolved_and_read_oldest_first() -> None:
    body = atom([
        {"id": "urn:e:3", "href": "/cap/3.xml", "updated": "2026-08-02T15:30:00+08:00"},
        {"id": "urn:e:2", "href": "2.xml", "updated": "2026-08-02T07:00:00+08:00"},
        {"id": "urn:e:1", "href": "http://127.0.0.1:9/1.xml",
         "updated": "2026-08-02T04:00:00+08:00"},
    ])
    entries = parse_index(body, BASE)
    assert [e.id for e in entries] == ["urn:e:1", "urn:e:2", "urn:e:3"]
    assert [e.link for e in entries] == [
        "http://127.0.0.1:9/1.xml", "http://127.0.0.1:8000/feeds/2.xml",
        "http://127.0.0.1:8000/cap/3.xml"]
    assert len({e.key for e in entries}) == 3


def test_timestamps_order_entries_whatever_the_document_order() -> None:
    body = atom([
        {"id": "a", "href": "/a.xml", "updated": "2026-08-02T04:00:00+08:00"},
        {"id": "b", "href": "/b.xml", "updated": "2026-08-02T05:00:00+08:00"},
    ])
    assert [e.id for e in parse_index(body, BASE)] == ["a", "b"]


def test_atom_content_with_embedded_cap_needs_no_fetch() -> None:
    cap = fixture("rainstorm-red.xml").decode()
    entries = parse_index(atom([{"id": "urn:e:1", "cap": cap}]), BASE)
    assert entries[0].link is None and entries[0].cap is not None
    assert b"43062304100000_20260802040000_1" in entries[0].cap


def _entry(links: str) -> bytes:
    return (f'<feed xmlns="http://www.w3.org/2005/Atom"><entry><id>e</id>{links}</entry>'
            "</feed>").encode()


@pytest.mark.parametrize(("links", "expected"), [
    # The CAP-typed link wins over the alternate page, whatever the order.
    ('<link href="/page.html" type="text/html"/>'
     '<link rel="related" type="application/cap+xml" href="/e.cap"/>', "/e.cap"),
    ('<link href="/e.xml"/>', "/e.xml"),  # an untyped alternate link: try it
    ('<link href="/page.html" type="text/html"/>', None),  # only a web page: nothing to fetch
    ('<link type="application/cap+xml" href="file:///etc/passwd"/>', None),  # http(s) only
    ('<link type="application/cap+xml" href="ftp://127.0.0.1/e.cap"/>'
     '<link type="application/xml" href="/e2.xml"/>', "/e2.xml"),
])
def test_which_link_is_the_cap(links: str, expected: str | None) -> None:
    entries = parse_index(_entry(links), BASE)
    got = [e.link for e in entries]
    assert got == ([] if expected is None else ["http://127.0.0.1:8000" + expected])


def test_rss_items_with_guid_and_pubdate() -> None:
    t1 = datetime(2026, 8, 2, 4, tzinfo=UTC)
    t2 = datetime(2026, 8, 2, 5, tzinfo=UTC)
    body = rss([("g2", "/2.xml", t2), ("g1", "/1.xml", t1)])
    entries = parse_index(body, "http://127.0.0.1:8000/rss.xml")
    assert [(e.id, e.link) for e in entries] == [
        ("g1", "http://127.0.0.1:8000/1.xml"), ("g2", "http://127.0.0.1:8000/2.xml")]
    assert entries[0].when == t1


@pytest.mark.parametrize(("body", "error", "words"), [
    (b"<html><head><title>502 Bad Gateway</title></head></html>", IngestError, "HTML page"),
    (b"\x00\x01garbage", IngestError, "not well-formed"),
    (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><feed/>', IngestError, "DTD"),
    (fixture("rainstorm-red.xml"), FeedError, 'kind = "cap"'),
    (b"<rss><nochannel/></rss>", FeedError, "expected an Atom"),
])
def test_what_is_not_a_feed_is_refused(body: bytes, error: type[Exception], words: str) -> None:
    with pytest.raises(error, match=words):
        parse_index(body, BASE)
