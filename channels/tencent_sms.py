"""Tencent Cloud SMS (sms 2021-01-11): approved templates, status and reply callbacks or pulls.

SendSms with one number per delivery; Tencent answers per number in SendStatusSet, where a
per-number limit (LimitExceeded.PhoneNumberThirtySecondLimit, ...OneHourLimit,
...DailyLimit) comes as that number's Code while the request itself succeeds. Receipts are
pushed (status callback: a JSON array; reply callback: one object; both answered
`{"result":0}`) or pulled with PullSmsSendStatus and PullSmsReplyStatus, which Tencent
offers for exactly the deployments that cannot take pushes (each receipt is pulled once).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import msgspec
from tencentcloud.sms.v20210111 import models as sms_models
from tencentcloud.sms.v20210111.sms_client_async import SmsClient

from channels.cn_common import CloudChannel, SentRef, called_number, e164
from channels.cn_outcomes import classify
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
    ProviderStatus,
    Receipt,
    WebhookHandler,
    mask_phone,
)

ENDPOINT = "sms.tencentcloudapi.com"  # the SDK's, when `endpoint` is not set
BAD_REPLY = {"result": 1, "errmsg": "bad request"}
PULL_LIMIT = 100  # receipts per pull request (Tencent's maximum)


class TencentSmsConfig(TencentConfig, kw_only=True, forbid_unknown_fields=True, frozen=True):
    type: str = "tencent-sms"
    sign_name: str  # the approved signature (签名): the unit the person sees
    # Several messages per delivery only when the account's per-number limits allow them
    # (Tencent's defaults refuse a second message to a number within 30 s).
    max_messages: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.sign_name.strip():
            raise ValueError("sign_name must not be empty")
        if not 1 <= self.max_messages <= 5:
            raise ValueError("max_messages must be between 1 and 5")


class StatusReport(msgspec.Struct):
    sid: str = ""
    mobile: str = ""
    nationcode: str = "86"
    report_status: str = ""
    errmsg: str = ""
    description: str = ""


class ReplyReport(msgspec.Struct):
    mobile: str = ""
    nationcode: str = "86"
    text: str = ""
    time: int | str = ""
    extend: str = ""


class TencentSms(CloudChannel):
    """SMS through Tencent Cloud's SendSms; receipts by callback or by pull."""

    KIND, MEDIUM, CONFIG = "tencent-sms", Medium.SMS, TencentSmsConfig

    def __init__(self, name: str, config: TencentSmsConfig) -> None:
        self.config = config
        self.templates = TemplateSet(name, config.templates, rules(config))
        self._setup(name, config, PROVIDER, rate_per_s=config.rate_per_s,
                    breaker_key=breaker_key(config, ENDPOINT), max_length=min(
                        t.capacity() for t in self.templates.templates) * config.max_messages)
        self._client = SmsClient(credential(config), config.region, profile(config))
        self._replies: list[tuple[str, str, str]] = []  # pulled, not yet applied

    async def send(self, delivery: Delivery) -> Receipt:
        where = f"{self.name}: SMS"
        number = "+86" + called_number(delivery.address, where,
                                       "InvalidParameterValue.IncorrectPhoneNumber")
        ids: list[str] = []
        for message in self.templates.messages(delivery, self.config.max_messages):
            request = sms_models.SendSmsRequest()
            request.PhoneNumberSet = [number]
            request.SmsSdkAppId = self.config.sdk_app_id
            request.SignName = self.config.sign_name
            request.TemplateId = message.template.code
            request.TemplateParamSet = message.as_list()
            request.SessionContext = delivery.id
            response = await call(self._client.SendSms(request), where, delivery.address)
            [status] = response.SendStatusSet or [None]
            if status is None or str(status.Code) != "Ok":
                code = str(status.Code) if status is not None else "NoStatus"
                message_text = str(status.Message or "") if status is not None else ""
                raise classify(code, message_text, f"{where} to {mask_phone(number)}", PROVIDER)
            ids.append(str(status.SerialNo))
            self.receipts.sent(str(status.SerialNo), SentRef(
                delivery.campaign_id, delivery.id, delivery.target_id, delivery.address,
                time.time(), "SendSms", ids[0]))
        return Receipt(provider_id=",".join(ids))

    async def _close(self) -> None:
        await self._client.close()

    # ------------------------------------------------------------------ push

    def webhooks(self, sink: EventSink) -> Sequence[tuple[str, str, WebhookHandler]]:
        rx = self.receipts
        return self.push_routes([
            ("sms-status", StatusReport, lambda r: self._status(sink, r)),
            ("sms-reply", ReplyReport, lambda r: rx.reply(
                sink, e164(r.mobile, r.nationcode), r.text, f"{r.time}|{r.extend}|{r.text}")),
        ], answer_ok(), BAD_REPLY)

    async def _status(self, sink: EventSink, r: StatusReport) -> None:
        ok = r.report_status.upper() == "SUCCESS"
        status = ProviderStatus.DELIVERED if ok else ProviderStatus.UNDELIVERED
        await self.receipts.status(sink, r.sid, status, f"{r.errmsg} {r.description}".strip())

    # ------------------------------------------------------------------ pull

    async def _pull_into(self, sink: EventSink) -> None:
        """Pull the statuses and replies Tencent holds for this app (each is pulled once)."""
        where = f"{self.name}: pull"
        request = sms_models.PullSmsSendStatusRequest()
        request.Limit, request.SmsSdkAppId = PULL_LIMIT, self.config.sdk_app_id
        statuses = await call(self._client.PullSmsSendStatus(request), where, "")
        for s in statuses.PullSmsSendStatusSet or []:
            ok = str(s.ReportStatus).upper() == "SUCCESS"
            await self.receipts.status(
                sink, str(s.SerialNo),
                ProviderStatus.DELIVERED if ok else ProviderStatus.UNDELIVERED,
                str(s.Description or s.ReportStatus or ""))
        replies_req = sms_models.PullSmsReplyStatusRequest()
        replies_req.Limit, replies_req.SmsSdkAppId = PULL_LIMIT, self.config.sdk_app_id
        replies = await call(self._client.PullSmsReplyStatus(replies_req), where, "")
        for r in replies.PullSmsReplyStatusSet or []:
            number = str(r.PhoneNumber or "") or e164(str(r.SubscriberNumber or ""),
                                                    str(r.CountryCode or "86"))
            self._replies.append((e164(number), str(r.ReplyContent or ""),
                                  f"{r.ReplyTime}|{r.ExtendCode}|{r.ReplyContent}"))
        # A pulled reply is not served again: one the engine could not store now is kept
        # here and applied at the next pull (a confirmation is never dropped).
        held, self._replies = self._replies, []
        for i, (number, text, key) in enumerate(held):
            try:
                await self.receipts.reply(sink, number, text, key)
            except Exception:
                self._replies.extend(held[i:])
                raise


__all__ = ["TencentSms", "TencentSmsConfig"]
