"""Tencent channel tests: the real SDK's async clients talk to the simulator over localhost."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from tencent_kit import (
    APP_ID,
    HOOK_SECRET,
    NOBODY,
    SECRET_ID,
    SECRET_KEY,
    SIGN,
    SMS_CODE,
    SMS_CONTENT,
    VOICE_CODE,
    VOICE_CONTENT,
    Env,
    EnvFactory,
    config,
)

from channels.sim.officers import OfficerModel
from channels.sim.recording import RecordingSink
from channels.sim.tencent_sim import TencentSimulator
from channels.tencent_sms import TencentSms
from channels.tencent_voice import TencentVoice


@pytest.fixture
async def make_env() -> AsyncIterator[EnvFactory]:
    """Build channel + simulator + webhook app; `kind` is "sms" or "voice"."""
    cleanups: list[Callable[[], Awaitable[None]]] = []

    async def build(kind: str = "sms", officers: OfficerModel = NOBODY, *,
                    channel_cfg: dict[str, Any] | None = None, **sim_kwargs: Any) -> Env:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        base = f"http://127.0.0.1:{sock.getsockname()[1]}/hooks/{kind}"
        hooks = f"{base}/{HOOK_SECRET}"
        kwargs: dict[str, Any] = {
            "sdk_app_id": APP_ID, "sign_names": (SIGN,), "sms_var_max": 12,
            "sms_templates": {SMS_CODE: SMS_CONTENT},
            "voice_templates": {VOICE_CODE: VOICE_CONTENT},
            "sms_status_url": f"{hooks}/sms-status", "sms_reply_url": f"{hooks}/sms-reply",
            "voice_url": f"{hooks}/voice", **sim_kwargs}
        sim = TencentSimulator(SECRET_ID, SECRET_KEY, officers, **kwargs)
        endpoint = await sim.start()
        cls = TencentSms if kind == "sms" else TencentVoice
        channel = cls.from_config(kind, config(kind, endpoint, base, **(channel_cfg or {})))
        sink = RecordingSink()
        app = web.Application()
        for method, path, handler in channel.webhooks(sink):
            app.router.add_route(method, f"/hooks/{kind}/{path}", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.SockSite(runner, sock).start()
        if hasattr(channel, "start"):
            await channel.start(sink)
        http = aiohttp.ClientSession()
        cleanups.extend([sim.stop, channel.aclose, runner.cleanup, http.close])
        return Env(channel, sim, sink, hooks, http)

    yield build
    for cleanup in cleanups:
        await cleanup()
