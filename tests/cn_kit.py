"""What the channel tests share: the webhook side, and the Aliyun and Tencent tests' handles.

Each test builds a channel on the real SDK against its simulator; the channel's webhooks are
mounted under `/hooks/<name>/` of a small aiohttp app, as the engine's web app does, with a
recording EventSink (`serve_hooks`).
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from channels.sim.officers import OfficerModel
from channels.sim.recording import RecordingSink
from warnbus.domain.models import Delivery, DeliveryKind, Level, TargetKind

PHONE = "+8613812345678"
#: Everyone answers at once: for the confirmation paths.
EVERYONE = OfficerModel(responsive=1.0, per_message=1.0, unreachable=0.0, delay_s=(0.01, 0.02))
#: Nobody confirms, everyone reachable.
NOBODY = OfficerModel(responsive=0.0, per_message=0.0, unreachable=0.0, delay_s=(0.01, 0.02))


@dataclass
class Env:
    channel: Any  # the channel under test
    sim: Any  # its provider's simulator
    sink: RecordingSink
    hooks: str  # public base of the channel's webhooks, secret segment included
    http: aiohttp.ClientSession
    secret: str  # the hook secret

    async def push(self, hook: str, payload: Any, *, secret: str | None = None
                   ) -> aiohttp.ClientResponse:
        base = self.hooks.rsplit("/", 1)[0]
        resp = await self.http.post(f"{base}/{secret or self.secret}/{hook}", json=payload)
        await resp.read()
        return resp


EnvFactory = Callable[..., Awaitable[Env]]


def delivery(text: str, *, address: str = PHONE, channel: str = "sms",
             kind: DeliveryKind = DeliveryKind.WARNING, did: str = "dl_1",
             ack_url: str | None = None, confirm: bool | None = None) -> Delivery:
    return Delivery(
        id=did, campaign_id="cmp-1", alert_id="al_1", target_id="p-1",
        target_kind=TargetKind.PERSON, channel=channel, step=0, kind=kind,
        level=Level.RED, address=address, text=text, created_at=0.0, ack_url=ack_url,
        confirm=confirm)


def hook_socket(kind: str, secret: str) -> tuple[socket.socket, str, str]:
    """A bound socket (the simulator needs the hook URLs first), the channel's callback base
    and its hooks' base with the secret segment."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    base = f"http://127.0.0.1:{sock.getsockname()[1]}/hooks/{kind}"
    return sock, base, f"{base}/{secret}"


async def serve_hooks(channel: Any, kind: str, sock: socket.socket, sink: RecordingSink, *,
                      start: bool = True) -> list[Callable[[], Awaitable[None]]]:
    """Mount `channel`'s webhooks on `sock`, start it; returns what to close, in order."""
    app = web.Application()
    for method, path, handler in channel.webhooks(sink):
        app.router.add_route(method, f"/hooks/{kind}/{path}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    if start:
        await channel.start(sink)
    return [channel.aclose, runner.cleanup]
