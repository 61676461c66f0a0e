"""Tencent channel tests: the real SDK's async clients talk to the simulator over localhost."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
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
from tests.cn_kit import hook_socket, serve_hooks


@pytest.fixture
async def make_env() -> AsyncIterator[EnvFactory]:
    """Build channel + simulator + webhook app; `kind` is "sms" or "voice"."""
    cleanups: list[Callable[[], Awaitable[None]]] = []

    async def build(kind: str = "sms", officers: OfficerModel = NOBODY, *,
                    channel_cfg: dict[str, Any] | None = None, **sim_kwargs: Any) -> Env:
        sock, base, hooks = hook_socket(kind, HOOK_SECRET)
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
        http = aiohttp.ClientSession()
        cleanups.append(sim.stop)
        cleanups.extend(await serve_hooks(channel, kind, sock, sink, start=True))
        cleanups.append(http.close)
        return Env(channel, sim, sink, hooks, http, HOOK_SECRET)

    yield build
    for cleanup in cleanups:
        await cleanup()
