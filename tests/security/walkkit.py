"""The world of the trust walk (test_sec_walk.py): one engine, every kind of credential.

One harness serves the whole walk: the API with the console on real Redis, the test channels
sending (a campaign is planned and sent in milliseconds), and beside them every channel that
takes provider callbacks (Twilio SMS and voice, WeCom, Aliyun and Tencent SMS and voice), with
their webhooks mounted as `serve` mounts them but no policy sending through them.

A request carries exactly one credential (`Kind`): a bearer token, a console session (with its
CSRF token), a provider's signature or an ack link; no cookie jar adds anything. `World.state`
digests everything Redis holds but the rate limiters' buckets, so a row can say that nothing
changed.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import aiohttp
import msgspec
from aiohttp.test_utils import TestClient
from seckit import (
    FEED,
    OFFICER,
    REVOKED,
    SENDER,
    TOKENS,
    TOWN,
    TOWN_OFFICER,
    TOWN_SENDER,
    WIDE,
    cap_xml,
)

from channels.aliyun_sms import AliyunSms
from channels.aliyun_voice import AliyunVoice
from channels.tencent_sms import TencentSms
from channels.tencent_voice import TencentVoice
from channels.twilio_sms import TwilioSms
from channels.twilio_voice import TwilioVoice
from channels.wecom import WeCom
from tests.channels_aliyun import aliyun_kit
from tests.channels_tencent import tencent_kit
from tests.console.console_kit import PASSWORD, add_users, from_address, open_session, red_form
from tests.engine.helpers import T0, Harness, make_harness, web_client
from warnbus.domain.models import AckVia
from warnbus.flow.acks import RECORDED, record_ack
from warnbus.plugin import Channel
from warnbus.web.console.auth import Users
from warnbus.web.console.base import CONSOLE, COOKIE
from warnbus.web.console.compose import parse_form
from warnbus.web.console.drafts import Drafts

BASE = "http://test"  # the engine's public URL (make_harness): what providers are told to call
# A village of each township an alert names: small campaigns keep the walk fast.
IN_BOTH = ("430623101001", "430623102001")  # townships 101 and 102
IN_101, IN_102, IN_105 = ("430623101001",), ("430623102001",), ("430623105001",)
FAR = "127.0.0.2"  # another machine: outside the networks the mainland providers push from


class Kind(StrEnum):
    """A credential a request carries."""

    NONE = "none"
    BAD = "unknown token"
    REVOKED = "revoked token"
    FEED = "feed: township+Met"  # the bureau's sender; township 430623101, category Met
    WIDE = "feed: county"  # the bureau's sender; the whole county, every category
    TOWN = "feed: other sender"  # the township office's sender; township 430623101
    OFFICER = "officer"  # the whole county
    TOWN_OFFICER = "officer: township"  # township 430623101
    LOCAL = "local token"  # the full-scope token `serve` prints: any sender but the console's
    DRAFTER = "drafter"
    APPROVER = "approver"
    ADMIN = "admin"
    DISABLED = "disabled user"  # the session of a user disabled after signing in
    SIGNED = "provider: signed"  # a provider's request as it signs it
    FORGED = "provider: forged"  # the same, signed with another secret (or from elsewhere)
    LINK = "ack link"  # the person's own signed link, in time
    LINK_FORGED = "link: forged"  # its tag replaced
    LINK_EXPIRED = "link: expired"
    LINK_OTHER = "link: re-pointed"  # another person's link, re-pointed at this person


TOKENS_HELD = (Kind.FEED, Kind.WIDE, Kind.TOWN, Kind.OFFICER, Kind.TOWN_OFFICER, Kind.LOCAL)
ROLES_HELD = (Kind.DRAFTER, Kind.APPROVER, Kind.ADMIN)
#: What a person holds: walked against every route and every thread action.
HOLDERS = (Kind.NONE, Kind.BAD, Kind.REVOKED, *TOKENS_HELD, *ROLES_HELD, Kind.DISABLED)
#: What only a provider holds: walked against `/hooks/` routes (besides HOLDERS).
PROVIDER = (Kind.SIGNED, Kind.FORGED)
#: What only a person sent an ack link holds: walked against `/ack/` routes (besides HOLDERS).
LINKS = (Kind.LINK, Kind.LINK_FORGED, Kind.LINK_EXPIRED, Kind.LINK_OTHER)

BEARER = {Kind.BAD: "not-a-token", Kind.REVOKED: REVOKED, Kind.FEED: FEED, Kind.WIDE: WIDE,
          Kind.TOWN: TOWN, Kind.OFFICER: OFFICER, Kind.TOWN_OFFICER: TOWN_OFFICER}
USER_OF = {Kind.DRAFTER: "dora", Kind.APPROVER: "alan", Kind.ADMIN: "root",
           Kind.DISABLED: "gone"}
CAP_TYPE = {"Content-Type": "application/cap+xml"}


@dataclass
class Req:
    """One request of a row; the credential is added by `World.send`."""

    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    data: Any = None  # a form (dict or pairs), bytes, or aiohttp.FormData
    json: Any = None
    far: bool = False  # sent from another machine (FAR)
    session: tuple[str, str] | None = None  # this session instead of the kind's user's


Maker = Callable[["World", Kind], Awaitable[Req]]

# Everything Redis holds, key by key (a digest of each value), but the rate limiters' token
# buckets, which a refused request may rightly spend. Hashes and sets kept as hash tables by
# their sorted contents: a DUMP lists those in table order, which Redis's incremental
# rehashing changes on a mere read.
_STATE = """
local out = {}
for _, k in ipairs(redis.call('KEYS', '*')) do
  if string.sub(k, 1, 6) ~= 'wb:rl:' then
    local kind = redis.call('TYPE', k)['ok']
    local items
    if redis.call('OBJECT', 'ENCODING', k) ~= 'hashtable' then
      kind = 'dump'
    elseif kind == 'hash' then
      local flat = redis.call('HGETALL', k)
      items = {}
      for i = 1, #flat, 2 do items[#items + 1] = flat[i] .. '\0' .. flat[i + 1] end
    elseif kind == 'set' then
      items = redis.call('SMEMBERS', k)
    end
    local value
    if items then
      table.sort(items)
      value = table.concat(items, '\1')
    else
      value = redis.call('DUMP', k)
    end
    table.insert(out, k)
    table.insert(out, redis.sha1hex(kind .. ':' .. value))
  end
