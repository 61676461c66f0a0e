"""A feed server on 127.0.0.1 for the poller tests, and builders of Atom and RSS indexes.

The server honours If-None-Match / If-Modified-Since like a real one (304), can answer with
any status, delay its answer (timeouts) and counts every request per path.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import msgspec
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.engine.helpers import Harness
from warnbus.feeds import FeedPoller
from warnbus.runtime.config import FeedSettings

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "cap"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@dataclass
class Doc:
    body: bytes
    content_type: str = "application/xml"
    status: int = 200
    etag: str = ""
    last_modified: str = ""
    delay: float = 0.0
    reason: str | None = None  # the status line's reason phrase, when not the standard one


@dataclass
class FeedServer:
    docs: dict[str, Doc] = field(default_factory=dict)
    hits: Counter[str] = field(default_factory=Counter)
    conditional: list[tuple[str, str, str]] = field(default_factory=list)  # path, INM, IMS
    server: TestServer | None = None

    def put(self, path: str, body: bytes, **kw: object) -> None:
        self.docs[path] = Doc(body, **kw)  # type: ignore[arg-type]

    def url(self, path: str) -> str:
        assert self.server is not None
        return str(self.server.make_url(path))

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        self.hits[path] += 1
        inm = request.headers.get("If-None-Match", "")
        ims = request.headers.get("If-Modified-Since", "")
        self.conditional.append((path, inm, ims))
        doc = self.docs.get(path)
        if doc is None:
            return web.Response(status=404, text="not found")
        if doc.delay:
            await asyncio.sleep(doc.delay)
        headers = {}
        if doc.etag:
            headers["ETag"] = doc.etag
        if doc.last_modified:
            headers["Last-Modified"] = doc.last_modified
        if doc.status == 200 and ((doc.etag and inm == doc.etag)
                                  or (doc.last_modified and ims == doc.last_modified)):
            return web.Response(status=304, headers=headers)
        return web.Response(status=doc.status, body=doc.body, headers=headers,
                            content_type=doc.content_type, reason=doc.reason)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", self.handle)
        self.server = TestServer(app, host="127.0.0.1")
        await self.server.start_server()

    async def close(self) -> None:
        if self.server is not None:
            await self.server.close()


def atom(entries: list[dict[str, str]]) -> bytes:
    """An Atom index; each entry: id, and href (a CAP link) and/or cap (embedded), updated."""
    parts = ['<?xml version="1.0" encoding="utf-8"?>',
             '<feed xmlns="http://www.w3.org/2005/Atom">',
             "<id>urn:test:feed</id><title>test</title><updated>2026-08-02T16:00:00+08:00</updated>"]
    for e in entries:
        parts.append(f"<entry><id>{escape(e['id'])}</id><title>t</title>")
        if "updated" in e:
            parts.append(f"<updated>{e['updated']}</updated>")
        if "href" in e:
            kind = e.get("type", "application/cap+xml")
            parts.append(f"<link rel=\"alternate\" type={quoteattr(kind)} "
                         f"href={quoteattr(e['href'])}/>")
        if "cap" in e:
            body = e["cap"].split("?>", 1)[-1]  # drop the XML declaration: it is embedded
            parts.append(f'<content type="application/cap+xml">{body}</content>')
        parts.append("</entry>")
    parts.append("</feed>")
    return "\n".join(parts).encode()


def rss(items: list[tuple[str, str, datetime | None]]) -> bytes:
    """An RSS 2.0 index of (guid, link, pubDate) items."""
    out = ['<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
           "<link>http://127.0.0.1/</link><description>d</description>"]
    for guid, link, when in items:
        date = f"<pubDate>{when.strftime('%a, %d %b %Y %H:%M:%S %z')}</pubDate>" if when else ""
        out.append(f"<item><guid>{escape(guid)}</guid><link>{escape(link)}</link>{date}</item>")
    out.append("</channel></rss>")
    return "".join(out).encode()


def feed_settings(name: str, url: str, **kw: object) -> FeedSettings:
    """A feed of the county's met bureau (the sender of most fixtures), unless `senders`."""
    kw.setdefault("senders", ("430623@qx.example.cn",))
    kw.setdefault("interval_s", 1.0)
    kw.setdefault("timeout_s", 2.0)
    kw.setdefault("allow_private", True)  # the feed server is on 127.0.0.1
    return FeedSettings(name=name, url=url, **kw)  # type: ignore[arg-type]


@dataclass
class Kit:
    h: Harness
    server: FeedServer
    pollers: list[FeedPoller]

    def poller(self, feed: FeedSettings) -> FeedPoller:
        # health reads the configured feeds: configure this one
        ctx = self.h.ctx
        ctx.settings = msgspec.structs.replace(ctx.settings, feeds=(feed,))
        poller = FeedPoller(ctx, feed)
        self.pollers.append(poller)
        return poller
