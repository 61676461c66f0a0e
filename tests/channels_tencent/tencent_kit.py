"""Helpers of the Tencent channel tests: the real SDK's async clients against the simulator."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from channels.sim.officers import OfficerModel
from channels.sim.recording import RecordingSink
from channels.sim.tencent_sim import TencentSimulator
from warnbus.domain.models import Delivery, DeliveryKind, Level, TargetKind

SECRET_ID = "AKIDsimulator0000000000000000000001"
SECRET_KEY = "sim-secret-key-0123456789abcdef"
APP_ID = "1400123456"
HOOK_SECRET = "hook-fedcba9876543210"
SIGN = "华容县应急管理局"
PHONE = "+8613812345678"
SMS_CODE, VOICE_CODE = "2100001", "3100001"
SMS_CONTENT = "{1}预警：{2}{3}{4}{5}{6}{7}{8}{9}。回复1确认收到。"
VOICE_CONTENT = "{1}预警。{2}{3}{4}{5}。确认收到请按1。"
SMS_TEMPLATES = {"default": {"code": SMS_CODE, "content": SMS_CONTENT, "params": {
    "1": "level", **{str(i): "text" for i in range(2, 10)}}}}
VOICE_TEMPLATES = {"default": {"code": VOICE_CODE, "content": VOICE_CONTENT, "params": {
    "1": "level", **{str(i): "text" for i in range(2, 6)}}}}
TEXT = "【红色预警】县气象台发布暴雨红色预警。影响区域：城关镇。请立即转移。回复1确认收到"
EVERYONE = OfficerModel(responsive=1.0, per_message=1.0, unreachable=0.0, delay_s=(0.01, 0.02))
NOBODY = OfficerModel(responsive=0.0, per_message=0.0, unreachable=0.0, delay_s=(0.01, 0.02))


@dataclass
class Env:
    channel: Any  # TencentSms | TencentVoice
    sim: TencentSimulator
    sink: RecordingSink
    hooks: str  # public base of the channel's webhooks, secret segment included
    http: aiohttp.ClientSession

    async def push(self, hook: str, payload: Any, *, secret: str = HOOK_SECRET
                   ) -> aiohttp.ClientResponse:
        base = self.hooks.rsplit("/", 1)[0]
        resp = await self.http.post(f"{base}/{secret}/{hook}", json=payload)
        await resp.read()
        return resp


def delivery(text: str = TEXT, *, address: str = PHONE, channel: str = "sms",
             kind: DeliveryKind = DeliveryKind.WARNING, did: str = "dl_1") -> Delivery:
    return Delivery(
        id=did, campaign_id="cmp-1", alert_id="al_1", target_id="p-1",
        target_kind=TargetKind.PERSON, channel=channel, step=0, kind=kind,
        level=Level.RED, address=address, text=text, created_at=0.0)


def config(kind: str, endpoint: str, hooks: str, **over: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "type": f"tencent-{kind}", "callback_url": hooks, "secret_id": SECRET_ID,
        "secret_key": SECRET_KEY, "sdk_app_id": APP_ID, "endpoint": endpoint,
        "protocol": "http", "hook_secret": HOOK_SECRET, "timeout_s": 3.0,
        "templates": SMS_TEMPLATES if kind == "sms" else VOICE_TEMPLATES}
    if kind == "sms":
        raw.update(sign_name=SIGN, variable_max_chars=12)
    return {**raw, **over}


EnvFactory = Callable[..., Awaitable[Env]]
