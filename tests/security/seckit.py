"""Helpers of the security and bad-input tests: the API over real HTTP with scoped tokens."""

from __future__ import annotations

import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from tests.engine.helpers import Harness, make_harness, web_client
from warnbus.runtime.app import token_hash
from warnbus.runtime.config import TokenSettings
from warnbus.web.api import make_web_app

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "faults"))
from faultkit import cap_xml
from providerkit import World, start_world
from twilio.request_validator import RequestValidator

from channels import wecom_crypto as proto
from channels.wecom import ACK_KEY, WeComConfig

SENDER = "430623@qx.example.cn"  # the county's met bureau (cap_xml's default sender)
TOWN_SENDER = "430623101@xz.example.cn"  # a township's own office
FEED = "feed-token-430623-met"  # the bureau's sender; region 430623101 (one township), Met
WIDE = "feed-token-county"  # the bureau's sender; the whole county, every category
TOWN = "feed-token-town"  # the township's own sender; region 430623101, every category
OFFICER = "officer-token"  # the whole county
TOWN_OFFICER = "officer-token-town"  # region 430623101
REVOKED = "revoked-token"
CAP = {"Content-Type": "application/cap+xml"}

__all__ = ["CAP", "FEED", "OFFICER", "REVOKED", "SENDER", "TOKENS", "TOWN", "TOWN_OFFICER",
           "TOWN_SENDER", "WIDE", "api_client", "auth", "cap_xml", "twilio_signature",
           "twilio_signed", "wecom_click", "wecom_event"]


#: The tokens the security tests hold: each kind of feed and officer token, and a revoked one.
TOKENS = (
    TokenSettings("met", token_hash(FEED), roles=("feed",), senders=(SENDER,),
                  regions=("430623101",), categories=("Met",)),
    TokenSettings("county", token_hash(WIDE), roles=("feed",), senders=(SENDER,)),
    TokenSettings("town", token_hash(TOWN), roles=("feed",), senders=(TOWN_SENDER,),
                  regions=("430623101",)),
    TokenSettings("duty", token_hash(OFFICER), roles=("officer",)),
    TokenSettings("town-duty", token_hash(TOWN_OFFICER), roles=("officer",),
                  regions=("430623101",)),
    TokenSettings("old", token_hash(REVOKED), roles=("feed",), revoked=True),
)


def auth(token: str = WIDE) -> dict[str, str]:
    return {**CAP, "Authorization": f"Bearer {token}"}


@pytest_asyncio.fixture
async def api_client(redis_url: str) -> AsyncIterator[tuple[TestClient, Harness]]:  # type: ignore[type-arg]
    """The web app on a harness (real clock time, real Redis) with these kinds of tokens."""
    h = await make_harness(redis_url, start=time.time())
    h.app.tokens = TOKENS
    async with web_client(h) as client:
        yield client, h


def wecom_click(w: World, user: str, task_id: str, *, token: str | None = None,
                key: str = ACK_KEY) -> tuple[dict[str, str], str]:
    """A WeCom card button click by `user`, encrypted and signed as WeCom sends it (with the
    channel's callback token, or `token`): (query parameters, body)."""
    return wecom_event(w.h.channels["wecom"].config, user, task_id,  # type: ignore[attr-defined]
                       token=token, key=key)


async def wecom_label(client: TestClient, w: World, user: str, task_id: str,  # type: ignore[type-arg]
                      key: str = ACK_KEY) -> str:
    """A click on a card's button through the engine's web app: the label WeCom then shows
    on it (the encrypted passive reply, opened)."""
    params, body = wecom_click(w, user, task_id, key=key)
    return await wecom_reply_label(client, w, params, body)


async def wecom_reply_label(client: TestClient,  # type: ignore[type-arg]
                            w: World, params: dict[str, str], body: str) -> str:
    """The label WeCom shows on the button after the callback (`params`, `body`) was posted
    to the engine's web app (the encrypted passive reply, opened)."""
    r = await client.post("/hooks/wecom/callback", params=params, data=body)
    assert r.status == 200, await r.text()
    reply = proto.parse_xml((await r.text()).encode())
    cfg = w.h.channels["wecom"].config  # type: ignore[attr-defined]
    crypto = proto.WeComCrypto(str(cfg.token), str(cfg.encoding_aes_key), cfg.corp_id)
    plain = crypto.open(reply.findtext("MsgSignature") or "", reply.findtext("TimeStamp") or "",
                        reply.findtext("Nonce") or "", reply.findtext("Encrypt") or "")
    return proto.parse_xml(plain).findtext("Button/ReplaceName") or ""


def wecom_event(cfg: WeComConfig, user: str, task_id: str, *, token: str | None = None,
                key: str = ACK_KEY) -> tuple[dict[str, str], str]:
    """A card button click on the WeCom channel configured by `cfg` (see wecom_click)."""
    ts, nonce = str(int(time.time())), "12345"
    event = (f"<xml><ToUserName>{cfg.corp_id}</ToUserName><FromUserName>{user}</FromUserName>"
             f"<CreateTime>{ts}</CreateTime><MsgType>event</MsgType>"
             f"<Event>template_card_event</Event><EventKey>{key}</EventKey>"
             f"<TaskId>{task_id}</TaskId><AgentID>{cfg.agent_id}</AgentID></xml>")
    crypto = proto.WeComCrypto(token or str(cfg.token), str(cfg.encoding_aes_key), cfg.corp_id)
    encrypted, sig = crypto.seal(event.encode(), ts, nonce)
    return ({"msg_signature": sig, "timestamp": ts, "nonce": nonce},
            proto.callback_body(cfg.corp_id, encrypted, cfg.agent_id))


def twilio_signed(w: World, public_url: str, params: dict[str, str]) -> dict[str, str]:
    """The X-Twilio-Signature header Twilio sends for `params` posted to `public_url`."""
    token = str(w.h.channels["sms"].config.auth_token)  # type: ignore[attr-defined]
    return twilio_signature(token, public_url, params)


def twilio_signature(auth_token: str, public_url: str, params: dict[str, str]) -> dict[str, str]:
    """The X-Twilio-Signature header of an account whose auth token is `auth_token`."""
    return {"X-Twilio-Signature":
            RequestValidator(auth_token).compute_signature(public_url, params)}


@pytest_asyncio.fixture
async def provider_world(
        redis_url: str) -> AsyncIterator[tuple[TestClient, World]]:  # type: ignore[type-arg]
    """The engine on the Twilio and WeCom simulators (providerkit), its web app on a test
    server that the simulators' prepared requests are posted to (`post_prepared`)."""
    w = await start_world(redis_url, concurrency=8)
    w.twilio.inbound_sms_url = "http://127.0.0.1:9/hooks/sms/inbound"
    client = TestClient(TestServer(make_web_app(w.h.app)))
    await client.start_server()
    yield client, w
    await client.close()
    await w.close()


async def post_prepared(client: TestClient, req: Any) -> str:  # type: ignore[type-arg]
    """Post a simulator's signed request (a PreparedRequest) to the web app; its 200 text."""
    url = urlsplit(req.url)
    r = await client.post(f"{url.path}?{url.query}" if url.query else url.path, data=req.body,
                          headers=dict(req.headers))
    assert r.status == 200, await r.text()
    return await r.text()
