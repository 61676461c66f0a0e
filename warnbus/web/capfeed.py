"""Outbound CAP: what warnbus disseminates, as a CAP 1.2 Atom feed and CAP 1.2 files.

`GET /cap/feed.atom` lists the newest messages (Alert, Update, Cancel, each its own entry),
newest accepted first, so an Update or Cancel of an old campaign is at the top;
`GET /cap/alerts/{alert_id}.xml` serves one message. Public warnings are public: no token.
Only Public-scope, non-Draft messages are ever shown; anything else is a 404, so that the
feed does not even reveal that a restricted alert exists.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from aiohttp import web
from lxml import etree

from warnbus.domain.models import Alert, MsgType, Scope, Status
from warnbus.feeds.capxml import alert_to_cap, xml_safe
from warnbus.runtime import metrics
from warnbus.runtime.context import Context

ATOM = "http://www.w3.org/2005/Atom"
_A = "{" + ATOM + "}"
CAP_MEDIA = "application/cap+xml"
DEFAULT_LIMIT = 100
MAX_LIMIT = 500
MAX_SCAN = 5000  # index entries one feed build reads at most (restricted ones are skipped)
_ALERT_ID = re.compile(r"al_[0-9a-f]{20}")
_DIGITS = re.compile(r"[0-9]{1,4}")
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:\S+")
T = TypeVar("T")


def published(alert: Alert) -> bool:
    """May this message be shown to anyone? Public scope and not a draft."""
    return alert.scope is Scope.PUBLIC and alert.status is not Status.DRAFT


def entry_id(alert: Alert) -> str:
    """The Atom id: the CAP identifier when it is already a URI (e.g. urn:oid:...), else a
    name-based UUID of (sender, identifier), stable across feeds builds and processes."""
    if _URI.fullmatch(alert.identifier):
        return alert.identifier
    return "urn:uuid:" + str(uuid.uuid5(uuid.NAMESPACE_URL,
                                        f"cap:{alert.sender},{alert.identifier}"))


async def recent_alerts(ctx: Context, limit: int) -> list[Alert]:
    """Published messages, newest first by when warnbus accepted them, at most `limit`.

    Every message (Alert, Update, Cancel) is its own entry, taken from the index of accepted
    messages (`Store.messages`, written at acceptance), so an Update or Cancel of an old
    campaign comes first when it is the newest message. Messages accepted before that index
    existed are found through the newest campaigns, at their campaign's creation time.
    """
    messages = ctx.store.messages
    found: list[tuple[float, Alert]] = []
    seen: set[str] = set()
    # The index, a page at a time, until `limit` published messages (or the end, or a bound:
    # an unauthenticated route must not read without end past restricted messages).
    offset, page = 0, max(limit, 50)
    while len(found) < limit and offset < MAX_SCAN:
        scored = await messages.newest(offset, page)
        if not scored:
            break
        offset += page
        seen.update(aid for aid, _score in scored)
        cids = await messages.campaigns_of([aid for aid, _score in scored])
        found += await _published(ctx, [(cid, aid, score) for (aid, score), cid
                                         in zip(scored, cids, strict=True) if cid])
    found += await _legacy(ctx, limit, seen)
    found.sort(key=lambda x: (x[0], x[1].sent.timestamp(), x[1].identifier), reverse=True)
    return [alert for _score, alert in found[:limit]]


async def _legacy(ctx: Context, limit: int, indexed: set[str]) -> list[tuple[float, Alert]]:
    """Messages of the `limit` newest campaigns that are not in the index (accepted by an
    older version), scored by their campaign's creation time."""
    messages = ctx.store.messages
    camps = await messages.newest_campaigns(limit)
    if not camps:
        return []
    thread_ids = await messages.alert_ids([cid for cid, _score in camps])
    items = [(cid, aid, score) for (cid, score), aids in zip(camps, thread_ids, strict=True)
             for aid in aids if aid not in indexed]
    missing = await messages.unindexed([aid for _cid, aid, _score in items])
    return await _published(ctx, [x for x, m in zip(items, missing, strict=True) if m])


async def _published(ctx: Context,
                     items: list[tuple[str, str, float]]) -> list[tuple[float, Alert]]:
    """(score, alert) of the published ones among (campaign, alert, score) items."""
    alerts = await ctx.store.messages.alerts([(cid, aid) for cid, aid, _score in items])
    return [(score, alert) for (_cid, _aid, score), alert in zip(items, alerts, strict=True)
            if alert is not None and published(alert)]


