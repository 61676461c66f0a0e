"""The HTTP API of DESIGN section 9, on aiohttp: alerts, acks, ack links, health, metrics.

Errors are `{"error": {"code": ..., "message": ...}}` with the documented status codes.
"""

from __future__ import annotations

import contextlib
import hmac
import html
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgspec
import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.exceptions import RedisError

from warnbus.domain.models import AckVia
from warnbus.errors import (
    AuthError,
    CampaignStateError,
    IngestError,
    JournalError,
    NotFoundError,
    RateLimitedError,
    WarnbusError,
)
from warnbus.flow.acks import (
    DUPLICATE,
    JOURNALED,
    LATE,
    RECORDED,
    AckResult,
    record_ack,
)
from warnbus.flow.credentials import (
    Credential,
    check_person,
    check_thread_read,
    console_sender,
    of_token,
    serves_within,
)
from warnbus.flow.feedback_view import feedback_csv, feedback_rows
from warnbus.flow.filed import with_words, words_csv
from warnbus.flow.intake import accept, thread_reach
from warnbus.ingest import parse_off_loop
from warnbus.plugin import REQUEST_GATE, WebhookChannel, admit_request
from warnbus.runtime.app import App, token_hash
from warnbus.runtime.config import TokenSettings
from warnbus.runtime.tasks import within
from warnbus.state.ratelimit import SharedLimit
from warnbus.web import capfeed, openapi, views
from warnbus.web.ackpage import ack_page, late_text, over_for
from warnbus.web.console import setup_console
from warnbus.web.feedback_form import feedback_form

log = structlog.get_logger("warnbus.web")

APP: web.AppKey[App] = web.AppKey("warnbus", App)
HEALTH: web.AppKey[views.HealthProbe] = web.AppKey("health", views.HealthProbe)
CAP_TYPES = ("application/cap+xml", "application/xml", "text/xml", "application/json")


def error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status,
                             dumps=_dumps)


def _dumps(obj: Any) -> str:
    return msgspec.json.encode(obj).decode()


def ok(obj: Any, status: int = 200) -> web.Response:
    return web.json_response(obj, status=status, dumps=_dumps)


