"""Helpers of the Aliyun channel tests: the real SDKs against the bundled simulator.

The webhook side is a small aiohttp app mounting the channel's `webhooks(sink)` under
`/hooks/<name>/`, as the engine's web app does, with a recording EventSink.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from channels.sim.aliyun_sim import AliyunSimulator
from channels.sim.officers import OfficerModel
from channels.sim.recording import RecordingSink
from warnbus.domain.models import Delivery, DeliveryKind, Level, TargetKind

AK_ID = "LTAI5tSimulatorKey0001"
AK_SECRET = "sim-secret-0123456789abcdefABCDEF"
HOOK_SECRET = "hook-0123456789abcdef"
SIGN = "华容县应急管理局"
SHOW = "057100001111"
PHONE = "+8613812345678"
NATIONAL = "13812345678"
SMS_CODE, VOICE_CODE, NOTICE_CODE, CONFIRM_CODE = "SMS_100001", "TTS_200001", "TTS_200002", "TTS_200009"
SMS_CONTENT = "${level}${kind}：${t1}${t2}${t3}${t4}。回复1确认收到。"
VOICE_CONTENT = "${kind}。${text}。确认收到请按1。"
SMS_TEMPLATES = {"default": {"code": SMS_CODE, "content": SMS_CONTENT, "params": {
    "level": "level", "kind": "kind", "t1": "text", "t2": "text", "t3": "text", "t4": "text"}}}
VOICE_TEMPLATES = {
    "default": {"code": VOICE_CODE, "content": VOICE_CONTENT,
                "params": {"kind": "kind", "text": "text"}},
    "cancel": {"code": NOTICE_CODE, "content": "预警解除通知：${text}",
               "params": {"text": "text"}},
    "notice": {"code": NOTICE_CODE, "content": "预警解除通知：${text}",
               "params": {"text": "text"}},
}
REGISTERED_SMS = {SMS_CODE: SMS_CONTENT}
REGISTERED_VOICE = {VOICE_CODE: VOICE_CONTENT, NOTICE_CODE: "预警解除通知：${text}",
                    CONFIRM_CODE: "已确认，谢谢。"}
TEXT = "【红色预警】县气象台发布暴雨红色预警。影响区域：城关镇。请立即转移危险区域群众。回复1确认收到"

#: Everyone answers at once: for the confirmation paths.
EVERYONE = OfficerModel(responsive=1.0, per_message=1.0, unreachable=0.0, delay_s=(0.01, 0.02))
#: Nobody confirms, everyone reachable.
NOBODY = OfficerModel(responsive=0.0, per_message=0.0, unreachable=0.0, delay_s=(0.01, 0.02))


@dataclass
class Env:
    channel: Any  # AliyunSms | AliyunVoice
    sim: AliyunSimulator
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
             kind: DeliveryKind = DeliveryKind.WARNING, did: str = "dl_1",
             ack_url: str | None = None, confirm: bool | None = None) -> Delivery:
    return Delivery(
        id=did, campaign_id="cmp-1", alert_id="al_1", target_id="p-1",
        target_kind=TargetKind.PERSON, channel=channel, step=0, kind=kind,
        level=Level.RED, address=address, text=text, created_at=0.0, ack_url=ack_url,
        confirm=confirm)


def sms_config(endpoint: str, hooks: str, **over: Any) -> dict[str, Any]:
    return {"type": "aliyun-sms", "callback_url": hooks, "access_key_id": AK_ID,
            "access_key_secret": AK_SECRET, "endpoint": endpoint, "protocol": "HTTP",
            "sign_name": SIGN, "hook_secret": HOOK_SECRET, "templates": SMS_TEMPLATES,
            "timeout_s": 3.0, **over}


def voice_config(endpoint: str, hooks: str, **over: Any) -> dict[str, Any]:
    return {"type": "aliyun-voice", "callback_url": hooks, "access_key_id": AK_ID,
            "access_key_secret": AK_SECRET, "endpoint": endpoint, "protocol": "HTTP",
            "called_show_number": SHOW, "confirm_code": CONFIRM_CODE,
            "hook_secret": HOOK_SECRET, "templates": VOICE_TEMPLATES, "timeout_s": 3.0,
            **over}


EnvFactory = Callable[..., Awaitable[Env]]