def atom_feed(alerts: list[Alert], base: str, now: float) -> bytes:
    """The Atom document: one entry per CAP message, linked to its CAP 1.2 file."""
    return atom_head(alerts, base, now) + b"".join(atom_entry(a, base) for a in alerts) + FEED_END


FEED_END = b"</feed>\n"


def atom_head(alerts: Sequence[Alert], base: str, now: float) -> bytes:
    """The feed's document up to its entries (`atom_feed` = head + entries + `FEED_END`)."""
    feed = etree.Element(_A + "feed", nsmap={None: ATOM})  # type: ignore[dict-item]  # stubs lack None
    _text(feed, "id", f"{base}/cap/feed.atom")
    _text(feed, "title", "warnbus CAP alerts")
    newest = max((a.sent for a in alerts), default=datetime.fromtimestamp(now, UTC))
    _text(feed, "updated", _rfc3339(newest))
    etree.SubElement(feed, _A + "link", rel="self", type="application/atom+xml",
                     href=f"{base}/cap/feed.atom")
    etree.SubElement(etree.SubElement(feed, _A + "author"), _A + "name").text = "warnbus"
    _text(feed, "generator", "warnbus")
    doc = etree.tostring(feed, encoding="UTF-8", xml_declaration=True, pretty_print=True)
    return doc.removesuffix(FEED_END)


def atom_entry(alert: Alert, base: str) -> bytes:
    """One message's entry, a standalone element (it declares the Atom namespace itself)."""
    info = alert.primary_info()
    entry = etree.Element(_A + "entry", nsmap={None: ATOM})  # type: ignore[dict-item]
    _text(entry, "id", entry_id(alert))
    title = (info.headline or info.event) if info else alert.identifier
    if alert.msg_type is not MsgType.ALERT:
        title = f"{alert.msg_type.value}: {title}"
    _text(entry, "title", title)
    _text(entry, "updated", _rfc3339(alert.sent))
    _text(entry, "published", _rfc3339(alert.sent))
    author = etree.SubElement(entry, _A + "author")
    _text(author, "name", info.sender_name if info and info.sender_name else alert.sender)
    for c in dict.fromkeys(c for i in alert.infos for c in i.categories):
        etree.SubElement(entry, _A + "category", term=c.value)
    etree.SubElement(entry, _A + "link", rel="alternate", type=CAP_MEDIA,
                     href=f"{base}/cap/alerts/{alert.alert_id}.xml")
    summary = (info.description if info else None) or alert.note
    if summary:
        _text(entry, "summary", summary)
    return etree.tostring(entry, encoding="UTF-8", pretty_print=True)


def _text(parent: etree._Element, name: str, text: str) -> None:
    etree.SubElement(parent, _A + name).text = xml_safe(text)


def _rfc3339(value: datetime) -> str:
    return value.replace(microsecond=0).isoformat()


@dataclass(frozen=True)
class Snapshot:
    """The newest published messages (up to one tier's limit) and their rendered entries."""

    at: float  # time.monotonic() when read
    alerts: tuple[Alert, ...]
    entries: tuple[bytes, ...]


@dataclass(frozen=True)
class Rendered:
    body: bytes
    etag: str


