"""Helpers of the Tencent channel tests: the real SDK's async clients against the simulator."""

from __future__ import annotations

from typing import Any

from tests.cn_kit import EVERYONE, NOBODY, PHONE, Env, EnvFactory
from tests.cn_kit import delivery as cn_delivery
from warnbus.domain.models import Delivery

SECRET_ID = "AKIDsimulator0000000000000000000001"
SECRET_KEY = "sim-secret-key-0123456789abcdef"
APP_ID = "1400123456"
HOOK_SECRET = "hook-fedcba9876543210"
SIGN = "华容县应急管理局"
SMS_CODE, VOICE_CODE = "2100001", "3100001"
SMS_CONTENT = "{1}预警：{2}{3}{4}{5}{6}{7}{8}{9}。回复1确认收到。"
VOICE_CONTENT = "{1}预警。{2}{3}{4}{5}。确认收到请按1。"
SMS_TEMPLATES = {"default": {"code": SMS_CODE, "content": SMS_CONTENT, "params": {
    "1": "level", **{str(i): "text" for i in range(2, 10)}}}}
VOICE_TEMPLATES = {"default": {"code": VOICE_CODE, "content": VOICE_CONTENT, "params": {
    "1": "level", **{str(i): "text" for i in range(2, 6)}}}}
TEXT = "【红色预警】县气象台发布暴雨红色预警。影响区域：城关镇。请立即转移。回复1确认收到"


def delivery(text: str = TEXT, **kw: Any) -> Delivery:
    return cn_delivery(text, **kw)


def config(kind: str, endpoint: str, hooks: str, **over: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "type": f"tencent-{kind}", "callback_url": hooks, "secret_id": SECRET_ID,
        "secret_key": SECRET_KEY, "sdk_app_id": APP_ID, "endpoint": endpoint,
        "protocol": "http", "hook_secret": HOOK_SECRET, "timeout_s": 3.0,
        "templates": SMS_TEMPLATES if kind == "sms" else VOICE_TEMPLATES}
    if kind == "sms":
        raw.update(sign_name=SIGN, variable_max_chars=12)
    return {**raw, **over}




__all__ = ["EVERYONE", "NOBODY", "PHONE", "Env", "EnvFactory"]
