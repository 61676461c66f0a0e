"""Outbound CAP: what warnbus disseminates, as a CAP 1.2 Atom feed and CAP 1.2 files.

`GET /cap/feed.atom` lists the newest messages (Alert, Update, Cancel, each its own entry),
newest accepted first, so an Update or Cancel of an old campaign is at the top;
`GET /cap/alerts/{alert_id}.xml` serves one message. Public warnings are public: no token. Only Public-scope, non-Draft messages are ever shown; anything
else is a 404, so that the feed does not even reveal that a restricted alert exists.
"""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec
from aiohttp import web
from lxml import etree

from warnbus import keys
from warnbus.context import Context
from warnbus.feeds.capxml import alert_to_cap, xml_safe
from warnbus.models import Alert, MsgType, Scope, Status
from warnbus.store import s

ATOM = "http://www.w3.org/2005/Atom"
_A = "{" + ATOM + "}"
CAP_MEDIA = "application/cap+xml"
DEFAULT_LIMIT = 100
MAX_LIMIT = 500
MAX_SCAN = 5000  # index entries one feed build reads at most (restricted ones are skipped)
_ALERT_ID = re.compile(r"al_[0-9a-f]{20}")
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:\S+")
_decode = msgspec.json.Decoder(Alert)


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
    messages (`keys.MESSAGES`, written by `intake.accept`), so an Update or Cancel of an old
    campaign comes first when it is the newest message. Messages accepted before that index
    existed are found through the newest campaigns, at their campaign's creation time.
    """
    redis: Any = ctx.redis
    found: list[tuple[float, Alert]] = []
    seen: set[str] = set()
    # The index, a page at a time, until `limit` published messages (or the end, or a bound:
    # an unauthenticated route must not read without end past restricted messages).
    offset, page = 0, max(limit, 50)
    while len(found) < limit and offset < MAX_SCAN:
        rows = await redis.zrevrange(keys.MESSAGES, offset, offset + page - 1, withscores=True)
        if not rows:
            break
        offset += page
        scored = [(s(aid), float(score)) for aid, score in rows]
        seen.update(aid for aid, _score in scored)
        pipe = redis.pipeline(transaction=False)
        for aid, _score in scored:
            pipe.get(keys.alert_index(aid))
        cids = [s(c) for c in await pipe.execute()]
        found += await _published(ctx, [(cid, aid, score) for (aid, score), cid
                                         in zip(scored, cids, strict=True) if cid])
    found += await _legacy(ctx, limit, seen)
    found.sort(key=lambda x: (x[0], x[1].sent.timestamp(), x[1].identifier), reverse=True)
    return [alert for _score, alert in found[:limit]]


async def _legacy(ctx: Context, limit: int, indexed: set[str]) -> list[tuple[float, Alert]]:
    """Messages of the `limit` newest campaigns that are not in the index (accepted by an
    older version), scored by their campaign's creation time."""
    redis: Any = ctx.redis
    camps = [(s(c), float(score)) for c, score in
             await redis.zrevrange(keys.CAMPAIGNS, 0, limit - 1, withscores=True)]
    if not camps:
        return []
    pipe = redis.pipeline(transaction=False)
    for cid, _score in camps:
        pipe.hkeys(keys.campaign(cid).alerts)
    items = [(cid, s(aid), score) for (cid, score), aids in zip(camps, await pipe.execute(),
                                                                strict=True) for aid in aids]
    items = [x for x in items if x[1] not in indexed]
    if not items:
        return []
    known = await redis.zmscore(keys.MESSAGES, [aid for _cid, aid, _score in items])
    return await _published(ctx, [x for x, k in zip(items, known, strict=True) if k is None])


async def _published(ctx: Context, items: list[tuple[str, str, float]]) -> list[tuple[float, Alert]]:
    """(score, alert) of the published ones among (campaign, alert, score) items."""
    if not items:
        return []
    pipe: Any = ctx.redis.pipeline(transaction=False)
    for cid, aid, _score in items:
        pipe.hget(keys.campaign(cid).alerts, aid)
    out: list[tuple[float, Alert]] = []
    for (_cid, _aid, score), blob in zip(items, await pipe.execute(), strict=True):
        if blob:
            alert = _decode.decode(blob)
            if published(alert):
                out.append((score, alert))
    return out


