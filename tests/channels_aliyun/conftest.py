"""Aliyun channel tests: the real SDK clients talk to the bundled simulator over localhost."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aliyun_kit import (
    AK_ID,
    AK_SECRET,
    HOOK_SECRET,
    NOBODY,
    REGISTERED_SMS,
    REGISTERED_VOICE,
    SHOW,
    SIGN,
    Env,
    EnvFactory,
    sms_config,
    voice_config,
)

from channels.aliyun_sms import AliyunSms
from channels.aliyun_voice import AliyunVoice
from channels.sim.aliyun_sim import AliyunSimulator
from channels.sim.officers import OfficerModel
from channels.sim.recording import RecordingSink
from tests.cn_kit import hook_socket, serve_hooks


@pytest.fixture
async def make_env() -> AsyncIterator[EnvFactory]:
    """Build channel + simulator + webhook app; `kind` is "sms" or "voice"."""
    cleanups: list[Callable[[], Awaitable[None]]] = []

    async def build(kind: str = "sms", officers: OfficerModel = NOBODY, *,
                    channel_cfg: dict[str, Any] | None = None, start: bool = True,
                    **sim_kwargs: Any) -> Env:
        sock, base, hooks = hook_socket(kind, HOOK_SECRET)
        kwargs: dict[str, Any] = {
            "sign_names": (SIGN,), "sms_templates": REGISTERED_SMS,
            "voice_templates": REGISTERED_VOICE, "show_numbers": (SHOW,),
            "sms_report_url": f"{hooks}/sms-report", "sms_up_url": f"{hooks}/sms-up",
            "voice_report_url": f"{hooks}/voice-report",
            "voice_call_report_url": f"{hooks}/voice-call-report", **sim_kwargs}
        sim = AliyunSimulator(AK_ID, AK_SECRET, officers, **kwargs)
        endpoint = await sim.start()
        cfg = (sms_config if kind == "sms" else voice_config)(endpoint, base,
                                                             **(channel_cfg or {}))
        channel = (AliyunSms if kind == "sms" else AliyunVoice).from_config(kind, cfg)
        sink = RecordingSink()
        http = aiohttp.ClientSession()
        cleanups.append(sim.stop)
        cleanups.extend(await serve_hooks(channel, kind, sock, sink, start=start))
        cleanups.append(http.close)
        return Env(channel, sim, sink, hooks, http, HOOK_SECRET)

    yield build
    for cleanup in cleanups:
        await cleanup()
