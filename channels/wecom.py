"""WeCom (企业微信) app messages: a template card with a 确认收到 button, and its callback.

Direct HTTP with aiohttp against `api_base`: the real API, or `channels.sim.wecom_sim` in
demos and tests. Warnings, redials and escalations go out as a `button_interaction` card whose
task_id carries the campaign, delivery and target plus a tag bound to the addressee, so the
button event routes back to `sink.confirm` without a lookup, and only for the person the card
was sent to. Every message that asks for a confirmation (`Delivery.asks_confirmation`: a
warning, a redial, an escalation, an Update to someone who has not confirmed, a 解除 when the
policy wants it confirmed) is such a card; the others (a 解除, a notice) go out as text.

A card carries at most CARD_TEXT_MAX characters: its text is fitted at sentence boundaries
(the planner renders it within the channel's `max_length` already), and the card links to
the full text (the person's ack page) instead of cutting it silently. The button's answer
says what became of the click (`plugin.Confirmation`): 已确认收到, or that the warning had
been lifted or had ended.
"""

from __future__ import annotations

import asyncio
import functools
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import aiohttp
import msgspec
import structlog
from aiohttp import web
from lxml import etree

from channels import wecom_crypto as proto
from channels.once import Once
from channels.textfit import fit_sentences
from warnbus.plugin import (
    FEEDBACK_ZH,
    LEVEL_NAMES_ZH,
    AckVia,
    Address,
    AuthError,
    ChannelConfig,
    ChannelInfo,
    ConfigError,
    Confirmation,
    Delivery,
    DeliveryKind,
    EventSink,
    FeedbackKind,
    Medium,
    PermanentChannelError,
    Receipt,
    Report,
    Secret,
    TransientChannelError,
    WebhookHandler,
    admit_request,
    breaker_key_for,
    load_config,
    secret_fields_of,
)

log = structlog.get_logger("channels.wecom")

DEFAULT_API = "https://qyapi.weixin.qq.com"
ACK_KEY = "ack"
#: Buttons beside 确认收到 that confirm and report at once (a report after the ack); the
#: number of people moved and a 险情 go by the card's link to the ack page, or by SMS.
REPORT_KEYS: Mapping[str, FeedbackKind] = {"fb:arrived": FeedbackKind.ARRIVED,
                                            "fb:zero": FeedbackKind.ZERO}
CARD_TEXT_MAX = 160  # sub_title_text: WeCom advises at most 160 characters
TEXT_MAX_BYTES = 2048  # text.content: WeCom cuts longer content itself
CALLBACK_MAX_BYTES = 64 * 1024  # a card event is under 1 KB
CALLBACK_MAX_AGE_S = 600.0  # callbacks signed longer ago (or ahead) than this are replays
_TITLE_SUFFIX = {DeliveryKind.REDIAL: "·再次提醒", DeliveryKind.ESCALATION: "·叫应升级",
                 DeliveryKind.UPDATE: "·更新", DeliveryKind.NOTICE: "·叫应提醒",
                 DeliveryKind.FEEDBACK: "·反馈提醒"}
FULL_TEXT = "查看预警全文"  # the card's link to the ack page, which shows the full text
#: The clicked button's new label, by what became of the click.
BUTTON_ZH: Mapping[Confirmation, str] = {
    Confirmation.RECORDED: "已确认收到", Confirmation.DUPLICATE: "已确认收到",
    Confirmation.LIFTED: "预警已解除", Confirmation.ENDED: "预警已结束",
    Confirmation.UNKNOWN: "未能确认",
}

# errcodes from WeCom's global table (developer.work.weixin.qq.com/document/path/90313)
TOKEN_ERRORS = frozenset({40001, 40014, 41001, 42001})  # refresh the token once, then resend
RATE_LIMITED = {45009: 30.0, 45033: 1.0}  # per-minute API quota; concurrent-call limit
PERMANENT: Mapping[int, str] = {
    40003: "invalid userid",
    60111: "userid does not exist",
    81013: "userid invalid or outside the app's visible range",
    60011: "no permission for this member",
    82001: "no valid recipient",
    40056: "invalid agent_id",
    301002: "no permission to use this app (agent_id/corp_secret mismatch)",
    50003: "the app is disabled",
    48002: "this API is not permitted for the app",
    60020: "this server's IP is not in the app's trusted IP list",
    43012: "the app has no callback URL configured (needed for button cards)",
    40013: "invalid corp_id",
    40091: "invalid corp_secret",
    40008: "invalid msgtype",
    40058: "invalid message parameters",
    44004: "empty message",
    45002: "message too large",
}
_CREDENTIALS = frozenset({40001, 40013, 40091})  # from gettoken: wrong corp_id / corp_secret


