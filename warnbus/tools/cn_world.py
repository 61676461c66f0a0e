"""The mainland provider set (`--providers cn`): Aliyun and Tencent Cloud, simulated.

Voice goes by two accounts behind the policy's `voice` (a route, `flow.routes`): Aliyun
(IvrCall, 100 calls/s; 1 a minute, 5 an hour, 20 a day per number) and Tencent Cloud
(SendTtsVoice, 5 calls/s; 1 per 30 s, 2 per 10 min, 3 a day, 1 at night). A first wave is
spread over them by rate; a call one account's limit would refuse goes by the other, then by
SMS. SMS goes through Tencent Cloud (1 per 30 s, 5 an hour, 10 a day). Every limit is the
provider's documented default; the simulators enforce the same ones with the providers' error
codes, on the engine's clock, so a refused call shows up as a provider refusal.

Templates are the approved templates a county would register (the simulators hold the same
ones); the real channels on the official SDKs talk to the simulators over localhost, and the
simulators push receipts, replies and key presses to the engine's hooks.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from channels.sim.aliyun_sim import AliyunSimulator
from channels.sim.officers import OfficerModel
from channels.sim.tencent_sim import TencentSimulator
from warnbus.domain.feedback import KEYPAD_PROMPT
from warnbus.domain.models import RegistryData
from warnbus.runtime.app import load_channels
from warnbus.runtime.config import LimitSettings, Preset
from warnbus.tools.simulation import ProviderWorld, start_common, start_speakers

SIGN = "华容县应急管理局"
SHOW = "073012110000"  # the Aliyun number shown to the called person
ALIYUN_KEY_ID = "LTAI5tWarnbusDemo0001"
TENCENT_SECRET_ID = "AKIDwarnbusdemo00000000000000000001"
TENCENT_APP = "1400009099"
#: Aliyun TTS templates (IvrCall: warning, read twice; key 1 plays the confirmation, which
#: asks for a report by keys ended by #: the call record's dtmf has them after the 1).
ALIYUN_VOICE = {"TTS_300001": "${kind}。${text}。确认收到请按1。",
                "TTS_300002": "预警解除通知：${text}",
                "TTS_300009": "已确认，谢谢。" + KEYPAD_PROMPT}
#: Tencent templates: the SMS (an account whose variables carry 20 characters) and the TTS
#: (its key-press push carries the 1 and a report's keys after it).
TENCENT_SMS = {"2300001": "{1}{2}：{3}{4}{5}{6}{7}{8}{9}{10}。回复1确认收到。"}
TENCENT_VOICE = {"3300001": "{1}{2}。{3}{4}{5}{6}。确认收到请按1；按1后如需报送：已到岗按2，"
                            "零报告按3，已转移人数先按4再输入人数，以井号键结束。"}
RATES = {"voice-aliyun": 100.0, "voice-tencent": 5.0, "sms": 50.0}
#: Each account's provider defaults (per-number limits), by channel.
PRESET_OF: dict[str, Preset] = {"voice-aliyun": "aliyun-voice", "voice-tencent": "tencent-voice",
                                "sms": "tencent-sms"}
MARGIN_REAL_S = 0.5  # real seconds a request may take from the limit's check to the provider


@dataclass(kw_only=True)
class CnWorld(ProviderWorld):
    """Voice through Aliyun and Tencent Cloud, SMS through Tencent Cloud."""

    aliyun: AliyunSimulator
    tencent: TencentSimulator


def _configs(aliyun: str, tencent: str, secrets_: Mapping[str, str], factor: float
             ) -> dict[str, dict[str, Any]]:
    hook = secrets_["hook"]
    text4 = {str(i): "text" for i in range(3, 7)}
    return {
        "voice-aliyun": {
            "type": "aliyun-voice", "access_key_id": ALIYUN_KEY_ID,
            "access_key_secret": secrets_["aliyun"], "endpoint": aliyun, "protocol": "HTTP",
            "called_show_number": SHOW, "confirm_code": "TTS_300009", "hook_secret": hook,
            "rate_per_s": RATES["voice-aliyun"] * factor, "templates": {
                "default": {"code": "TTS_300001", "content": ALIYUN_VOICE["TTS_300001"],
                            "params": {"kind": "kind", "text": "text"}},
                **{k: {"code": "TTS_300002", "content": ALIYUN_VOICE["TTS_300002"],
                       "params": {"text": "text"}} for k in ("cancel", "notice")}}},
        "voice-tencent": {
            "type": "tencent-voice", "secret_id": TENCENT_SECRET_ID,
            "secret_key": secrets_["tencent"], "sdk_app_id": TENCENT_APP, "endpoint": tencent,
            "protocol": "http", "hook_secret": hook,
            "rate_per_s": RATES["voice-tencent"] * factor, "templates": {"default": {
                "code": "3300001", "content": TENCENT_VOICE["3300001"],
                "params": {"1": "level", "2": "kind", **text4}}}},
        "sms": {
            "type": "tencent-sms", "secret_id": TENCENT_SECRET_ID,
            "secret_key": secrets_["tencent"], "sdk_app_id": TENCENT_APP, "endpoint": tencent,
            "protocol": "http", "hook_secret": hook, "sign_name": SIGN,
            "variable_max_chars": 20, "rate_per_s": RATES["sms"] * factor, "templates": {
                "default": {"code": "2300001", "content": TENCENT_SMS["2300001"], "params": {
                    "1": "level", "2": "kind", **{str(i): "text" for i in range(3, 11)}}}}},
    }


async def start_cn_world(
    registry: RegistryData, *, base_url: str, mqtt_url: str, officers: OfficerModel,
    time_factor: float = 1.0, device_passwords: Mapping[str, str] | None = None,
    clock: Callable[[], float] = time.time, speaker_fail_rate: float = 0.02,
    offline_speakers: int = 2,
) -> CnWorld:
    """Start the Aliyun, Tencent and WeCom simulators and the speakers; build the channels."""
    common = await start_common(base_url, officers, time_factor, clock)
    keys = {"aliyun": secrets.token_hex(16), "tencent": secrets.token_hex(16),
            "hook": secrets.token_urlsafe(18).replace("-", "_")}
    hooks = base_url.rstrip("/") + "/hooks"
    hook = keys["hook"]
    aliyun = AliyunSimulator(
        ALIYUN_KEY_ID, keys["aliyun"], officers, sign_names=(SIGN,),
        voice_templates=ALIYUN_VOICE, show_numbers=(SHOW,), clock=clock,
        voice_report_url=f"{hooks}/voice-aliyun/{hook}/voice-report",
        voice_call_report_url=f"{hooks}/voice-aliyun/{hook}/voice-call-report")
    tencent = TencentSimulator(
        TENCENT_SECRET_ID, keys["tencent"], officers, sdk_app_id=TENCENT_APP,
        sign_names=(SIGN,), sms_templates=TENCENT_SMS, voice_templates=TENCENT_VOICE,
        sms_var_max=20, voice_var_max=20, clock=clock,
        sms_status_url=f"{hooks}/sms/{hook}/sms-status",
        sms_reply_url=f"{hooks}/sms/{hook}/sms-reply",
        voice_url=f"{hooks}/voice-tencent/{hook}/voice")
    aliyun_at, tencent_at = await aliyun.start(), await tencent.start()
    configs = {**_configs(aliyun_at, tencent_at, keys, time_factor), **common.configs}
    channels = load_channels(configs, base_url=base_url, mqtt_url=mqtt_url)
    speakers = await start_speakers(registry, mqtt_url, officers, common.command_key,
                                    fail_rate=speaker_fail_rate, offline=offline_speakers,
                                    passwords=device_passwords)
    return CnWorld(
        aliyun=aliyun, tencent=tencent, wecom=common.wecom, speakers=speakers,
        channels=channels, configs=configs, servers=[aliyun, tencent],
        routes={"voice": ("voice-aliyun", "voice-tencent")},
        # The providers' defaults, with a margin for the time a request takes to arrive,
        # which a compressed clock stretches as much as it compresses everything else.
        limits={kind: LimitSettings(channels=(name,), preset=kind,
                                    margin_s=MARGIN_REAL_S * time_factor)
                for name, kind in PRESET_OF.items()},
        description=f"Aliyun {aliyun_at} · Tencent Cloud {tencent_at} · WeCom "
                    f"{common.configs['wecom']['api_base']}")