def atom_feed(alerts: list[Alert], base: str, now: float) -> bytes:
    """The Atom document: one entry per CAP message, linked to its CAP 1.2 file."""
    feed = etree.Element(_A + "feed", nsmap={None: ATOM})  # type: ignore[dict-item]  # stubs lack None
    _text(feed, "id", f"{base}/cap/feed.atom")
    _text(feed, "title", "warnbus CAP alerts")
    newest = max((a.sent for a in alerts), default=datetime.fromtimestamp(now, UTC))
    _text(feed, "updated", _rfc3339(newest))
    etree.SubElement(feed, _A + "link", rel="self", type="application/atom+xml",
                     href=f"{base}/cap/feed.atom")
    etree.SubElement(etree.SubElement(feed, _A + "author"), _A + "name").text = "warnbus"
    _text(feed, "generator", "warnbus")
    for alert in alerts:
        info = alert.primary_info()
        entry = etree.SubElement(feed, _A + "entry")
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
    return etree.tostring(feed, encoding="UTF-8", xml_declaration=True, pretty_print=True)


def _text(parent: etree._Element, name: str, text: str) -> None:
    etree.SubElement(parent, _A + name).text = xml_safe(text)


def _rfc3339(value: datetime) -> str:
    return value.replace(microsecond=0).isoformat()


class CapFeed:
    """The two routes, over the engine's context."""

    def __init__(self, ctx: Context, cache_s: float = 5.0) -> None:
        self.ctx = ctx
        # Rendering reads every alert of up to MAX_LIMIT campaigns (polygons of ~800 KB each
        # at worst): an unauthenticated route must not do that per request.
        self.cache_s = cache_s
        self._cache: dict[tuple[int, str], tuple[float, bytes]] = {}

    def _base(self, request: web.Request) -> str:
        public = self.ctx.settings.server.public_url
        return (public or f"{request.scheme}://{request.host}").rstrip("/")

    async def feed(self, request: web.Request) -> web.Response:
        raw = request.query.get("limit", str(DEFAULT_LIMIT))
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
            return _error(400, "invalid", f"limit: {raw[:20]!r} is not a number 1..{MAX_LIMIT}")
        key = (int(raw), self._base(request))
        hit = self._cache.get(key)
        if hit is not None and time.monotonic() - hit[0] < self.cache_s:
            body = hit[1]
        else:
            alerts = await recent_alerts(self.ctx, key[0])
            body = atom_feed(alerts, key[1], self.ctx.clock.now())
            if len(self._cache) >= 64:
                self._cache.clear()
            self._cache[key] = (time.monotonic(), body)
        return _cached(request, body, "application/atom+xml", "public, max-age=15")

    async def alert(self, request: web.Request) -> web.Response:
        aid = request.match_info["alert_id"]
        cid = await self.ctx.store.campaign_of(aid) if _ALERT_ID.fullmatch(aid) else None
        alert = await self.ctx.alert(cid, aid) if cid else None
        if alert is None or not published(alert):
            return _error(404, "not_found", f"no published CAP message {aid[:40]!r}")
        # A message never changes once accepted, so caches may keep it.
        return _cached(request, alert_to_cap(alert), CAP_MEDIA, "public, max-age=3600")


def _cached(request: web.Request, body: bytes, media: str, cache: str) -> web.Response:
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers = {"ETag": etag, "Cache-Control": cache}
    wanted = {t.strip().removeprefix("W/") for t in request.headers.get("If-None-Match",
                                                                        "").split(",")}
    if etag in wanted or "*" in wanted:
        return web.Response(status=304, headers=headers)
    return web.Response(body=body, content_type=media, charset="utf-8", headers=headers)


def _error(status: int, code: str, message: str) -> web.Response:
    # The API's error shape (web.api.error; not imported: api.py imports this module).
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


def add_routes(web_app: web.Application, ctx: Context) -> None:
    """Mount `/cap/feed.atom` and `/cap/alerts/{alert_id}.xml`."""
    cap = CapFeed(ctx)
    web_app.router.add_get("/cap/feed.atom", cap.feed)
    web_app.router.add_get("/cap/alerts/{alert_id}.xml", cap.alert)