class WeComConfig(ChannelConfig, forbid_unknown_fields=True, frozen=True, kw_only=True):
    corp_id: str
    corp_secret: Secret
    agent_id: int
    token: Secret  # callback token (接收消息 Token)
    encoding_aes_key: Secret  # 43 characters (EncodingAESKey)
    type: str = "wecom"
    api_base: str = DEFAULT_API
    timeout_s: float = 10.0
    # WeCom allows 10,000 calls a minute but 150,000 an hour per API and corp: 40/s fits both.
    rate_per_s: float = 40.0
    #: The card also has 确认并已到岗 / 确认并零报告 buttons (a report after the ack).
    feedback_buttons: bool = True


def _problems(c: WeComConfig) -> list[str]:
    checks = [(bool(c.corp_id), "corp_id: must not be empty"),
              (bool(c.corp_secret), "corp_secret: must not be empty"),
              (c.agent_id > 0, "agent_id: must be a positive integer"),
              (bool(c.token), "token: must not be empty"),
              (c.api_base.startswith(("http://", "https://")), "api_base: must be an http(s) URL"),
              (c.timeout_s > 0, "timeout_s: must be positive"),
              (c.rate_per_s > 0, "rate_per_s: must be positive")]
    out = [message for ok, message in checks if not ok]
    try:
        proto.decode_aes_key(c.encoding_aes_key)
    except ValueError as e:
        out.append(f"encoding_aes_key: {e}")
    return out


# --------------------------------------------------------------------------- vendor replies


class _Reply(msgspec.Struct):
    """WeCom's JSON reply; unknown fields are ignored (their API grows)."""

    errcode: int = 0
    errmsg: str = ""
    access_token: str = ""
    expires_in: int = 0
    msgid: str = ""
    invaliduser: str = ""
    unlicenseduser: str = ""


class _Token(NamedTuple):
    value: str
    expires_at: float  # time.monotonic()


def classify(code: int, errmsg: str) -> TransientChannelError | PermanentChannelError:
    """Our error for a WeCom errcode: transient (retry) or permanent (switch channel)."""
    detail = f"errcode {code}: {errmsg[:200]}"
    if code in RATE_LIMITED:
        return TransientChannelError(f"wecom: rate limited ({detail})",
                                     retry_after=RATE_LIMITED[code], provider_code=str(code))
    if code == -1 or code in TOKEN_ERRORS:
        return TransientChannelError(f"wecom: try again ({detail})", provider_code=str(code))
    # Unknown codes are permanent on purpose: the policy falls back to SMS at once instead
    # of retrying a channel that fails in a way nobody has classified.
    reason = PERMANENT.get(code, "unexpected error")
    return PermanentChannelError(f"wecom: {reason} ({detail})", provider_code=str(code))


def card_text(text: str) -> str:
    """A card's text: within CARD_TEXT_MAX characters, keeping its first sentence and its
    last (how to confirm) and as many between as fit (`textfit.fit_sentences`)."""
    return fit_sentences(text, lambda s: len(s) <= CARD_TEXT_MAX, bound=CARD_TEXT_MAX)


def _clip_bytes(text: str, limit: int) -> str:
    # A character is at least one byte: a longer text cannot fit, and only its first `limit`
    # characters can be sent (encoding a warning's whole outside text would be wasted work).
    raw = text[:limit].encode()
    if len(text) <= limit and len(raw) <= limit:
        return text
    return raw[: limit - 3].decode(errors="ignore") + "…"


# --------------------------------------------------------------------------- the channel


