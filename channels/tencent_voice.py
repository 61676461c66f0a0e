"""Tencent Cloud voice (vms 2020-09-02): SendTtsVoice, with the key press as the confirmation.

The approved TTS template is read `play_times` times; pressing 1 is reported by the key-press
callback (voicekey_callback) and confirms. The keys after the 1 in the same push are a report
(the template asks, e.g. "确认收到请按1；按1后如需报送：已到岗按2，零报告按3，已转移人数先按4
再输入人数，以井号键结束。"; "1435#": 转移 35 人), read by `keypad_report` as every voice channel
reads it and kept once per call; keys pushed without the 1 report nothing.

How the call ended comes as voiceprompt_callback (result 0 answered, 1 not answered, 2
failed) or voice_failure_callback (with the reason: 空号 and 停机 are permanent). All are
answered `{"result":0}`. Tencent tells neither voicemail nor forwarding apart from a person
who answered: such a call is "answered" without the key, which confirms nothing, so the 叫应
goes on.

VMS has no pull API: `receipts = "pull"` is refused at start-up. Per-number limits
(LimitExceeded.DeliveryFrequencyLimit: by default 1 call per 30 s, 2 per 10 minutes, 3 a day,
1 at night) are refused at the send and raised as LimitedChannelError.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import msgspec
from tencentcloud.common.common_client_async import CommonClient
from tencentcloud.vms.v20200902 import models as vms_models

from channels.cn_common import CloudChannel, SentRef, called_number, e164
from channels.cn_outcomes import CallOutcome, tencent_failure_outcome
from channels.cn_templates import TemplateSet
from channels.tencent_common import (
    PROVIDER,
    TencentConfig,
    answer_ok,
    breaker_key,
    call,
    credential,
    profile,
    rules,
)
from warnbus.plugin import (
    Delivery,
    EventSink,
    Medium,
    Receipt,
    WebhookHandler,
)

SERVICE, VERSION = "vms", "2020-09-02"
ENDPOINT = "vms.tencentcloudapi.com"  # the SDK's, when `endpoint` is not set
BAD_REPLY = {"result": 1, "errmsg": "bad request"}
_PROMPT = {"0": (CallOutcome.HEARD, "接听未按键"), "1": (CallOutcome.RETRY, "用户未接听"),
           "2": (CallOutcome.RETRY, "呼叫异常")}


class TencentVoiceConfig(TencentConfig, kw_only=True, forbid_unknown_fields=True, frozen=True):
    type: str = "tencent-voice"
    play_times: int = 2  # readings of the warning (1-3)
    # Characters per TTS variable: set it to the account's value (the console shows it).
    variable_max_chars: int = 20

    def __post_init__(self) -> None:
        if self.receipts == "pull":
            raise ValueError("Tencent voice has no pull API: receipts must be 'push'")
        super().__post_init__()
        if not 1 <= self.play_times <= 3:
            raise ValueError("play_times must be between 1 and 3")


class VoiceCallback(msgspec.Struct):
    callid: str = ""
    mobile: str = ""
    nationcode: str = "86"
    result: str | int = ""
    keypress: str = ""
    failure_code: int | str = ""
    failure_reason: str = ""


class Envelope(msgspec.Struct):
    voiceprompt_callback: VoiceCallback | None = None
    voicekey_callback: VoiceCallback | None = None
    voice_failure_callback: VoiceCallback | None = None


class TencentVoice(CloudChannel):
    """Voice calls through Tencent Cloud's SendTtsVoice; key 1 confirms."""

    KIND, MEDIUM, CONFIG = "tencent-voice", Medium.VOICE, TencentVoiceConfig

    def __init__(self, name: str, config: TencentVoiceConfig) -> None:
        self.config = config
        self.templates = TemplateSet(name, config.templates, rules(config))
        self._setup(name, config, PROVIDER, rate_per_s=config.rate_per_s,
                    breaker_key=breaker_key(config, ENDPOINT),
                    max_length=min(t.capacity() for t in self.templates.templates))
        self._client = CommonClient(SERVICE, VERSION, credential(config), config.region,
                                    profile(config))

    async def send(self, delivery: Delivery) -> Receipt:
        where = f"{self.name}: call"
        number = "+86" + called_number(delivery.address, where,
                                       "InvalidParameterValue.CalledNumberVerifyFail")
        [message] = self.templates.messages(delivery, 1)
        params = {"TemplateId": message.template.code, "TemplateParamSet": message.as_list(),
                  "CalledNumber": number, "VoiceSdkAppid": self.config.sdk_app_id,
                  "PlayTimes": self.config.play_times, "SessionContext": delivery.id}
        response = await call(self._client.call_and_deserialize(
            "SendTtsVoice", params, vms_models.SendTtsVoiceResponse), where, delivery.address)
        call_id = str(response.SendStatus.CallId if response.SendStatus else "")
        self.receipts.sent(call_id, SentRef(delivery.campaign_id, delivery.id,
                                            delivery.target_id, delivery.address, time.time(),
                                            "SendTtsVoice"))
        return Receipt(provider_id=call_id)

    async def _close(self) -> None:
        await self._client.close()

    # ------------------------------------------------------------------ push

    def webhooks(self, sink: EventSink) -> Sequence[tuple[str, str, WebhookHandler]]:
        return self.push_routes([("voice", Envelope, lambda e: self._on_event(sink, e))],
                                answer_ok(), BAD_REPLY)

    async def _on_event(self, sink: EventSink, e: Envelope) -> None:
        rx = self.receipts
        if e.voicekey_callback is not None:
            k = e.voicekey_callback
            # The keys of the push: 1, then a report's (one key scheme for every call).
            await rx.keypad(sink, k.callid, e164(k.mobile, k.nationcode) if k.mobile else "",
                            k.keypress)
        if e.voice_failure_callback is not None:
            f = e.voice_failure_callback
            outcome, detail = tencent_failure_outcome(f.failure_code, f.failure_reason)
            await rx.outcome(sink, f.callid, outcome, detail)
        if e.voiceprompt_callback is not None:
            p = e.voiceprompt_callback
            if rx.acted(p.callid, "key"):
                return  # the key press came first: the confirmation says it all
            outcome, detail = _PROMPT.get(str(p.result), (CallOutcome.RETRY, "未知结果"))
            await rx.outcome(sink, p.callid, outcome, f"{detail} (result {p.result})")


__all__ = ["TencentVoice", "TencentVoiceConfig"]