class CapFeed:
    """The two routes, over the engine's context; links start with `base`, the configured
    public URL (never the request's Host header, which the client chooses).

    Both are unauthenticated, so what they cost does not depend on what a client asks:
    - the feed reads and renders the newest messages once per `cache_s` for each of two tiers
      (`DEFAULT_LIMIT`, `MAX_LIMIT`), concurrent requests sharing one read; a `limit` takes
      the first entries of its tier, and nothing else in the request (other parameters, Host)
      makes another read or another cache entry;
    - a message never changes once accepted: its CAP file is rendered once, off the event
      loop (polygons of national feeds run to megabytes), and kept (up to `max_bytes` in all,
      least recently served dropped first); concurrent requests for one id share the render.
    """

    def __init__(self, ctx: Context, base: str, cache_s: float = 5.0,
                 max_bytes: int = 64 * 1024 * 1024) -> None:
        self.ctx = ctx
        self.base = base.rstrip("/")
        self.cache_s = cache_s
        self.max_bytes = max_bytes
        self._snapshots: dict[int, Snapshot] = {}
        self._files: OrderedDict[str, Rendered] = OrderedDict()
        self._files_size = 0
        self._pending: dict[object, asyncio.Future[Any]] = {}

    async def _once(self, key: object, make: Callable[[], Awaitable[T]]) -> T:
        """`make()`, run once for all who ask for `key` while it runs."""
        pending = self._pending.get(key)
        if pending is None:
            pending = self._pending[key] = asyncio.ensure_future(make())
            pending.add_done_callback(lambda _f: self._pending.pop(key, None))
        # Shielded: one client going away must not cancel the work the others wait for.
        return cast(T, await asyncio.shield(pending))

    async def feed(self, request: web.Request) -> web.Response:
        limit = _limit(request)
        if isinstance(limit, web.Response):
            return limit
        tier = DEFAULT_LIMIT if limit <= DEFAULT_LIMIT else MAX_LIMIT
        snap = self._snapshots.get(tier)
        if snap is None or time.monotonic() - snap.at >= self.cache_s:
            snap = await self._once(("feed", tier), lambda: self._snapshot(tier))
        alerts = snap.alerts[:limit]
        body = (atom_head(alerts, self.base, self.ctx.clock.now())
                + b"".join(snap.entries[:limit]) + FEED_END)
        return _cached(request, Rendered(body, _etag(body)), "application/atom+xml",
                       "public, max-age=15")

    async def _snapshot(self, tier: int) -> Snapshot:
        alerts = tuple(await recent_alerts(self.ctx, tier))
        entries = await asyncio.to_thread(lambda: tuple(atom_entry(a, self.base) for a in alerts))
        metrics.CAP_RENDERS.labels("feed").inc()
        snap = self._snapshots[tier] = Snapshot(time.monotonic(), alerts, entries)
        return snap

    async def alert(self, request: web.Request) -> web.Response:
        aid = request.match_info["alert_id"]
        rendered = self._files.get(aid)
        if rendered is not None:
            self._files.move_to_end(aid)
        elif _ALERT_ID.fullmatch(aid):
            rendered = await self._once(("file", aid), lambda: self._render(aid))
        if rendered is None:
            return _error(404, "not_found", f"no published CAP message {aid[:40]!r}")
        # A message never changes once accepted, so caches may keep it.
        return _cached(request, rendered, CAP_MEDIA, "public, max-age=3600")

    async def _render(self, aid: str) -> Rendered | None:
        cid = await self.ctx.store.campaign_of(aid)
        alert = await self.ctx.alert(cid, aid) if cid else None
        if alert is None or not published(alert):
            return None  # not kept: it may be accepted (or its campaign found) later
        body = await asyncio.to_thread(alert_to_cap, alert)
        metrics.CAP_RENDERS.labels("file").inc()
        rendered = Rendered(body, _etag(body))
        if len(body) <= self.max_bytes:
            self._files[aid] = rendered
            self._files_size += len(body)
            while self._files_size > self.max_bytes:
                _aid, old = self._files.popitem(last=False)
                self._files_size -= len(old.body)
        return rendered


def _limit(request: web.Request) -> int | web.Response:
    """The `limit` parameter: ASCII digits only (`str.isdigit` also takes "²", which `int`
    refuses), given at most once, 1..MAX_LIMIT; else a 400 response."""
    values = request.query.getall("limit", [])
    if not values:
        return DEFAULT_LIMIT
    raw = values[0]
    if len(values) > 1:
        return _error(400, "invalid", "limit: give it once")
    if not _DIGITS.fullmatch(raw) or not 1 <= int(raw) <= MAX_LIMIT:
        return _error(400, "invalid", f"limit: {raw[:20]!r} is not a number 1..{MAX_LIMIT}")
    return int(raw)


def _etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def _cached(request: web.Request, rendered: Rendered, media: str, cache: str) -> web.Response:
    body, etag = rendered.body, rendered.etag
    headers = {"ETag": etag, "Cache-Control": cache}
    wanted = {t.strip().removeprefix("W/") for t in request.headers.get("If-None-Match",
                                                                        "").split(",")}
    if etag in wanted or "*" in wanted:
        return web.Response(status=304, headers=headers)
    return web.Response(body=body, content_type=media, charset="utf-8", headers=headers)


def _error(status: int, code: str, message: str) -> web.Response:
    # The API's error shape (web.api.error; not imported: api.py imports this module).
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


CAP_FEED: web.AppKey[CapFeed] = web.AppKey("cap_feed", CapFeed)


def add_routes(web_app: web.Application, ctx: Context, base: str) -> None:
    """Mount `/cap/feed.atom` and `/cap/alerts/{alert_id}.xml`, linking under `base`."""
    cap = web_app[CAP_FEED] = CapFeed(ctx, base)
    web_app.router.add_get("/cap/feed.atom", cap.feed)
    web_app.router.add_get("/cap/alerts/{alert_id}.xml", cap.alert)
