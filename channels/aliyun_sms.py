"""Aliyun SMS (短信服务, dysmsapi 2017-05-25): approved templates, receipts, replies.

Sends each message with SendSms (one number per delivery; a text longer than a template
carries goes as several messages when `max_messages` allows). Receipts come either pushed
(HTTP 批量推送: SmsReport and SmsUp JSON arrays to our secret paths, answered `{"code":0}`)
or pulled: QuerySendDetails asks about each message still open. Pull uses the same SDK and
the same AccessKey over HTTPS, which an intranet (政务外网) deployment can reach through its
one outbound proxy; Aliyun's other pull channel, an MNS queue, needs a second product, SDK,
endpoint and credential to be opened, and gives nothing QuerySendDetails does not — except
SmsUp: replies cannot be pulled this way, so with `receipts = "pull"` SMS replies do not
confirm (voice keys, WeCom and ack links still do).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone

import msgspec
import structlog
from alibabacloud_dysmsapi20170525 import models as sms_models
from alibabacloud_dysmsapi20170525.client import Client as DysmsClient

from channels.aliyun_common import (
    PROVIDER,
    SMS_RULES,
    AliyunConfig,
    breaker_key,
    call,
    params_json,
    runtime,
    sdk_config,
)
from channels.cn_common import CloudChannel, SentRef, called_number, e164, national_number
from channels.cn_templates import TemplateSet
from warnbus.plugin import (
    Delivery,
    EventSink,
    Medium,
    ProviderStatus,
    Receipt,
    WebhookHandler,
)

log = structlog.get_logger("channels.aliyun_sms")

ENDPOINT = "dysmsapi.aliyuncs.com"
CHINA = timezone(timedelta(hours=8))  # SendDate of QuerySendDetails is Beijing's date
OK_REPLY = {"code": 0, "msg": "成功"}
BAD_REPLY = {"code": 1, "msg": "格式错误"}
_SENT_WAITING, _SENT_FAILED, _SENT_OK = 1, 2, 3  # QuerySendDetails SendStatus


class AliyunSmsConfig(AliyunConfig, kw_only=True, forbid_unknown_fields=True, frozen=True):
    type: str = "aliyun-sms"
    sign_name: str  # the approved signature (签名): the unit the person sees
    # Several messages per delivery only when the account's per-number limits allow them
    # (Aliyun's defaults refuse a second message to a number within a minute).
    max_messages: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.sign_name.strip():
            raise ValueError("sign_name must not be empty")
        if not 1 <= self.max_messages <= 5:
            raise ValueError("max_messages must be between 1 and 5")


class SmsReport(msgspec.Struct):
    biz_id: str = ""
    phone_number: str = ""
    success: bool = False
    err_code: str = ""
    err_msg: str = ""
    out_id: str = ""


class SmsUp(msgspec.Struct):
    phone_number: str = ""
    content: str = ""
    sequence_id: int | str = ""
    send_time: str = ""


class AliyunSms(CloudChannel):
    """SMS through Aliyun's SendSms, receipts pushed to us or pulled by QuerySendDetails."""

    KIND, MEDIUM, CONFIG = "aliyun-sms", Medium.SMS, AliyunSmsConfig

    def __init__(self, name: str, config: AliyunSmsConfig) -> None:
        self.config = config
        self.templates = TemplateSet(name, config.templates, SMS_RULES)
        self._setup(name, config, PROVIDER, rate_per_s=config.rate_per_s,
                    breaker_key=breaker_key(config, ENDPOINT), max_length=min(
                        t.capacity() for t in self.templates.templates) * config.max_messages)
        self._client = DysmsClient(sdk_config(config, ENDPOINT))

    async def send(self, delivery: Delivery) -> Receipt:
        number = called_number(delivery.address, f"{self.name}: SMS", "isv.MOBILE_NUMBER_ILLEGAL")
        ids: list[str] = []
        for message in self.templates.messages(delivery, self.config.max_messages):
            request = sms_models.SendSmsRequest(
                phone_numbers=number, sign_name=self.config.sign_name,
                template_code=message.template.code,
                template_param=params_json(message.as_dict()),
                out_id=delivery.id)
            response = await call(self._client.send_sms_with_options_async(request, runtime()),
                                  f"{self.name}: SMS", delivery.address)
            biz_id = str(response.body.biz_id or "")
            ids.append(biz_id)
            self.receipts.sent(biz_id, SentRef(delivery.campaign_id, delivery.id,
                                               delivery.target_id, delivery.address, time.time(),
                                               "SendSms", ids[0]))
        return Receipt(provider_id=",".join(ids))

    # ------------------------------------------------------------------ push

    def webhooks(self, sink: EventSink) -> Sequence[tuple[str, str, WebhookHandler]]:
        rx = self.receipts
        return self.push_routes([
            ("sms-report", SmsReport, lambda r: self._report(sink, r)),
            ("sms-up", SmsUp, lambda r: rx.reply(sink, e164(r.phone_number), r.content,
                                                 f"{r.sequence_id}|{r.send_time}")),
        ], OK_REPLY, BAD_REPLY)

    async def _report(self, sink: EventSink, r: SmsReport) -> None:
        status = ProviderStatus.DELIVERED if r.success else ProviderStatus.UNDELIVERED
        await self.receipts.status(sink, r.biz_id, status, f"{r.err_code} {r.err_msg}".strip())

    # ------------------------------------------------------------------ pull

    async def _pull_into(self, sink: EventSink) -> None:
        """Ask QuerySendDetails about every message still open."""
        await self.receipts.pull_each(lambda biz_id, ref: self._query(sink, biz_id, ref))

    async def _query(self, sink: EventSink, biz_id: str, ref: SentRef) -> None:
        day = datetime.fromtimestamp(ref.at, CHINA).strftime("%Y%m%d")
        request = sms_models.QuerySendDetailsRequest(
            phone_number=national_number(ref.address), send_date=day, page_size=10,
            current_page=1, biz_id=biz_id)
        response = await call(self._client.query_send_details_with_options_async(
            request, runtime()), f"{self.name}: QuerySendDetails", ref.address)
        dtos = response.body.sms_send_detail_dtos
        for dto in (dtos.sms_send_detail_dto or []) if dtos else []:
            if dto.send_status == _SENT_OK:
                await self.receipts.status(sink, biz_id, ProviderStatus.DELIVERED,
                                           str(dto.err_code or "DELIVERED"))
            elif dto.send_status == _SENT_FAILED:
                await self.receipts.status(sink, biz_id, ProviderStatus.UNDELIVERED,
                                           str(dto.err_code or "FAILED"))


__all__ = ["PROVIDER", "AliyunSms", "AliyunSmsConfig"]
