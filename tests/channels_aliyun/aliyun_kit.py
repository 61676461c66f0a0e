"""Helpers of the Aliyun channel tests: the real SDKs against the bundled simulator.

The webhook side and the test's handles are tests/cn_kit.py's, shared with the Tencent tests.
"""

from __future__ import annotations

from typing import Any

from tests.cn_kit import EVERYONE, NOBODY, PHONE, Env, EnvFactory
from tests.cn_kit import delivery as cn_delivery
from warnbus.domain.models import Delivery

AK_ID = "LTAI5tSimulatorKey0001"
AK_SECRET = "sim-secret-0123456789abcdefABCDEF"
HOOK_SECRET = "hook-0123456789abcdef"
SIGN = "华容县应急管理局"
SHOW = "057100001111"
NATIONAL = "13812345678"
SMS_CODE, VOICE_CODE, NOTICE_CODE, CONFIRM_CODE = ("SMS_100001", "TTS_200001", "TTS_200002",
                                                   "TTS_200009")
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
TEXT = ("【红色预警】县气象台发布暴雨红色预警。影响区域：城关镇。"
        "请立即转移危险区域群众。回复1确认收到")



def delivery(text: str = TEXT, **kw: Any) -> Delivery:
    return cn_delivery(text, **kw)


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




__all__ = ["EVERYONE", "NOBODY", "PHONE", "Env", "EnvFactory"]
