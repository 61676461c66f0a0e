"""A WeCom-compatible HTTP server with simulated officers, for the demo and the tests.

It serves what warnbus uses of the WeCom API (`/cgi-bin/gettoken`, `/cgi-bin/message/send`)
with WeCom's errcodes, and plays the people at the other end: when a button card reaches an
officer who answers (`channels.sim.officers`), it posts, after the modelled delay, the
encrypted and signed `template_card_event` WeCom would post when that officer taps the button.
The channel talks to it exactly as to https://qyapi.weixin.qq.com; only `api_base` differs.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp
import msgspec
import structlog
import yarl
from aiohttp import web

from channels import wecom_crypto as proto
from channels.sim.officers import OfficerModel, Script, Turns
from channels.sim.prepared import PreparedRequest
from warnbus.plugin import AuthError

log = structlog.get_logger("channels.sim.wecom")

_TASK_ID_RE = re.compile(r"[A-Za-z0-9_@-]{1,128}\Z")
_USER_ERRORS = frozenset({40003, 60111, 81013})  # errcodes that name the userid as invalid
_CALLBACK_TRIES = 3  # WeCom retries a callback that got no answer, three times in all


@dataclass(frozen=True)
class SentMessage:
    """One message WeCom accepted."""

    msgid: str
    touser: str
    msgtype: str
    body: dict[str, Any]
    at: float  # on the simulator's `clock` (the provider's business time)
    task_id: str | None = None
    duplicate: bool = False  # a card with a task_id already used: accepted, not shown again


@dataclass(frozen=True)
class CallbackResult:
    """What became of one simulated button click."""

    task_id: str
    userid: str
    status: int | None  # HTTP status of the last try; None when nobody answered
    reply_type: str = ""  # MsgType of the decrypted passive reply (update_button), if any
    reply_button: str = ""  # its Button.ReplaceName
    at: float = 0.0  # when the button was pressed, on the simulator's `clock`


@dataclass(frozen=True)
class _Scripted:
    status: int
    body: Mapping[str, Any] | None
    delay_s: float


def _json(body: Mapping[str, Any], status: int = 200) -> web.Response:
    return web.Response(body=msgspec.json.encode(body), status=status,
                        content_type="application/json")


def _err(code: int, msg: str) -> web.Response:
    return _json({"errcode": code, "errmsg": msg})


class WeComSimulator:
    """A WeCom server for one corp and app, with scripted faults and simulated officers.

    `failing_users` maps userids to the errcode a send to them gets (81013, 60111, ...);
    `rate_limit` is the number of sends per second before 45009. `agent_id`, when given, must
    match the message's agentid (40056 otherwise). `scripted` maps userids to a `Script` whose
    `cards` say, card by card, who taps ("click") and who does not (the `OfficerModel` decides
    for the others). `clock` is the provider's business time its records carry.
    """

    def __init__(
        self, corp_id: str, corp_secret: str, token: str, encoding_aes_key: str,
        officers: OfficerModel, callback_url: str | None = None, *, agent_id: int | None = None,
        token_ttl_s: int = 7200, rate_limit: int | None = None,
        failing_users: Mapping[str, int] | None = None, max_records: int = 10_000,
        max_pending: int = 1_000, scripted: Mapping[str, Script] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.corp_id, self.corp_secret, self.agent_id = corp_id, corp_secret, agent_id
        self.officers = officers
        self.callback_url = callback_url  # the app's 接收消息 URL; may be set after start()
        self.token_ttl_s = token_ttl_s
        self.rate_limit = rate_limit
        self.failing_users = dict(failing_users or {})
        self.scripted: dict[str, str | Script] = dict(scripted or {})
        self._turns = Turns(self.scripted)
        self.clock = clock
        self.sent: list[SentMessage] = []
        self.callbacks: list[CallbackResult] = []
        self.tokens_issued = 0  # successful gettoken replies
        self._crypto = proto.WeComCrypto(token, encoding_aes_key, corp_id)
        self._max_records, self._max_pending = max_records, max_pending
        self._tokens: dict[str, float] = {}  # token -> monotonic expiry
        self._task_ids: OrderedDict[str, None] = OrderedDict()
        self._recent: deque[float] = deque()
        self._script: dict[str, deque[_Scripted]] = {"gettoken": deque(), "send": deque()}
        self._tasks: set[asyncio.Task[int | None]] = set()
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None
        self.base_url = ""

    # ------------------------------------------------------------------ lifecycle

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on host:port (0: a free port); return the base URL to use as `api_base`."""
        app = web.Application()
        app.router.add_get("/cgi-bin/gettoken", self._gettoken)
        app.router.add_post("/cgi-bin/message/send", self._send)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        bound = self._runner.addresses[0]
        self.base_url = f"http://{host}:{bound[1]}"
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5.0))
        return self.base_url

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._http is not None:
            await self._http.close()
        if self._runner is not None:
            await self._runner.cleanup()
        self._http = self._runner = None

    async def drain(self, within_s: float = 10.0) -> None:
        """Wait (at most `within_s`) until every scheduled click has been delivered."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=within_s)

    # ------------------------------------------------------------------ test controls

    def revoke_tokens(self) -> None:
        """Invalidate every issued token: the next use gets 40014."""
        self._tokens.clear()

    def expire_tokens(self) -> None:
        """Expire every issued token: the next use gets 42001."""
        for token in self._tokens:
            self._tokens[token] = 0.0

    def queue_reply(self, body: Mapping[str, Any] | None = None, *, status: int = 200,
                    delay_s: float = 0.0, endpoint: str = "send") -> None:
        """Answer the next call of `endpoint` ("send" or "gettoken") with this reply instead."""
        self._script[endpoint].append(_Scripted(status, body, delay_s))

    # ------------------------------------------------------------------ the API

    async def _play(self, s: _Scripted) -> web.Response:
        if s.delay_s:
            await asyncio.sleep(s.delay_s)
        if s.body is None:
            return web.Response(status=s.status, text="<html>error</html>")
        return _json(s.body, s.status)

    async def _gettoken(self, request: web.Request) -> web.Response:
        if self._script["gettoken"]:
            return await self._play(self._script["gettoken"].popleft())
        if request.query.get("corpid") != self.corp_id:
            return _err(40013, "invalid corpid")
        if request.query.get("corpsecret") != self.corp_secret:
            return _err(40001, "invalid credential")
        now = time.monotonic()
        self._tokens = {t: exp for t, exp in self._tokens.items() if exp > now}
        # Like WeCom: while a token is valid, gettoken returns it again.
        token = next(iter(self._tokens), None) or secrets.token_urlsafe(48)
        self._tokens.setdefault(token, now + self.token_ttl_s)
        self.tokens_issued += 1
        return _json({"errcode": 0, "errmsg": "ok", "access_token": token,
                      "expires_in": round(self._tokens[token] - now)})

    def _token_error(self, token: str) -> web.Response | None:
        if not token:
            return _err(41001, "access_token missing")
        expiry = self._tokens.get(token)
        if expiry is None:
            return _err(40014, "invalid access_token")
        if expiry <= time.monotonic():
            return _err(42001, "access_token expired")
        return None

    def _rate_limited(self) -> bool:
        if self.rate_limit is None:
            return False
        now = time.monotonic()
        while self._recent and self._recent[0] <= now - 1.0:
            self._recent.popleft()
        if len(self._recent) >= self.rate_limit:
            return True
        self._recent.append(now)
        return False

    def _invalid(self, body: dict[str, Any]) -> tuple[int, str] | None:
        """The errcode WeCom gives a malformed message, or None."""
        if self.agent_id is not None and body.get("agentid") != self.agent_id:
            return 40056, "invalid agentid"
        if not isinstance(body.get("touser"), str) or not body["touser"]:
            return 82001, "all touser/toparty/totag are empty"
        kind = body.get("msgtype")
        part = body.get(kind) if isinstance(kind, str) else None
        if kind not in ("text", "textcard", "template_card") or not isinstance(part, dict):
            return 40008, "invalid message type"
        if kind == "text":
            content = part.get("content")
            if not isinstance(content, str) or not content:
                return 44004, "empty content"
            if len(content.encode()) > 2048:
                return 45002, "content size out of limit"
        elif kind == "textcard":
            if not all(isinstance(part.get(k), str) and part[k]
                       for k in ("title", "description", "url")):
                return 40058, "textcard needs title, description and url"
        elif part.get("card_type") == "button_interaction":
            buttons = part.get("button_list")
            if not _TASK_ID_RE.match(str(part.get("task_id", ""))):
                return 40058, "invalid task_id"
            if not isinstance(buttons, list) or not 1 <= len(buttons) <= 6 or not all(
                    isinstance(b, dict) and b.get("key") and b.get("text") for b in buttons):
                return 40058, "invalid button_list"
            if not (part.get("main_title") or part.get("sub_title_text")):
                return 40058, "main_title or sub_title_text is required"
        return None

    async def _send(self, request: web.Request) -> web.Response:
        if self._script["send"]:
            return await self._play(self._script["send"].popleft())
        token = request.query.get("access_token", "")
        if (failure := self._token_error(token)) is not None:
            return failure
        if self._rate_limited():
            return _err(45009, "api freq out of limit")
        try:
            body = msgspec.json.decode(await request.read())
        except msgspec.DecodeError:
            return _err(47001, "data format error")
        if not isinstance(body, dict):
            return _err(47001, "data format error")
        if (problem := self._invalid(body)) is not None:
            return _err(*problem)
        user: str = body["touser"]
        if user in self.failing_users:
            code = self.failing_users[user]
            return _json({"errcode": code, "errmsg": f"simulated failure {code}",
                          "invaliduser": user if code in _USER_ERRORS else ""})
        return self._accept(user, body)

    def _accept(self, user: str, body: dict[str, Any]) -> web.Response:
        msgid = secrets.token_urlsafe(24)
        card = body.get("template_card") if body["msgtype"] == "template_card" else None
        task_id = str(card["task_id"]) if card and "task_id" in card else None
        duplicate = task_id is not None and task_id in self._task_ids
        if task_id is not None and not duplicate:
            self._task_ids[task_id] = None
            while len(self._task_ids) > self._max_records:
                self._task_ids.popitem(last=False)
        self._record(self.sent, SentMessage(msgid, user, body["msgtype"], body, self.clock(),
                                            task_id, duplicate))
        reply: dict[str, Any] = {"errcode": 0, "errmsg": "ok", "invaliduser": "", "msgid": msgid}
        if card is not None and task_id is not None:
            reply["response_code"] = secrets.token_urlsafe(24)
            if not duplicate and card.get("card_type") == "button_interaction":
                # The officer taps the first button (validated above), as a person would.
                self._officer_reacts(user, task_id, str(card["button_list"][0]["key"]),
                                     body.get("agentid"))
        return _json(reply)

    def _record(self, records: list[Any], item: Any) -> None:
        records.append(item)
        if len(records) > self._max_records:
            del records[: len(records) - self._max_records]

    # ------------------------------------------------------------------ the officers

    def _officer_reacts(self, user: str, task_id: str, key: str, agent_id: Any) -> None:
        reaction = self.officers.react(user, task_id)
        scripted = self._turns.next("cards", user)
        if not (reaction.answers if scripted is None else scripted == "click"):
            return
        if len(self._tasks) >= self._max_pending:
            log.warning("wecom simulator: too many pending clicks; dropping one", user=user)
            return
        task = asyncio.create_task(self._click(user, task_id, key, agent_id, reaction.delay_s))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def click(self, card: SentMessage) -> int | None:
        """Its addressee presses the card's first button now (driven from outside, e.g. by a
        load generator): WeCom's encrypted, signed callback. The app's HTTP status."""
        return await self._click(*self._first_button(card), 0.0)

    def prepare_click(self, card: SentMessage) -> PreparedRequest | None:
        """What `click` sends, encrypted and signed, not sent (None: no callback URL)."""
        return self._click_request(*self._first_button(card))

    def _first_button(self, card: SentMessage) -> tuple[str, str, str, Any]:
        """(user, task id, key of the first button, agent id) of a card."""
        tc = card.body.get("template_card") or {}
        buttons = tc.get("button_list") or [{}]
        task_id = card.task_id or str(tc.get("task_id", ""))
        return (card.touser, task_id, str(buttons[0].get("key", "")),
                card.body.get("agentid", self.agent_id))

    def _click_request(self, user: str, task_id: str, key: str, agent_id: Any
                       ) -> PreparedRequest | None:
        url = self.callback_url
        if not url:
            return None
        ts, nonce = str(int(time.time())), secrets.token_hex(8)
        c = proto.cdata
        event = (f"<xml><ToUserName>{c(self.corp_id)}</ToUserName>"
                 f"<FromUserName>{c(user)}</FromUserName><CreateTime>{ts}</CreateTime>"
                 f"<MsgType>{c('event')}</MsgType><Event>{c('template_card_event')}</Event>"
                 f"<EventKey>{c(key)}</EventKey><TaskId>{c(task_id)}</TaskId>"
                 f"<CardType>{c('button_interaction')}</CardType>"
                 f"<ResponseCode>{c(secrets.token_urlsafe(24))}</ResponseCode>"
                 f"<AgentID>{agent_id}</AgentID></xml>")
        encrypted, signature = self._crypto.seal(event.encode(), ts, nonce)
        body = proto.callback_body(self.corp_id, encrypted, str(agent_id))
        query = urlencode({"msg_signature": signature, "timestamp": ts, "nonce": nonce})
        return PreparedRequest(f"{url}{'&' if '?' in url else '?'}{query}", body.encode(),
                               {"Content-Type": "text/xml"})

    async def _click(self, user: str, task_id: str, key: str, agent_id: Any,
                     delay_s: float) -> int | None:
        await asyncio.sleep(delay_s)
        pressed = self.clock()
        req = self._click_request(user, task_id, key, agent_id)
        if req is None or self._http is None:
            return None
        status: int | None = None
        reply = b""
        for attempt in range(_CALLBACK_TRIES):
            try:
                async with self._http.post(yarl.URL(req.url, encoded=True), data=req.body,
                                           headers=req.headers) as resp:
                    status, reply = resp.status, await resp.read()
            except (aiohttp.ClientError, TimeoutError):
                status = None
            if status is not None and status < 500:
                break
            await asyncio.sleep(0.2 * 2**attempt)
        reply_type, button = self._open_reply(reply) if status == 200 else ("", "")
        self._record(self.callbacks, CallbackResult(task_id, user, status, reply_type, button,
                                                    pressed))
        return status

    def _open_reply(self, reply: bytes) -> tuple[str, str]:
        """(MsgType, ReplaceName) of a passive reply; ("", "") for an empty one."""
        if not reply.strip():
            return "", ""
        try:
            outer = proto.parse_xml(reply)
            plain = self._crypto.open(outer.findtext("MsgSignature") or "",
                                      outer.findtext("TimeStamp") or "",
                                      outer.findtext("Nonce") or "",
                                      outer.findtext("Encrypt") or "")
            inner = proto.parse_xml(plain)
        except (ValueError, AuthError):
            return "unreadable", ""
        return inner.findtext("MsgType") or "", inner.findtext("Button/ReplaceName") or ""