end
return out
"""


@dataclass
class Thread:
    """A live campaign of one sender: what an Update or Cancel of it names."""

    cid: str
    sender: str
    identifier: str
    codes: tuple[str, ...]
    event: str = "暴雨"

    def message(self, msg_type: str, identifier: str, sender: str | None = None) -> bytes:
        body = cap_xml(identifier, self.codes, sent=T0, sender=sender or self.sender,
                       msg_type=msg_type,
                       references=f"{self.sender},{self.identifier},{T0.isoformat()}")
        return with_event(body, self.event)


def with_event(body: bytes, event: str) -> bytes:
    """`body` (cap_xml's rainstorm) naming another hazard in `<event>`, declaring Met still."""
    return body.replace("<event>暴雨".encode(), f"<event>{event}".encode())


#: The threads the walk continues: (owner, sender, township codes, event).
THREADS: dict[str, tuple[Kind, str, tuple[str, ...], str]] = {
    "bureau-101": (Kind.FEED, SENDER, IN_101, "暴雨"),
    "bureau-two": (Kind.WIDE, SENDER, IN_BOTH, "暴雨"),
    "bureau-env": (Kind.WIDE, SENDER, IN_101, "洪水"),  # category Env
    "bureau-105": (Kind.WIDE, SENDER, IN_105, "暴雨"),
    "town-101": (Kind.TOWN, TOWN_SENDER, IN_101, "暴雨"),
    "town-102": (Kind.LOCAL, TOWN_SENDER, IN_102, "暴雨"),
    "ended": (Kind.WIDE, SENDER, IN_101, "暴雨"),  # see World.cancelled
    "stop-me": (Kind.WIDE, SENDER, IN_101, "暴雨"),  # a thread whose calling a row stops
}


@dataclass
class World:
    h: Harness
    client: TestClient  # type: ignore[type-arg]
    http: aiohttp.ClientSession  # no cookie jar: a request carries only its credential
    far: aiohttp.ClientSession
    sessions: dict[Kind, tuple[str, str]] = field(default_factory=dict)
    threads: dict[str, Thread] = field(default_factory=dict)
    seq: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    pending: str = ""  # a draft waiting for an approver
    ended: Thread | None = None  # a thread of the bureau's, cancelled
    lifted_console: Thread | None = None  # a thread of the console's, cancelled
    ended_reporter: str = ""  # a person of `ended` who confirmed before it was cancelled
    headers: Mapping[str, str] = field(default_factory=dict)  # of the last answer `send` got
    reporters: dict[str, tuple[Thread, str]] = field(default_factory=dict)

    # --------------------------------------------------------------------- sending

    def credential(self, kind: Kind, method: str = "POST",
                   session: tuple[str, str] | None = None) -> dict[str, str]:
        """The headers that carry `kind`'s credential (a session's CSRF token on a POST)."""
        if kind in BEARER:
            return {"Authorization": f"Bearer {BEARER[kind]}"}
        if kind is Kind.LOCAL:
            return {"Authorization": f"Bearer {self.h.app.api_token}"}
        session = session or self.sessions.get(kind)
        if session is None:
            return {}
        sid, csrf = session
        out = {"Cookie": f"{COOKIE}={sid}"}
        if method == "POST":
            out["X-CSRF-Token"] = csrf
        return out

    async def send(self, kind: Kind, req: Req) -> int:
        """The status `req` gets with `kind`'s credential (a live stream is left at once)."""
        http = self.far if req.far else self.http
        async with http.request(req.method, req.path, data=req.data, json=req.json,
                                headers={**req.headers, **self.credential(
                                    kind, req.method, req.session)},
                                allow_redirects=False) as r:
            if r.content_type != "text/event-stream":
                await r.read()
            self.headers = r.headers.copy()
            return r.status

    async def state(self) -> dict[bytes, bytes]:
        """A digest of every key in Redis (but the rate limiters')."""
        flat = await self.h.ctx.redis.eval(_STATE, 0)
        return dict(zip(flat[::2], flat[1::2], strict=True))

    async def settle(self) -> None:
        """Let the engine act on what a row was allowed to do (plan, send, cancel)."""
        await self.h.drain()

    # --------------------------------------------------------------------- things to act on

    def ident(self, prefix: str = "walk") -> str:
        return f"{prefix}-{next(self.seq)}"

    async def post_alert(self, kind: Kind, body: bytes) -> dict[str, Any]:
        r = await self.http.post("/api/v1/alerts", data=body,
                                 headers={**CAP_TYPE, **self.credential(kind)})
        got: dict[str, Any] = await r.json()
        assert r.status == 202, got
        await self.settle()
        return got

    async def thread(self, name: str) -> Thread:
        """A live thread of `name` (THREADS, or "console"): a new one when a row ended it."""
        t = self.threads.get(name)
        meta = await self.h.ctx.store.meta(t.cid) if t is not None else None
        if t is not None and meta is not None and meta.state == "active":
            return t
        if name == "console":
            t = await self.console_thread()
        else:
            owner, sender, codes, event = THREADS[name]
            ident = self.ident(name)
            body = with_event(cap_xml(ident, codes, sent=T0, sender=sender), event)
            got = await self.post_alert(owner, body)
            t = Thread(got["campaign_id"], sender, ident, codes, event)
        self.threads[name] = t
        return t

    async def console_thread(self) -> Thread:
        """A red alert of the console's (drafted by dora, approved by alan), sent."""
        cid = await self.approve(await self.draft())
        meta = await self.h.ctx.store.meta(cid)
        assert meta is not None
        root = await self.h.ctx.alert(cid, meta.root)
        assert root is not None
        return Thread(cid, root.sender, root.identifier, IN_101)

    async def approve(self, draft: str) -> str:
        """Approve `draft` as alan; the campaign it was published in, settled."""
        r = await self.http.post(f"/console/drafts/{draft}/approve",
                                 headers=self.credential(Kind.APPROVER), allow_redirects=False)
        assert r.status == 303 and "/console/campaigns/" in r.headers["Location"], r.headers
        await self.settle()
        return r.headers["Location"].split("/console/campaigns/")[1].split("?")[0]

    async def lifted(self) -> Thread:
        """A red alert of the console's, sent and then cancelled (解除) through the console."""
        t = await self.console_thread()
        r = await self.http.post(f"/console/campaigns/{t.cid}/cancel", data={"reason": "解除"},
                                 headers=self.credential(Kind.DRAFTER), allow_redirects=False)
        assert r.status == 303 and "/console/drafts/df_" in r.headers["Location"], r.headers
        await self.approve(r.headers["Location"].split("/console/drafts/")[1].split("?")[0])
        assert getattr(await self.h.ctx.store.meta(t.cid), "state", None) == "cancelled"
        return t

    async def draft(self, level: str = "red") -> str:
        """A pending draft of dora's (red and orange wait for an approver)."""
        r = await self.http.post("/console/compose", data=red_form("", level=level, area=IN_101[0]),
                                 headers=self.credential(Kind.DRAFTER), allow_redirects=False)
        assert r.status == 303 and "/console/drafts/df_" in r.headers["Location"], r.status
        return r.headers["Location"].split("/console/drafts/")[1].split("?")[0]

    async def own_draft(self, kind: Kind) -> str:
        """A pending draft whose drafter is `kind`'s own user (dora's for anyone else)."""
        data = red_form("", area=IN_101[0])
        form, errs = parse_form(self.h.ctx, data, [data["area"]])
        assert not errs, errs
        d = await Drafts(self.h.ctx.redis).create("alert", "red", form, USER_OF.get(kind, "dora"),
                                                  self.h.clock.now())
        return d.id

    async def cancelled(self) -> Thread:
        """A thread of the bureau's in township 101, sent and then cancelled (one of its
        people, `ended_reporter`, had confirmed: a report comes after the ack)."""
        t, self.ended_reporter = await self.confirmed("ended")
        await self.post_alert(Kind.WIDE, t.message("Cancel", self.ident("ended")))
        assert getattr(await self.h.ctx.store.meta(t.cid), "state", None) == "cancelled"
        return t

    async def unconfirmed(self, name: str, township: str = "430623101",
                          n: int = 1) -> tuple[Thread, list[str]]:
        """A live thread `name` and `n` of its grid officers in `township` who have not
        confirmed (what a row confirms, or tries to); a new thread once too few are left."""
        t = await self.thread(name)
        people = await self.people(t.cid, township)
        if len(people) < n:
            del self.threads[name]
            t = await self.thread(name)
            people = await self.people(t.cid, township)
        assert len(people) >= n, f"{name} calls fewer than {n} people in {township}"
        return t, people[:n]

    async def confirmed(self, name: str, township: str = "430623101") -> tuple[Thread, str]:
        """A live thread `name` and one of its grid officers in `township` who has confirmed
        (entered by the console, as one phoned back would be): whom a report may be for. The
        same person while the thread lives (a person keeps up to 100 reports)."""
        key = f"{name}/{township}"
        t = await self.thread(name)
        known = self.reporters.get(key)
        if known is not None and known[0].cid == t.cid:
            return known
        t, (person,) = await self.unconfirmed(name, township)
        res = await record_ack(self.h.ctx, t.cid, person, AckVia.CONSOLE, by="walk",
                               reason="电话回拨已确认")
        assert res.code == RECORDED, res
        await self.settle()
        self.reporters[key] = (t, person)
        return t, person

    async def people(self, cid: str, township: str = "430623101") -> list[str]:
        """The grid officers the campaign calls in `township` who have not confirmed."""
        reg, store = self.h.ctx.registry, self.h.ctx.store
        acked = await store.acks(cid)
        return [pid for pid in sorted(await store.targets(cid))
                if pid not in acked and any(reg.data.grids[g].village.startswith(township)
                                            for g in reg.grids_held_by(pid))]

    def outsider_grid(self, township: str = "430623103") -> str:
        """A grid of `township` (no thread of the walk reaches 430623103)."""
        return next(g.id for g in sorted(self.h.ctx.registry.data.grids.values(),
                                         key=lambda g: g.id) if g.village.startswith(township))

    def outsider(self, township: str = "430623103") -> str:
        """The grid officer of a grid of `township`."""
        return self.h.ctx.registry.data.grids[self.outsider_grid(township)].primary

    def link(self, kind: Kind, cid: str, person: str, other: str) -> str:
        """The ack link path segment `kind` holds for `person` in `cid` (anyone else: junk)."""
        links, now = self.h.app.links, self.h.clock.now()
        good = links.token(cid, person, now)
        body = good.split(".")[0]
        if kind is Kind.LINK:
            return good
        if kind is Kind.LINK_FORGED:
            return body + "." + _b64(b"\x00" * 16)
        if kind is Kind.LINK_EXPIRED:
            return links.token(cid, person, now - links.ttl_s - 10)
        if kind is Kind.LINK_OTHER:
            theirs = links.token(cid, other, now)
            raw = base64.urlsafe_b64decode(theirs.split(".")[0] + "==")
            return _b64(raw.replace(other.encode(), person.encode())) + "." + theirs.split(".")[1]
        return "not-a-link"

    def door_link(self, kind: Kind, cid: str, grid: str, other: str, person: str) -> str:
        """The door link path segment `kind` holds for `person` sent to `grid` (LINK_OTHER:
        the link of another grid, re-pointed at this one; anyone else: junk)."""
        links, now = self.client.server.app[CONSOLE].doors, self.h.clock.now()
        good = links.token(cid, grid, person, now)
        if kind is Kind.LINK:
            return good
        if kind is Kind.LINK_FORGED:
            return good.split(".")[0] + "." + _b64(b"\x00" * 16)
        if kind is Kind.LINK_EXPIRED:
            return links.token(cid, grid, person, now - links.ttl_s - 10)
        if kind is Kind.LINK_OTHER:
            theirs = links.token(cid, other, person, now)
            raw = base64.urlsafe_b64decode(theirs.split(".")[0] + "==")
            return _b64(raw.replace(other.encode(), grid.encode())) + "." + theirs.split(".")[1]
        return "not-a-link"

    async def fresh_session(self, kind: Kind) -> tuple[str, str]:
        """A session of a new user with `kind`'s roles (for a row that ends its sessions)."""
        users = Users(self.h.ctx.redis)
        user = await users.get(USER_OF[kind])
        assert user is not None
        name = f"{user.name}{next(self.seq)}"
        await users.create(name, name, user.roles, PASSWORD)
        return await self.sign_in(name)

    async def sign_in(self, user: str) -> tuple[str, str]:
        """Sign `user` in through the form, as a browser does: (session cookie, CSRF token)."""
        async with from_address(self.client, "127.0.0.1") as browser:
            csrf = await open_session(browser, user)
            sid = next(c.value for c in browser.cookie_jar if c.key == COOKIE)
        return sid, csrf

    async def disable(self, name: str) -> None:
        """Disable a user as stored, leaving their sessions' generation as it was: the flag
        alone must end them."""
        users = Users(self.h.ctx.redis)
        user = await users.get(name)
        assert user is not None
        await users.put(msgspec.structs.replace(user, disabled=True))


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


# --------------------------------------------------------------------------- the providers

TWILIO_TOKEN, WECOM_TOKEN = "walk-twilio-auth-token", "walkwecomtoken"
WECOM_AES = base64.b64encode(b"w" * 32).decode().rstrip("=")
NOWHERE = "http://127.0.0.1:9"  # the providers' APIs: never called (no policy sends here)


def hook_channels() -> dict[str, Channel]:
    """Every kind of channel that takes provider callbacks, as `serve` would mount them."""
    tw = {"account_sid": "AC" + "2" * 32, "auth_token": TWILIO_TOKEN,
          "from_number": "+8673012110", "api_base": NOWHERE}
    near = {"allow_from": ["127.0.0.1/32"]}
    return {
        "twilio-sms": TwilioSms.from_config("twilio-sms", {
            "type": "twilio-sms", "callback_url": f"{BASE}/hooks/twilio-sms", **tw}),
        "twilio-voice": TwilioVoice.from_config("twilio-voice", {
            "type": "twilio-voice", "callback_url": f"{BASE}/hooks/twilio-voice", **tw}),
        "wecom-app": WeCom.from_config("wecom-app", {
            "type": "wecom", "corp_id": "wwwalk0000000001", "corp_secret": "walk-corp-secret",
            "agent_id": 1000002, "token": WECOM_TOKEN, "encoding_aes_key": WECOM_AES,
            "api_base": NOWHERE, "callback_url": f"{BASE}/hooks/wecom-app"}),
        "aliyun-sms": AliyunSms.from_config("aliyun-sms", aliyun_kit.sms_config(
            "127.0.0.1:9", f"{BASE}/hooks/aliyun-sms", **near)),
        "aliyun-voice": AliyunVoice.from_config("aliyun-voice", aliyun_kit.voice_config(
            "127.0.0.1:9", f"{BASE}/hooks/aliyun-voice", **near)),
        "tencent-sms": TencentSms.from_config("tencent-sms", tencent_kit.config(
            "sms", "127.0.0.1:9", f"{BASE}/hooks/tencent-sms", **near)),
        "tencent-voice": TencentVoice.from_config("tencent-voice", tencent_kit.config(
            "voice", "127.0.0.1:9", f"{BASE}/hooks/tencent-voice", **near)),
    }


# --------------------------------------------------------------------------- the world


@contextlib.asynccontextmanager
async def open_world(redis_url: str, mqtt_url: str) -> AsyncIterator[World]:
    """The engine, its web app on a test server, the users signed in, the main threads."""
    h = await make_harness(redis_url, hooks=hook_channels(), mqtt_url=mqtt_url)
    h.app.tokens = TOKENS + h.app.tokens  # and the full-scope token build_app generated
    await add_users(h)
    users = Users(h.ctx.redis)
    await users.create("gone", "离职人员", ("drafter", "approver"), PASSWORD)
    await users.create("target", "被管理用户", ("drafter",), PASSWORD)
    async with web_client(h) as client:
        base = f"http://{client.server.host}:{client.server.port}"
        async with (aiohttp.ClientSession(base, cookie_jar=aiohttp.DummyCookieJar()) as http,
                    from_address(client, FAR) as far):
            w = World(h, client, http, far)
            for kind, name in USER_OF.items():
                w.sessions[kind] = await w.sign_in(name)
            await w.disable("gone")
            for name in [*THREADS, "console"]:
                if name != "ended":
                    await w.thread(name)
            w.ended = await w.cancelled()
            w.lifted_console = await w.lifted()
            w.pending = await w.draft()
            yield w
