"""Aliyun voice (语音服务, dyvmsapi 2017-05-25): IvrCall with "按1确认", SingleCallByTts.

Warnings, updates, redials and escalations are IVR calls (IvrCall): the approved TTS template
is read `play_times` times and key 1 (MenuKeyMap) plays the `confirm_code` template and
confirms. Cancels and notices want no key: a TTS call (SingleCallByTts).

How a call ended comes pushed (VoiceCallReport: the key press as status 300000 with its dtmf,
the 智能状态码 of voicemail or forwarding; VoiceReport: the final record with status code,
callee and dtmf), answered `{"code":0}`; or pulled with QueryCallDetailByCallId, which gives
the final state but no key: with `receipts = "pull"` a call reports how it ended, and the
confirmation must come another way (SMS reply, WeCom, link). MNS is not used for the same
reason as for SMS (see channels/aliyun_sms.py).

After the 1 a person may report by keys (the `confirm_code` template asks, e.g. "已确认，
谢谢。如需报送：已到岗请按2，零报告请按3，已转移人数请先按4再输入人数，以井号键结束。"):
`dtmf` is every key of the call, the 1 and then the report's ("1435#": 转移 35 人), read by
`keypad_report` as every voice channel reads it. A key report whose keys do not end with #
may be only the first of them: it confirms, and the call record (VoiceReport, at the end of
the call) gives the report, kept once per call.

The outcome of a call is one of `cn_outcomes.CallOutcome`: a voicemail or forwarded call
that "heard it in full" is a missed call, never answered.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import msgspec
import structlog
from alibabacloud_dyvmsapi20170525 import models as vms_models
from alibabacloud_dyvmsapi20170525.client import Client as DyvmsClient

from channels.aliyun_common import (
    PROVIDER,
    VOICE_RULES,
    AliyunConfig,
    breaker_key,
    call,
    params_json,
    runtime,
    sdk_config,
)
from channels.cn_common import CloudChannel, SentRef, called_number, e164
from channels.cn_outcomes import (
    ALIYUN_KEY_EVENT,
    ALIYUN_MACHINE_CODES,
    aliyun_call_outcome,
)
from channels.cn_receipts import CONFIRM_KEY, END_KEY
from channels.cn_templates import TemplateSet
from warnbus.plugin import (
    Delivery,
    EventSink,
    Medium,
    Receipt,
    WebhookHandler,
)

log = structlog.get_logger("channels.aliyun_voice")

ENDPOINT = "dyvmsapi.aliyuncs.com"
OK_REPLY = {"code": 0, "msg": "成功"}
BAD_REPLY = {"code": 1, "msg": "格式错误"}
#: QueryCallDetailByCallId's ProdId per API that placed the call.
PROD_IDS = {"IvrCall": "11000000300005", "SingleCallByTts": "11010000138001"}
OUT_ID_BYTES = 15  # OutId is 1-15 bytes: a delivery id's first hex digits, for the log
_MACHINE_MEMORY = 8192


class AliyunVoiceConfig(AliyunConfig, kw_only=True, forbid_unknown_fields=True, frozen=True):
    type: str = "aliyun-voice"
    called_show_number: str  # the purchased number shown to the called person (IvrCall)
    confirm_code: str  # TTS template read after key 1, e.g. "已确认，谢谢。"
    play_times: int = 2  # readings of the warning (1-3)
    key_timeout_s: int = 10  # how long to wait for the key after the reading

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.called_show_number.strip() or not self.confirm_code.strip():
            raise ValueError("called_show_number and confirm_code must not be empty")
        if not (1 <= self.play_times <= 3 and 1 <= self.key_timeout_s <= 60):
            raise ValueError("play_times 1..3, key_timeout_s 1..60")


class VoiceReport(msgspec.Struct):
    call_id: str = ""
    status_code: str = ""
    status_msg: str = ""
    callee: str = ""
    dtmf: str | None = None
    out_id: str | None = None
    duration: str | int | None = None
    hangup_direction: str | None = None
    smart_status_code: str | None = None


class VoiceCallReport(msgspec.Struct):
    call_id: str = ""
    status_code: str = ""
    smart_status_code: str | None = None
    dtmf: str | None = None
    out_id: str | None = None
    status_time: str = ""


class AliyunVoice(CloudChannel):
    """Voice calls through Aliyun: key 1 confirms; outcomes from the call reports."""

    KIND, MEDIUM, CONFIG = "aliyun-voice", Medium.VOICE, AliyunVoiceConfig

    def __init__(self, name: str, config: AliyunVoiceConfig) -> None:
        self.config = config
        self.templates = TemplateSet(name, config.templates, VOICE_RULES)
        self._setup(name, config, PROVIDER, rate_per_s=config.rate_per_s,
                    breaker_key=breaker_key(config, ENDPOINT),
                    max_length=min(t.capacity() for t in self.templates.templates))
        self._client = DyvmsClient(sdk_config(config, ENDPOINT))
        self._machines: OrderedDict[str, str] = OrderedDict()  # call id -> 智能状态码

    async def send(self, delivery: Delivery) -> Receipt:
        number = called_number(delivery.address, f"{self.name}: call",
                               "isv.MOBILE_NUMBER_ILLEGAL")
        [message] = self.templates.messages(delivery, 1)
        c = self.config
        out_id = delivery.id.removeprefix("dl_")[:OUT_ID_BYTES]
        if delivery.asks_confirmation:  # an IVR call takes the key; a TTS call asks nothing
            api = "IvrCall"
            ivr = vms_models.IvrCallRequest(
                called_number=number, called_show_number=c.called_show_number,
                start_code=message.template.code, start_tts_params=params_json(
                    message.as_dict()),
                menu_key_map=[vms_models.IvrCallRequestMenuKeyMap(key=CONFIRM_KEY,
                                                                  code=c.confirm_code)],
                play_times=c.play_times, timeout=c.key_timeout_s * 1000, out_id=out_id)
            pending: Any = self._client.ivr_call_with_options_async(ivr, runtime())
        else:
            api = "SingleCallByTts"
            tts = vms_models.SingleCallByTtsRequest(
                called_number=number, called_show_number=c.called_show_number,
                tts_code=message.template.code, tts_param=params_json(message.as_dict()),
                play_times=c.play_times, out_id=out_id)
            pending = self._client.single_call_by_tts_with_options_async(tts, runtime())
        response = await call(pending, f"{self.name}: {api}", delivery.address)
        call_id = str(response.body.call_id or "")
        self.receipts.sent(call_id, SentRef(delivery.campaign_id, delivery.id, delivery.target_id,
                                       delivery.address, time.time(), api))
        return Receipt(provider_id=call_id)

    # ------------------------------------------------------------------ push

    def webhooks(self, sink: EventSink) -> Sequence[tuple[str, str, WebhookHandler]]:
        return self.push_routes([
            ("voice-report", VoiceReport, lambda r: self._final(sink, r)),
            ("voice-call-report", VoiceCallReport, lambda r: self._progress(sink, r)),
        ], OK_REPLY, BAD_REPLY)

    async def _progress(self, sink: EventSink, r: VoiceCallReport) -> None:
        if r.smart_status_code in ALIYUN_MACHINE_CODES:
            self._machines[r.call_id] = r.smart_status_code or ""
            while len(self._machines) > _MACHINE_MEMORY:
                self._machines.popitem(last=False)
        if r.status_code == ALIYUN_KEY_EVENT and CONFIRM_KEY in (r.dtmf or ""):
            keys = r.dtmf or ""
            # A report's keys end with #: before it they may be only the first of them (the
            # call record, at the end of the call, has them all).
            await self.receipts.keypad(sink, r.call_id, "",
                                       keys if keys.endswith(END_KEY) else CONFIRM_KEY)

    async def _final(self, sink: EventSink, r: VoiceReport) -> None:
        if CONFIRM_KEY in (r.dtmf or ""):
            # The key press may come only here (its progress report lost or not subscribed);
            # the record has every key of the call.
            await self.receipts.keypad(sink, r.call_id, e164(r.callee) if r.callee else "",
                                       r.dtmf or "")
            return
        smart = r.smart_status_code or self._machines.get(r.call_id, "")
        outcome, detail = aliyun_call_outcome(r.status_code, smart)
        await self.receipts.outcome(sink, r.call_id, outcome, detail)

    # ------------------------------------------------------------------ pull

    async def _pull_into(self, sink: EventSink) -> None:
        """Ask QueryCallDetailByCallId about every call still open."""
        await self.receipts.pull_each(lambda call_id, ref: self._query(sink, call_id, ref))

    async def _query(self, sink: EventSink, call_id: str, ref: SentRef) -> None:
        request = vms_models.QueryCallDetailByCallIdRequest(
            call_id=call_id, prod_id=PROD_IDS.get(ref.api, PROD_IDS["IvrCall"]),
            query_date=int(ref.at * 1000))
        response = await call(self._client.query_call_detail_by_call_id_with_options_async(
            request, runtime()), f"{self.name}: QueryCallDetailByCallId", ref.address)
        raw = response.body.data
        if not raw:
            return  # not finished yet
        try:
            detail = msgspec.json.decode(raw) if isinstance(raw, str | bytes) else raw
        except msgspec.DecodeError:
            log.warning("call detail not understood", channel=self.name, call_id=call_id)
            return
        state = str(detail.get("state") or "") if isinstance(detail, dict) else ""
        if state:
            outcome, text = aliyun_call_outcome(state)
            await self.receipts.outcome(sink, call_id, outcome, text)


__all__ = ["AliyunVoice", "AliyunVoiceConfig"]
