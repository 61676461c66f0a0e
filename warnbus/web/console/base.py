"""What every console route shares: its state, the role check, CSRF, and the reply helpers."""

from __future__ import annotations

import functools
import hashlib
import hmac
import random
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import msgspec
from aiohttp import web

from warnbus.flow.doors import DoorLinks
from warnbus.runtime.app import App
from warnbus.state import keys
from warnbus.web.console import html
from warnbus.web.console.auth import Session, Sessions, User, Users, csrf_ok, name_problem
from warnbus.web.console.history import Histories
from warnbus.web.console.passwords import HasherBusy
from warnbus.web.console.shared import Shared
from warnbus.web.console.streams import StreamSlots
from warnbus.web.console.throttle import Admission, SignInGuard, new_device

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
COOKIE = "wb_console"
DEVICE_COOKIE = "wb_device"  # a browser's device id, sent to the sign-in form only
PREFIX = "/console"
#: How long after its redirect a message (`flash`) may show: a followed redirect takes a
#: moment; an address kept or shared later says nothing.
FLASH_TTL_S = 120


class ConsoleSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What an admin may change at run time (kept in Redis, shared by every process)."""

    approval_levels: tuple[str, ...] = ("red", "orange")  # need a second person (approver)
    sms_price: float = 0.05  # 元 per SMS segment (70 characters, 67 when split)
    voice_price: float = 0.12  # 元 per started minute of a call
    sender_name: str = ""  # default: <county name>应急管理局
    org_code: str = ""  # 14 digits ZZZZZZDDDUUUXX; default: county code + 00000000
    sse_interval_s: float = 1.0  # how often the live board looks for changes


@dataclass(frozen=True)
class SignIn:
    """The outcome of a sign-in: a session, or why not (`refused`; neither: wrong name or
    password; `busy`: too many passwords being checked in this process)."""

    sid: str = ""
    user: User | None = None
    refused: Admission | None = None
    busy: bool = False
    device: str = ""  # the browser's device id (cookie DEVICE_COOKIE) after a sign-in


@dataclass
class Console:
    app: App
    users: Users
    sessions: Sessions
    #: Where the random part of console identifiers comes from (a test may seed its own).
    rng: random.Random = field(default_factory=secrets.SystemRandom)
    streams: StreamSlots = field(default_factory=StreamSlots)
    #: What the audit streams of the campaigns the boards look at say (read incrementally).
    histories: Histories = field(default_factory=Histories)
    #: What every live page reads alike (desk, boards), computed once a turn for all of them.
    shared: Shared = field(default_factory=Shared)
    guard: SignInGuard = field(init=False)
    doors: DoorLinks = field(init=False)  # the links of people sent door to door

    def __post_init__(self) -> None:
        self.guard = SignInGuard(self.app.ctx.redis, self.app.ctx.clock)
        links = self.app.links
        self.doors = DoorLinks(links.derive("door"), links.base_url, links.ttl_s)

    async def signed_in(self, sid: str) -> tuple[User, Session] | None:
        """The user and session of a cookie, if the session has not ended: it exists, its
        user exists and is enabled, and no reset, disable or sign-out came after it began."""
        sess = await self.sessions.get(sid)
        if sess is None:
            return None
        user, gen = await self.users.get_with_generation(sess.user)
        if user is None or user.disabled or gen != sess.gen:
            return None
        return user, sess

    async def sign_in(self, name: str, password: str, client: str, device: str = "") -> SignIn:
        """Check a sign-in from `client` (throttle.client_address) with the browser's device
        cookie, and open a session.

        The guard admits the attempt first (counting it as a failure), so neither a flood nor
        concurrent attempts get more password checks than the limits allow; a name that cannot
        be a user name is counted on the address and never looked up or hashed.
        """
        valid = name_problem(name) is None
        who = await self.guard.attempt(name if valid else None, client, device)
        if self.users.hasher.full(known=who.known):
            return SignIn(busy=True)
        admission = await self.guard.admit(who)
        if not admission.admitted:
            return SignIn(refused=admission)
        if not valid:
            return SignIn()
        gen = await self.users.generation(name)  # before the check: a reset meanwhile wins
        try:
            user = await self.users.verify(name, password, known=who.known)
        except HasherBusy:
            await self.guard.settle(who, right=False)  # never checked: not a failure
            return SignIn(busy=True)
        if user is None:
            return SignIn()
        await self.guard.settle(who, right=True)
        # A known browser keeps its id; any other gets a new one (never one it chose).
        device = device if who.known else new_device()
        await self.guard.remember(user.name, device)
        sid, _sess = await self.sessions.create(user.name, gen)
        return SignIn(sid, user, device=device)

    @property
    def default_approval_levels(self) -> tuple[str, ...]:
        """The levels that need a second person when no admin has chosen (`[console]`)."""
        return tuple(self.app.settings.console.approval_levels)

    async def _stored(self) -> dict[str, Any]:
        raw = await self.app.ctx.redis.hget(keys.CONSOLE_SETTINGS, "json")
        return msgspec.json.decode(raw, type=dict[str, Any]) if raw else {}

    async def settings(self) -> ConsoleSettings:
        """What is stored in Redis; the approval levels from the configuration if unset."""
        stored = await self._stored()
        stored.setdefault("approval_levels", self.default_approval_levels)
        return msgspec.convert(stored, ConsoleSettings)

    async def approval_from_config(self) -> bool:
        return "approval_levels" not in await self._stored()

    async def save_settings(self, value: ConsoleSettings, *,
                            approval_from_config: bool = False) -> None:
        """Store `value`; with `approval_from_config`, the approval levels stay unset, so
        the configuration's `[console] approval_levels` decides."""
        data = msgspec.to_builtins(value)
        if approval_from_config:
            data.pop("approval_levels", None)
        await self.app.ctx.redis.hset(keys.CONSOLE_SETTINGS, "json", msgspec.json.encode(data))