@web.middleware
async def errors_mw(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except IngestError as e:
        return error(e.http_status, e.code, e.message)
    except RateLimitedError as e:
        return rate_limited(e.retry_after)
    except AuthError as e:
        return error(403 if e.forbidden else 401, e.code, e.message)
    except NotFoundError as e:
        return error(404, e.code, e.message)
    except CampaignStateError as e:
        # Stored state that does not read is the engine's fault, never the caller's.
        log.error("campaign state unreadable", error=e.message)
        return error(500, e.code, e.message)
    except web.HTTPRequestEntityTooLarge:
        return error(413, "too_large", "the request body is larger than the configured limit")
    except JournalError as e:
        # Neither Redis nor the local journal took a confirmation: nothing was accepted.
        resp = error(503, "unavailable", "the engine could not store this now (Redis and "
                     f"its journal are unavailable: {e.message}); nothing was accepted, retry "
                     "shortly")
        resp.headers["Retry-After"] = "5"
        return resp
    except WarnbusError as e:
        log.warning("request failed", error=e.message)
        return error(400, e.code, e.message)
    except (RedisError, ConnectionError) as e:
        # Nothing was accepted: say so, so feeds and officers retry instead of guessing.
        log.error("redis unavailable", error=str(e))
        resp = error(503, "unavailable", "the engine's store (Redis) is unavailable; nothing "
                     "was accepted, retry shortly")
        resp.headers["Retry-After"] = "5"
        return resp


@dataclass(frozen=True)
class PublicLimit:
    """Token buckets (requests/s, burst) guarding one class of public, unauthenticated routes.

    Requests there carry a signature (an ack link's HMAC, a provider's): their handler checks
    it first and then asks the request's gate (`models.RequestGate`). Verified requests spend
    `total`, shared by all clients, so a flood from many addresses still cannot take more
    than that share of Redis from the engine; requests that fail the check spend `failures`,
    a budget of their own, so that a flood of forged ones never makes a genuine one wait.
    `per_client` (per remote address, before any handler work) is optional.
    """

    prefix: str
    per_client: tuple[float, float] | None
    total: tuple[float, float]
    failures: tuple[float, float] = (200.0, 400.0)


# Global buckets only by default: behind a reverse proxy every client has the proxy's address,
# and a county's officers tapping their links at once (or the demo's, all on 127.0.0.1) must
# not be throttled as one client. Set `per_client` where the remote address is the client's.
# `/ack/` allows 5,000/s: a province's 78k officers confirming a red warning within a minute
# or two must never meet a 429, while a flood stays bounded at what one API process can take
# anyway (docs/benchmarks.md, `acks`), so it cannot starve the engine's Redis.
PUBLIC_LIMITS: tuple[PublicLimit, ...] = (
    PublicLimit("/ack/", per_client=None, total=(5000.0, 10000.0)),
    # The pages of people sent door to door (a few per unreached grid): a small share.
    PublicLimit("/door/", per_client=None, total=(200.0, 400.0)),
    # Provider callbacks of a province-wide wave come by the hundred thousand (2-3 per SMS,
    # one per call), and a refused one is not retried by the provider: the same headroom.
    PublicLimit("/hooks/", per_client=None, total=(5000.0, 10000.0)),
)
LIMITS: web.AppKey[tuple[PublicLimit, ...]] = web.AppKey("public_limits", tuple)
SHARED_LIMIT: web.AppKey[SharedLimit] = web.AppKey("shared_limit", SharedLimit)
LIMIT_WAIT_S = 0.5
#: Largest body under `/hooks/`: a provider's callback is a few KB (WeCom's under 1 KB).
HOOK_MAX_BYTES = 64 * 1024


class _RefusalLog:
    """One warning per bucket and second for refused requests, however many a flood sends."""

    def __init__(self) -> None:
        self._last: dict[str, float] = {}
        self._count: dict[str, int] = {}

    def refused(self, bucket: str, prefix: str) -> None:
        self._count[bucket] = self._count.get(bucket, 0) + 1
        now = time.monotonic()
        if now - self._last.get(bucket, -1.0) >= 1.0:
            self._last[bucket] = now
            log.warning("public endpoint rate limited", path_prefix=prefix, bucket=bucket,
                        refused=self._count.pop(bucket))


_REFUSALS = _RefusalLog()


async def _spend(request: web.Request, bucket: str, rate_burst: tuple[float, float],
                 prefix: str) -> None:
    """Take one token of `bucket`; RateLimitedError when it is empty."""
    limit = request.app[SHARED_LIMIT]
    if limit.spend_held(bucket):
        return  # a token this process holds: no task, no timer (most requests of a burst)
    try:
        # Bounded: a limiter that cannot answer quickly must not hold requests (or a
        # graceful shutdown) hostage; fail open, the handler meets Redis on its own.
        ok, wait_ms = await within(limit.take(bucket, *rate_burst), LIMIT_WAIT_S)
    except (RedisError, TimeoutError):
        return  # Redis is down: the handler fails on its own; do not hide that as a 429
    if not ok:
        _REFUSALS.refused(bucket, prefix)
        raise RateLimitedError("too many requests; try again later",
                               retry_after=max(1, -(-int(wait_ms) // 1000)))


class _Gate:
    """The `models.RequestGate` of one request under a `PublicLimit`."""

    __slots__ = ("asked", "limit", "request")

    def __init__(self, request: web.Request, limit: PublicLimit) -> None:
        self.request = request
        self.limit = limit
        self.asked = False

    async def admit(self, verified: bool) -> None:
        if self.asked:
            return
        self.asked = True
        name = "http:" + self.limit.prefix.strip("/")
        if verified:
            await _spend(self.request, name, self.limit.total, self.limit.prefix)
        else:
            await _spend(self.request, name + ":failed", self.limit.failures, self.limit.prefix)

    async def settle(self, ok: bool) -> None:
        """Charge a request its handler answered without asking: never refused, it is done."""
        with contextlib.suppress(RateLimitedError):
            await self.admit(ok)


def rate_limited(retry_after: int) -> web.Response:
    resp = error(429, "rate_limited", "too many requests; try again later")
    resp.headers["Retry-After"] = str(retry_after)
    return resp


@web.middleware
async def public_rate_limit_mw(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """429 for public routes beyond their token buckets (shared in Redis by every process).

    The handler decides which budget a request spends (`_Gate`), after its signature check;
    a handler that never asks (an unknown path, a channel that does not know the gate) is
    charged by its answer afterwards: a success as verified, anything else as a failure."""
    limit = next((x for x in request.app[LIMITS] if request.path.startswith(x.prefix)), None)
    if limit is None:
        return await handler(request)
    try:
        if limit.per_client is not None:
            name = "http:" + limit.prefix.strip("/")
            await _spend(request, f"{name}:{request.remote or '-'}", limit.per_client,
                         limit.prefix)
        if limit.prefix == "/hooks/":
            request = request.clone(client_max_size=HOOK_MAX_BYTES)
        gate = _Gate(request, limit)
        bound = REQUEST_GATE.set(gate)
        try:
            resp = await handler(request)
        except web.HTTPException as e:
            await gate.settle(e.status < 400)
            raise
        finally:
            REQUEST_GATE.reset(bound)
        await gate.settle(resp.status < 400)
        return resp
    except RateLimitedError as e:
        return rate_limited(e.retry_after)


def credential(request: web.Request, token: TokenSettings) -> Credential:
    """What `token` may speak for (every sender but the console's, for the local token)."""
    ctx = request.app[APP].ctx
    return of_token(token, console_sender(ctx.settings, ctx.registry))


def authenticate(request: web.Request, role: str) -> TokenSettings:
    """The token of the request, which must carry `role`; 401/403 otherwise."""
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        raise AuthError("missing bearer token (Authorization: Bearer <token>)")
    digest = token_hash(header[7:].strip())
    for t in request.app[APP].tokens:
        if hmac.compare_digest(t.sha256, digest):
            if t.revoked:
                raise AuthError("this token has been revoked")
            if role not in t.roles and "admin" not in t.roles:
                raise AuthError(f"this token may not {role}", forbidden=True)
            return t
    raise AuthError("unknown token")


async def post_alert(request: web.Request) -> web.Response:
    app = request.app[APP]
    token = authenticate(request, "feed")
    ctype = request.content_type
    if ctype not in CAP_TYPES:
        return error(415, "unsupported_type",
                     f"Content-Type {ctype or '(none)'} is not accepted; use one of "
                     f"{', '.join(CAP_TYPES)}")
    server = app.settings.server
    # The reach counts are asked for: the contract's 202 stays its three fields (and
    # warnings), which clients comparing the whole reply rely on.
    want_reach = request.query.get("reach", "0")
    if want_reach not in ("0", "1"):
        return error(422, "invalid", "reach: 1 (add the counts of persons, grids, sites and "
                     "loudspeakers to the reply) or 0")
    limit = server.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        return error(413, "too_large", f"the body is larger than {limit} bytes")
    body = await request.read()
    # Parsing a national feed's 2 MB polygon takes real CPU: keep the event loop free for the
    # webhooks and acks that other requests carry.
    alert = await parse_off_loop(body, request.headers.get("Content-Type"), max_bytes=limit,
                                 max_areas=server.max_areas,
                                 max_area_entries=server.max_area_entries)
    res = await accept(app.ctx, alert, credential(request, token))
    payload: dict[str, Any] = {"alert_id": res.alert_id, "campaign_id": res.campaign_id,
                               "targets": res.targets}
    if want_reach == "1" and res.counts:  # an Alert or Update: persons, grids, sites ...
        payload["reach"] = dict(res.counts)
    if res.warnings:  # accepted, but some areas hold no grid of the registry
        payload["warnings"] = [{"code": w.code, "field": w.field, "message": w.message}
                               for w in res.warnings]
    return ok(payload, 202 if res.created else 200)


async def reader(request: web.Request, alert_id: str) -> Credential:
    """The officer's credential a thread is read with: one bounded to regions reads only a
    thread that reached them (403 otherwise; 404 for no such alert, as for anyone)."""
    ctx = request.app[APP].ctx
    cred = credential(request, authenticate(request, "officer"))
    if cred.regions:
        cid = await ctx.store.campaign_of(alert_id)
        if not cid:
            raise NotFoundError(f"no alert {alert_id}")
        check_thread_read(cred, await thread_reach(ctx, cid))
    return cred


async def get_alert(request: web.Request) -> web.Response:
    app = request.app[APP]
    aid = request.match_info["alert_id"]
    await reader(request, aid)
    return ok(await views.alert_view(app.ctx, aid))


async def get_record(request: web.Request) -> web.StreamResponse:
    """The 叫应 record; for a credential bounded to regions, the rows of its people only."""
    app = request.app[APP]
    aid = request.match_info["alert_id"]
    cred = await reader(request, aid)
    fmt = request.query.get("format", "json")
    rows = [r for r in await views.record_rows(app.ctx, aid)
            if serves_within(app.ctx.registry, cred, r["person_id"])]
    cid = await app.ctx.store.campaign_of(aid) or ""
    rows = with_words(app.ctx, rows, await app.ctx.store.audit(cid) if cid else [])
    fb = [r for r in await feedback_rows(app.ctx, cid)
          if serves_within(app.ctx.registry, cred, r["person_id"])]
    if fmt == "csv" and request.query.get("section") == "feedback":
        return web.Response(text=feedback_csv(fb), content_type="text/csv", charset="utf-8")
    if fmt == "csv":
        # A BOM: spreadsheet programs read it as UTF-8 (the console's CSV has one too).
        return web.Response(text="\ufeff" + words_csv(rows), content_type="text/csv",
                            charset="utf-8")
    return ok({"alert_id": aid, "rows": rows, "feedback": fb})


class ConsoleAck(msgspec.Struct, forbid_unknown_fields=True):
    campaign_id: str
    person_id: str
    reason: str
    by: Any = msgspec.UNSET  # refused: who confirmed is the token's name


async def post_ack(request: web.Request) -> web.Response:
    """A confirmation entered for a person (e.g. phoned back), with the reason.

    Recorded as by the token (its name); the person must serve inside the token's regions."""
    app = request.app[APP]
    token = authenticate(request, "officer")
    try:
        body = msgspec.json.decode(await request.read(), type=ConsoleAck)
    except msgspec.DecodeError as e:
        return error(422, "invalid", f"ack: {e}")
    if body.by is not msgspec.UNSET:
        return error(422, "invalid", "by: who confirmed comes from the credential (the token's "
                     "name), never from the body; leave `by` out")
    if not body.reason.strip():
        return error(422, "invalid", "reason: a console confirmation needs a reason")
    check_person(app.ctx.registry, credential(request, token), body.person_id)
    res = await record_ack(app.ctx, body.campaign_id, body.person_id, AckVia.CONSOLE,
                           by=token.name, reason=body.reason)
    return _ack_reply(res)


def _ack_reply(res: AckResult) -> web.Response:
    """200 recorded, duplicate or late (the campaign had ended: nothing changed); 202
    journaled (Redis unavailable: held durably, recorded when it returns); else 404."""
    if res.code == JOURNALED:
        return ok({"status": res.status}, 202)
    if res.code not in (RECORDED, DUPLICATE, LATE):
        return error(404, res.status, "no such campaign or person in it")
    return ok({"status": res.status}, 200)


async def ack_link_page(request: web.Request) -> web.Response:
    """GET shows a confirm button: link previews of chat apps must not confirm for people."""
    app = request.app[APP]
    token = request.match_info["token"]
    try:
        cid, pid = app.links.verify(token, app.ctx.clock.now())
    except AuthError as e:
        await admit_request(False)
        log.warning("ack link rejected", reason=e.message)
        return web.Response(status=403, text=_page("链接无效", html.escape(e.message)),
                            content_type="text/html")
    await admit_request(True)
    # The message in full (what a card or an SMS could not carry), and a button only while
    # a confirmation is wanted.
    page = await ack_page(app.ctx, cid, pid, await over_for(app.ctx, cid, pid))
    form = (f'<form method="post" action="/ack/{html.escape(token)}">'
            f'<button style="font-size:2em;padding:.5em 2em">{page.button}</button></form>'
            if page.button else "")
    if page.button and await app.ctx.store.is_acked(cid, pid):
        form = feedback_form(token)  # confirmed: what they did, 到岗 … 零报告
    return web.Response(text=_page(page.title, page.body + form), content_type="text/html")


async def link_of(request: web.Request) -> tuple[str, str] | web.Response:
    """The (campaign, person) of the request's signed ack link, charged to the public gate as
    verified; a 403 answer (charged as a failure) when the link is not valid."""
    app = request.app[APP]
    try:
        cid, pid = app.links.verify(request.match_info["token"], app.ctx.clock.now())
    except AuthError as e:
        await admit_request(False)
        log.warning("ack link rejected", reason=e.message)
        return error(403, "forbidden", e.message)
    await admit_request(True)
    return cid, pid


async def ack_link_post(request: web.Request) -> web.Response:
    app = request.app[APP]
    link = await link_of(request)
    if isinstance(link, web.Response):
        return link
    cid, pid = link
    res = await record_ack(app.ctx, cid, pid, AckVia.LINK)
    if "text/html" in request.headers.get("Accept", ""):
        if res.late:
            text = await late_text(app.ctx, cid, pid, res)
        else:
            text = ("已确认，谢谢。" if res.code in (RECORDED, DUPLICATE, JOURNALED)
                    else "未找到对应的预警。")
            if res.code in (RECORDED, DUPLICATE, JOURNALED):
                text += feedback_form(request.match_info["token"])
        return web.Response(text=_page("确认", text), content_type="text/html")
    return _ack_reply(res)


def _page(title: str, body: str) -> str:
    return (f'<!doctype html><html lang="zh-CN"><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{title}</title><body style='font-family:sans-serif;text-align:center'>"
            f"<h1>{title}</h1>{body}</body></html>")


async def healthz(request: web.Request) -> web.Response:
    """200/503 `{"ok": ...}` for anyone (load balancers, compose); the detail (Redis, broker,
    roles, feeds with their upstream errors) only with an officer's or admin's token."""
    probe = request.app[HEALTH]
    if "Authorization" not in request.headers:
        up = await probe.up()
        return ok({"ok": up}, 200 if up else 503)
    authenticate(request, "officer")
    detail = await probe.detail()
    return ok(detail, 200 if detail["ok"] else 503)


async def metrics(request: web.Request) -> web.Response:
    app = request.app[APP]
    await views.refresh_metrics(app)
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


def make_ops_app(app: App) -> web.Application:
    """What a worker or timer process serves: health and metrics only (no public routes)."""
    ops = web.Application(middlewares=[errors_mw])
    ops[APP] = app
    ops[HEALTH] = views.HealthProbe(app)
    ops.router.add_get("/healthz", healthz)
    ops.router.add_get("/metrics", metrics)
    return ops


def make_web_app(app: App) -> web.Application:
    web_app = web.Application(middlewares=[public_rate_limit_mw, errors_mw],
                              client_max_size=app.settings.server.max_body_bytes)
    web_app[APP] = app
    web_app[HEALTH] = views.HealthProbe(app)
    web_app[LIMITS] = PUBLIC_LIMITS  # a test or deployment may replace it before start
    web_app[SHARED_LIMIT] = SharedLimit(app.ctx.redis)
    web_app.router.add_post("/api/v1/alerts", post_alert)
    web_app.router.add_get("/api/v1/alerts/{alert_id}", get_alert)
    web_app.router.add_get("/api/v1/alerts/{alert_id}/record", get_record)
    web_app.router.add_post("/api/v1/acks", post_ack)
    web_app.router.add_get(openapi.PATH, openapi.serve)
    web_app.router.add_get("/ack/{token}", ack_link_page)
    web_app.router.add_post("/ack/{token}", ack_link_post)
    for name, ch in app.engine.channels.items():
        if isinstance(ch, WebhookChannel):
            for method, path, handler in ch.webhooks(app.engine.sink):
                web_app.router.add_route(method, f"/hooks/{name}/{path.lstrip('/')}", handler)
    web_app.router.add_get("/healthz", healthz)
    web_app.router.add_get("/metrics", metrics)
    capfeed.add_routes(web_app, app.ctx, app.links.base_url)
    # Imported here: its handlers use this module's helpers (APP, error, authenticate).
    from warnbus.web import feedback

    feedback.add_routes(web_app)
    setup_console(web_app, app)  # the warning officer's console under /console/ (and / → it)
    return web_app