class WeCom:
    """WeCom app messages with a confirm button (a Channel and a WebhookChannel)."""

    def __init__(self, name: str, config: WeComConfig, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.name = name
        self.config = config
        self.info = ChannelInfo(
            kind="wecom", provider="wecom", medium=Medium.WECOM, address=Address.WECOM,
            rate_per_s=config.rate_per_s,
            breaker_key=breaker_key_for(config, "wecom", config.corp_id, config.api_base),
            # The card's sub_title_text, which carries warnings; longer texts are fitted, and the
            # card links to the full text.
            max_length=CARD_TEXT_MAX, secret_fields=secret_fields_of(WeComConfig))
        self._clock = clock  # wall clock of callback timestamps (injectable for tests)
        self._crypto = proto.WeComCrypto(config.token, config.encoding_aes_key, config.corp_id)
        self._http: aiohttp.ClientSession | None = None
        self._token: _Token | None = None
        self._token_lock = asyncio.Lock()
        self._replays = proto.ReplayGuard(CALLBACK_MAX_AGE_S, clock)
        self._clicks: Once[Confirmation] = Once(10_000, max_age_s=2 * CALLBACK_MAX_AGE_S)

    @classmethod
    def from_config(cls, name: str, raw: Mapping[str, Any]) -> WeCom:
        config = load_config(WeComConfig, name, raw)
        problems = _problems(config)
        if problems:
            raise ConfigError("; ".join(f"channels.{name}.{p}" for p in problems))
        return cls(name, config)

    @property
    def callback_endpoint(self) -> str:
        """The URL to enter as the app's 接收消息 URL in the WeCom admin console."""
        base = self.config.callback_url.rstrip("/")
        return f"{base}/callback" if base else ""

    # ------------------------------------------------------------------ sending

    def build_message(self, d: Delivery) -> dict[str, Any]:
        """The message/send body for a delivery: a button card when it asks for a
        confirmation, else text."""
        msg: dict[str, Any] = {"touser": d.address, "agentid": self.config.agent_id}
        if not d.asks_confirmation:
            # WeCom drops an identical text within the interval: a resend after a lost reply
            # is not shown twice. (Cards get the same from their unique task_id.)
            return msg | {"msgtype": "text",
                          "text": {"content": _clip_bytes(d.text, TEXT_MAX_BYTES)},
                          "enable_duplicate_check": 1, "duplicate_check_interval": 1800}
        text = card_text(d.text)
        if text != d.text and not d.ack_url:
            log.warning("wecom card text cut", channel=self.name, delivery_id=d.id,
                        length=len(d.text), limit=CARD_TEXT_MAX)
        if d.kind is DeliveryKind.CANCEL:
            title = "预警解除"
        else:
            title = LEVEL_NAMES_ZH[d.level] + "预警" + _TITLE_SUFFIX.get(d.kind, "")
        card: dict[str, Any] = {
            "card_type": "button_interaction",
            "source": {"desc": "预警叫应"},
            "main_title": {"title": ("【演练】" if d.drill else "") + title,
                           "desc": "阅读后请点击“确认收到”"},
            "sub_title_text": text,
            "task_id": self._task_id(d),
            "button_list": [{"text": "确认收到", "style": 1, "key": ACK_KEY}],
        }
        if self.config.feedback_buttons:
            card["button_list"] += [{"text": "确认并" + FEEDBACK_ZH[kind], "style": 2, "key": key}
                                    for key, kind in REPORT_KEYS.items()]
        if d.ack_url:
            # The whole text, whatever the card could carry: the person's ack page shows it,
            # behind a link on the card and a tap on the card itself.
            card["horizontal_content_list"] = [
                {"type": 1, "keyname": "全文", "value": FULL_TEXT, "url": d.ack_url}]
            card["card_action"] = {"type": 1, "url": d.ack_url}
        return msg | {"msgtype": "template_card", "template_card": card}

    def _task_id(self, d: Delivery) -> str:
        try:
            return proto.encode_task_id(self.config.corp_id, d.campaign_id, d.id, d.target_id,
                                        d.address)
        except ValueError as e:
            raise PermanentChannelError(f"wecom: delivery {d.id}: {e}",
                                        provider_code="task_id") from e

    async def send(self, delivery: Delivery) -> Receipt:
        if not delivery.address:
            raise PermanentChannelError("wecom: the target has no WeCom userid",
                                        provider_code="no-address")
        body = msgspec.json.encode(self.build_message(delivery))
        path = "/cgi-bin/message/send"
        token = await self._access_token()
        reply = await self._call("POST", path, {"access_token": token.value}, body)
        if reply.errcode in TOKEN_ERRORS:
            log.info("wecom token rejected; refreshing", channel=self.name, errcode=reply.errcode)
            token = await self._access_token(stale=token)
            reply = await self._call("POST", path, {"access_token": token.value}, body)
            if reply.errcode in TOKEN_ERRORS:
                raise TransientChannelError(
                    f"wecom: a fresh access token was rejected too (errcode {reply.errcode})",
                    provider_code=str(reply.errcode))
        if reply.errcode != 0:
            raise classify(reply.errcode, reply.errmsg)
        if reply.invaliduser or reply.unlicenseduser:
            # One recipient per message, so any invalid user is this one.
            raise PermanentChannelError(
                "wecom: the userid is invalid or has no license for this app",
                provider_code="invaliduser" if reply.invaliduser else "unlicenseduser")
        return Receipt(provider_id=reply.msgid or None)

    async def _access_token(self, stale: _Token | None = None) -> _Token:
        """The cached token; one refresh at a time, and only if nobody refreshed since `stale`."""
        tok = self._token
        if tok is not None and tok is not stale and tok.expires_at > time.monotonic():
            return tok
        async with self._token_lock:
            tok = self._token
            if tok is not None and tok is not stale and tok.expires_at > time.monotonic():
                return tok
            self._token = await self._fetch_token()
            return self._token

    async def _fetch_token(self) -> _Token:
        c = self.config
        reply = await self._call("GET", "/cgi-bin/gettoken",
                                 {"corpid": c.corp_id, "corpsecret": c.corp_secret.reveal()})
        if reply.errcode in _CREDENTIALS:
            log.error("wecom refused the credentials", channel=self.name, errcode=reply.errcode)
            raise PermanentChannelError(
                f"wecom: gettoken refused corp_id/corp_secret (errcode {reply.errcode}); "
                f"check channels.{self.name}", provider_code=str(reply.errcode))
        if reply.errcode != 0 or not reply.access_token:
            raise classify(reply.errcode or -1, reply.errmsg or "no access_token in reply")
        ttl = float(reply.expires_in) if reply.expires_in > 0 else 7200.0
        # Refresh before WeCom's expiry: 10% early, at most 5 minutes.
        log.info("wecom access token fetched", channel=self.name, expires_in=reply.expires_in)
        return _Token(reply.access_token, time.monotonic() + ttl - min(300.0, ttl * 0.1))

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.config.timeout_s))
        return self._http

    async def _call(self, method: str, path: str, params: Mapping[str, str],
                    body: bytes | None = None) -> _Reply:
        url = self.config.api_base.rstrip("/") + path
        headers = {"Content-Type": "application/json"} if body is not None else None
        try:
            async with self._session().request(method, url, params=params, data=body,
                                               headers=headers) as resp:
                status, raw = resp.status, await resp.read()
        except TimeoutError as e:
            raise TransientChannelError(f"wecom: no reply within {self.config.timeout_s}s",
                                        provider_code="timeout") from e
        except aiohttp.ClientError as e:
            # The class name only: messages of some aiohttp errors carry the URL, whose query
            # holds the access token or the corp secret.
            raise TransientChannelError(f"wecom: {type(e).__name__} calling {path}",
                                        provider_code="network") from e
        if status >= 500 or status == 429:
            raise TransientChannelError(f"wecom: HTTP {status} from {path}",
                                        provider_code=f"http-{status}")
        if status != 200:
            raise PermanentChannelError(f"wecom: HTTP {status} from {path}; check api_base",
                                        provider_code=f"http-{status}")
        try:
            return msgspec.json.decode(raw, type=_Reply)
        except msgspec.DecodeError as e:
            raise TransientChannelError(f"wecom: unreadable reply from {path}",
                                        provider_code="bad-reply") from e

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    # ------------------------------------------------------------------ callbacks

    def webhooks(self, sink: EventSink) -> Sequence[tuple[str, str, WebhookHandler]]:
        return [("GET", "callback", self._verify_url),
                ("POST", "callback", functools.partial(self._receive, sink=sink))]

    async def _reject(self, request: web.Request, status: int, reason: str) -> web.Response:
        # Before the signature was checked (or when it failed) the request spends the
        # budget of failed requests (`models.RequestGate`); after, this changes nothing.
        await admit_request(False)
        log.warning("wecom callback rejected", channel=self.name, status=status, reason=reason,
                    peer=request.remote)
        return web.Response(status=status, text="forbidden" if status == 403 else "bad request")

    def _signed(self, request: web.Request) -> tuple[str, str, str] | None:
        q = request.query
        sig, ts, nonce = q.get("msg_signature", ""), q.get("timestamp", ""), q.get("nonce", "")
        return (sig, ts, nonce) if sig and ts and nonce else None

    async def _verify_url(self, request: web.Request) -> web.Response:
        """GET: WeCom checks the URL when an admin saves it; echo the decrypted echostr."""
        signed = self._signed(request)
        # Base64 never has spaces: a "+" that reached us as a space was decoded from the query.
        echostr = request.query.get("echostr", "").replace(" ", "+")
        if signed is None or not echostr:
            return await self._reject(request, 400, "missing msg_signature/timestamp/nonce/echostr")
        try:
            self._replays.check_time(signed[1])
            plain = self._crypto.open(*signed, echostr)
        except AuthError as e:
            return await self._reject(request, 403, e.message)
        await admit_request(True)
        log.info("wecom callback URL verified", channel=self.name)
        return web.Response(body=plain, content_type="text/plain")

    async def _receive(self, request: web.Request, sink: EventSink) -> web.Response:
        """POST: an encrypted event; a 确认收到 click becomes sink.confirm."""
        signed = self._signed(request)
        if signed is None:
            return await self._reject(request, 400, "missing msg_signature/timestamp/nonce")
        if (request.content_length or 0) > CALLBACK_MAX_BYTES:
            return await self._reject(request, 400, "body too large")
        body = await request.read()  # bounded by the app's client_max_size
        if len(body) > CALLBACK_MAX_BYTES:  # chunked bodies have no Content-Length
            return await self._reject(request, 400, "body too large")
        try:
            encrypted = proto.parse_xml(body).findtext("Encrypt") or ""
        except ValueError as e:
            return await self._reject(request, 400, f"outer XML: {e}")
        if not encrypted:
            return await self._reject(request, 400, "no Encrypt element")
        try:
            self._replays.check_time(signed[1])
            plain = self._crypto.open(*signed, encrypted)
        except AuthError as e:
            return await self._reject(request, 403, e.message)
        await admit_request(True)
        try:
            event = proto.parse_xml(plain)
        except ValueError as e:
            return await self._reject(request, 400, f"inner XML: {e}")
        return await self._on_event(request, event, sink, signed[0])

    async def _on_event(self, request: web.Request, event: etree._Element, sink: EventSink,
                        signature: str) -> web.Response:
        if event.findtext("MsgType") != "event" or event.findtext("Event") != "template_card_event":
            return web.Response()  # other messages and events: nothing to do
        agent = (event.findtext("AgentID") or "").strip()
        if agent and agent != str(self.config.agent_id):
            return await self._reject(request, 403, f"event for agent {agent}, not ours")
        key = event.findtext("EventKey") or ""
        if key != ACK_KEY and key not in REPORT_KEYS:
            return web.Response()
        user = (event.findtext("FromUserName") or "").strip()
        try:
            ref = proto.decode_task_id((event.findtext("TaskId") or "").strip())
        except ValueError as e:
            return await self._reject(request, 403, f"TaskId not issued by warnbus: {e}")
        if not proto.sent_to(self.config.corp_id, ref, user):
            return await self._reject(request, 403,
                                f"card of delivery {ref.delivery_id} clicked by another user")
        # WeCom resends when it got no reply within 5 s. A resend is answered like the
        # first only once the first is durable (the sink returned: in Redis or in the
        # engine's journal); while it is under way the resend waits for it, and after a
        # failure it confirms by itself (`channels.once`).
        # The click's ResponseCode (one per click, the same in WeCom's resends) names the
        # report in the engine, once in every process; the signature stands in without one.
        code = (event.findtext("ResponseCode") or "").strip()
        click = f"wecom|{code}" if code else f"wecom|sig|{signature}"
        first, result = await self._clicks.run(
            click, lambda: self._confirm(sink, ref, REPORT_KEYS.get(key), click))
        log.info("wecom confirmation" if first else "wecom duplicate callback",
                 channel=self.name, campaign_id=ref.campaign_id, delivery_id=ref.delivery_id,
                 target_id=ref.target_id, result=result.value)
        kind = REPORT_KEYS.get(key)
        if kind is not None and result.confirmed:
            return self._button_reply(user, "已确认·" + FEEDBACK_ZH[kind])
        return self._button_reply(user, BUTTON_ZH[result])

    @staticmethod
    async def _confirm(sink: EventSink, ref: proto.TaskRef, kind: FeedbackKind | None,
                       click: str) -> Confirmation:
        """Confirm; with `kind` (a report button) then report it (once per `click`), once
        confirmed."""
        result = Confirmation.of(await sink.confirm(ref.campaign_id, ref.target_id,
                                                    AckVia.WECOM, ref.delivery_id))
        if kind is not None and result.confirmed:
            await sink.report(ref.campaign_id, ref.target_id, AckVia.WECOM, Report(kind),
                              click)
        return result

    def _button_reply(self, user: str, label: str) -> web.Response:
        """Passive reply that turns the clicked button grey for that user, labelled with
        what became of the click (已确认收到, 预警已解除 ...)."""
        ts, nonce = str(int(self._clock())), secrets.token_hex(8)
        plain = proto.update_button_xml(user, self.config.corp_id, ts, label)
        encrypted, signature = self._crypto.seal(plain.encode(), ts, nonce)
        return web.Response(text=proto.envelope(encrypted, signature, ts, nonce),
                            content_type="text/xml")
