"""Helpers of the WeCom tests: test credentials, a recording sink, deliveries, and a
reference implementation of the callback crypto written straight from WeCom's description
(cryptography's own PKCS7 padder, no code shared with channels.wecom_crypto)."""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from channels.wecom import WeCom
from warnbus.domain.models import AckVia, Delivery, DeliveryKind, Level, TargetKind, delivery_id_for
from warnbus.plugin import Confirmation, ProviderStatus

CORP_ID = "ww5f3c1a2b4d6e8f90"
CORP_SECRET = "sim-corp-secret-0123456789abcdef"
TOKEN = "WarnbusCallbackToken42"
AES_KEY = "kWxPEV2UEDyxWpmPdKC3F0dgV3b0sBsP3xYkAeDPeSU"
AGENT_ID = 1000002
CAMPAIGN = "cp_0123456789abcdef0123"
ALERT = "al_0123456789abcdef0123"
TEXT = "【红色预警】县气象台发布暴雨红色预警。影响区域：城关镇。请立即组织转移。请点击“确认收到”"

# The sample of WeCom's crypto documentation (developer.work.weixin.qq.com/document/path/90968)
OFFICIAL = {"token": "QDG6eK", "corp_id": "wx5823bf96d3bd56c7",
            "key": "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"}


def channel_config(api_base: str, **overrides: object) -> dict[str, object]:
    raw: dict[str, object] = {
        "type": "wecom", "callback_url": "https://warnbus.example/hooks/wecom",
        "corp_id": CORP_ID, "corp_secret": CORP_SECRET, "agent_id": AGENT_ID, "token": TOKEN,
        "encoding_aes_key": AES_KEY, "api_base": api_base, "timeout_s": 2.0,
    }
    raw.update(overrides)
    return raw


def delivery(*, kind: DeliveryKind = DeliveryKind.WARNING, target: str = "p43062300004",
             address: str = "u43062300004", step: int = 0, text: str = TEXT,
             campaign: str = CAMPAIGN, level: Level = Level.RED, drill: bool = False,
             confirm: bool | None = None, ack_url: str | None = None) -> Delivery:
    return Delivery(
        id=delivery_id_for(campaign, ALERT, target, "wecom", step), campaign_id=campaign,
        alert_id=ALERT, target_id=target, target_kind=TargetKind.PERSON, channel="wecom",
        step=step, kind=kind, level=level, address=address, text=text, created_at=time.time(),
        drill=drill, confirm=confirm, ack_url=ack_url)


class RecordingSink:
    """An EventSink that records what channels hand it; confirm is idempotent like the engine's."""

    def __init__(self) -> None:
        self.confirms: list[tuple[str, str, AckVia, str | None]] = []
        self.statuses: list[tuple[str, str, str, ProviderStatus, str]] = []
        self.replies: list[tuple[str, str, AckVia]] = []
        self._acked: set[tuple[str, str]] = set()
        self.late: Confirmation | None = None  # set: every confirmation comes after the end

    async def delivery_status(self, campaign_id: str, delivery_id: str, target_id: str,
                              status: ProviderStatus, detail: str = "") -> None:
        self.statuses.append((campaign_id, delivery_id, target_id, status, detail))

    async def confirm(self, campaign_id: str, person_id: str, via: AckVia,
                      delivery_id: str | None = None) -> Confirmation:
        self.confirms.append((campaign_id, person_id, via, delivery_id))
        if self.late is not None:
            return self.late
        new = (campaign_id, person_id) not in self._acked
        self._acked.add((campaign_id, person_id))
        return Confirmation.RECORDED if new else Confirmation.DUPLICATE

    async def confirm_from(self, channel: str, address: str, via: AckVia,
                           reply_id: str = "") -> list[str]:
        self.replies.append((channel, address, via))
        return []

    @property
    def untouched(self) -> bool:
        return not (self.confirms or self.statuses or self.replies)


@asynccontextmanager
async def serve_hooks(channel: WeCom, sink: RecordingSink) -> AsyncIterator[str]:
    """Mount the channel's webhooks like warnbus.web does; yield the /hooks/<name> base URL."""
    app = web.Application()
    for method, path, handler in channel.webhooks(sink):
        app.router.add_route(method, f"/hooks/{channel.name}/{path.lstrip('/')}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/hooks/{channel.name}"
    finally:
        await runner.cleanup()


# --------------------------------------------------------------------------- reference crypto


def ref_sign(token: str, timestamp: str, nonce: str, encrypted: str) -> str:
    return hashlib.sha1("".join(sorted([token, timestamp, nonce, encrypted])).encode()).hexdigest()


def ref_encrypt(message: bytes, *, key43: str = AES_KEY, receive_id: str = CORP_ID,
                random16: bytes = b"0123456789abcdef") -> str:
    key = base64.b64decode(key43 + "=")
    padder = padding.PKCS7(256).padder()  # WeCom pads to 32-byte blocks
    plain = random16 + len(message).to_bytes(4, "big") + message + receive_id.encode()
    data = padder.update(plain) + padder.finalize()
    enc = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(enc.update(data) + enc.finalize()).decode()


def ref_decrypt(encrypted: str, *, key43: str = AES_KEY) -> tuple[bytes, bytes]:
    """(message, receive id)."""
    key = base64.b64decode(key43 + "=")
    dec = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    data = dec.update(base64.b64decode(encrypted)) + dec.finalize()
    unpadder = padding.PKCS7(256).unpadder()
    plain = unpadder.update(data) + unpadder.finalize()
    length = int.from_bytes(plain[16:20], "big")
    return plain[20:20 + length], plain[20 + length:]


def card_event(user: str, task_id: str, *, key: str = "ack", agent_id: int = AGENT_ID,
               event: str = "template_card_event") -> bytes:
    return (f"<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName>"
            f"<FromUserName><![CDATA[{user}]]></FromUserName>"
            f"<CreateTime>{int(time.time())}</CreateTime>"
            f"<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[{event}]]></Event>"
            f"<EventKey><![CDATA[{key}]]></EventKey><TaskId><![CDATA[{task_id}]]></TaskId>"
            f"<CardType><![CDATA[button_interaction]]></CardType>"
            f"<ResponseCode><![CDATA[rc-1]]></ResponseCode>"
            f"<AgentID>{agent_id}</AgentID></xml>").encode()


def signed_callback(plaintext: bytes, *, token: str = TOKEN, receive_id: str = CORP_ID,
                    timestamp: str | None = None, nonce: str = "1372623149",
                    ) -> tuple[dict[str, str], str]:
    """(query params, XML body) of a callback as WeCom would post it."""
    ts = timestamp or str(int(time.time()))
    encrypted = ref_encrypt(plaintext, receive_id=receive_id)
    params = {"msg_signature": ref_sign(token, ts, nonce, encrypted), "timestamp": ts,
              "nonce": nonce}
    body = (f"<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName>"
            f"<Encrypt><![CDATA[{encrypted}]]></Encrypt><AgentID>{AGENT_ID}</AgentID></xml>")
    return params, body
