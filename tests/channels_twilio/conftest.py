"""Twilio channel tests: the real SDK client talks to the bundled simulator over localhost."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from twilio_harness import FROM, NOBODY, SID, TOKEN, Env, EnvFactory, RecordingSink

from channels.sim.officers import OfficerModel
from channels.sim.twilio_sim import TwilioSimulator
from channels.twilio_sms import TwilioSms
from channels.twilio_voice import TwilioVoice
from tests.cn_kit import serve_hooks


@pytest.fixture
async def make_env() -> AsyncIterator[EnvFactory]:
    """Build channel + simulator + webhook app; `kind` is "sms" or "voice"."""
    cleanups: list[Callable[[], Awaitable[None]]] = []

    async def build(kind: str = "sms", officers: OfficerModel = NOBODY, *,
                    api_base: str | None = None, channel_cfg: dict[str, Any] | None = None,
                    **sim_kwargs: Any) -> Env:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))  # bound first: the channel needs its public URL
        hooks = f"http://127.0.0.1:{sock.getsockname()[1]}/hooks/{kind}"
        sim = TwilioSimulator(SID, TOKEN, officers, f"{hooks}/inbound", **sim_kwargs)
        base = await sim.start()
        cls = TwilioSms if kind == "sms" else TwilioVoice
        raw = {"type": f"twilio-{kind}", "callback_url": hooks, "account_sid": SID,
               "auth_token": TOKEN, "from_number": FROM, "api_base": api_base or base,
               "timeout_s": 2.0, **(channel_cfg or {})}
        channel = cls.from_config(kind, raw)
        sink = RecordingSink()
        cleanups.append(sim.stop)
        cleanups.extend(await serve_hooks(channel, kind, sock, sink, start=False))
        http = aiohttp.ClientSession()
        cleanups.append(http.close)
        return Env(channel, sim, sink, hooks, http)

    yield build
    for cleanup in cleanups:
        await cleanup()