CONSOLE: web.AppKey[Console] = web.AppKey("warnbus_console", Console)


def console(request: web.Request) -> Console:
    return request.config_dict[CONSOLE]


USER: web.RequestKey[User] = web.RequestKey("console_user", User)
SESSION: web.RequestKey[Session] = web.RequestKey("console_session", Session)


def user_of(request: web.Request) -> User:
    return request[USER]


def session_of(request: web.Request) -> Session:
    return request[SESSION]


def requires(*roles: str) -> Callable[[Handler], Handler]:
    """Sign-in (and one of `roles`, when given) for a route; CSRF on every POST.

    A browser without a session is sent to the sign-in page; anything else gets 401/403.
    """

    def deco(fn: Handler) -> Handler:
        @functools.wraps(fn)
        async def wrapper(request: web.Request) -> web.StreamResponse:
            signed = await console(request).signed_in(request.cookies.get(COOKIE, ""))
            if signed is None:
                if request.method == "GET" and "text/html" in request.headers.get("Accept", ""):
                    raise web.HTTPFound(f"{PREFIX}/login?next={request.rel_url}")
                return deny(request, 401, "请先登录")
            user, sess = signed
            request[USER], request[SESSION] = user, sess
            if request.method == "POST":
                given = request.headers.get("X-CSRF-Token")
                if given is None and request.content_type in (
                        "application/x-www-form-urlencoded", "multipart/form-data"):
                    given = str((await request.post()).get("_csrf", ""))
                if not csrf_ok(sess.csrf, given):
                    return deny(request, 403, "表单已失效（CSRF校验失败），请刷新页面后重试")
            if roles and not user.has(*roles):
                names = "、".join(html.ROLE_ZH.get(r, r) for r in roles)
                return deny(request, 403, f"需要{names}权限")
            try:
                return await fn(request)
            except Back as e:
                raise e.signed(sess) from e

        wrapper.roles = roles  # type: ignore[attr-defined]
        return wrapper

    return deco


def deny(request: web.Request, status: int, message: str) -> web.Response:
    if "text/html" in request.headers.get("Accept", ""):
        body = f'<p class="err">{html.esc(message)}</p><p><a href="{PREFIX}/">返回首页</a></p>'
        return web.Response(status=status, text=html.bare("无法访问", body),
                            content_type="text/html")
    code = {401: "unauthorized", 403: "forbidden", 404: "not_found"}.get(status, "invalid")
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


def page(request: web.Request, title: str, body: str, *, active: str = "",
         status: int = 200) -> web.Response:
    user = request.get(USER)
    sess = request.get(SESSION)
    text = html.layout(title, body, user=user, csrf=sess.csrf if sess else "", active=active)
    return web.Response(text=text, content_type="text/html", status=status,
                        headers=SECURITY_HEADERS)


SECURITY_HEADERS = {
    # No external origin at all: the console works offline and loads nothing from elsewhere.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self' "
                               "'unsafe-inline'; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


async def form(request: web.Request) -> dict[str, str]:
    data = await request.post()
    return {k: str(v) for k, v in data.items() if isinstance(v, str)}


class Back(web.HTTPSeeOther):
    """A 303 of a console route, with a message for the page it leads to (a flash).

    `requires` signs the message for the session it is meant for (`signed`): a page shows
    only a message the server said to this session on this path, within FLASH_TTL_S of the
    redirect (`flash`), so a crafted link (`?msg=已发布`) or an old one makes no page say
    anything; the page's script drops it from the address once shown (a reload does not
    repeat it). Outside `requires` the message is dropped."""

    def __init__(self, location: str, msg: str = "") -> None:
        super().__init__(location)
        self.target, self.flash = location, msg

    def signed(self, sess: Session) -> web.HTTPSeeOther:
        if not self.flash:
            return web.HTTPSeeOther(self.target)
        sep = "&" if "?" in self.target else "?"
        at = int(time.time())
        sig = flash_sig(sess, urlsplit(self.target).path, self.flash, at)
        # The message last: what it says stays readable at the end of the address.
        return web.HTTPSeeOther(f"{self.target}{sep}mt={at}&ms={sig}&msg={quote(self.flash)}")


def back(location: str, msg: str = "") -> Back:
    """A 303 to `location`, with a message for the page to show (`Back`, `flash`)."""
    return Back(location, msg)


def flash_sig(sess: Session, path: str, msg: str, at: int) -> str:
    """The session's signature of a message shown on `path`, said at `at` (Unix seconds;
    keyed by the session's CSRF secret, which never leaves the session's own pages)."""
    key = hashlib.sha256(b"wb-flash|" + sess.csrf.encode()).digest()
    data = f"{path}\n{at}\n{msg}".encode()
    return hmac.new(key, data, hashlib.sha256).hexdigest()[:32]


def flash(request: web.Request) -> str:
    """The message a redirect of this session left for this page (`Back`) within FLASH_TTL_S,
    else ""."""
    msg, sig, at = (request.query.get(k, "") for k in ("msg", "ms", "mt"))
    sess = request.get(SESSION)
    if not msg or not sig or not at.isdigit() or sess is None:
        return ""
    if abs(time.time() - int(at)) > FLASH_TTL_S:  # (abs: another process's clock)
        return ""
    return msg if hmac.compare_digest(sig, flash_sig(sess, request.path, msg, int(at))) else ""


def json_reply(obj: Any, status: int = 200) -> web.Response:
    return web.Response(body=msgspec.json.encode(obj), status=status,
                        content_type="application/json")
