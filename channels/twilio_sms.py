"""Twilio SMS: send warnings, take status callbacks, and count inbound replies as acks.

A reply of "1", "收到", "确认" (also full-width, traditional, with punctuation) confirms
every open campaign of the sender's number. A delivered SMS is not a confirmation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import structlog
from aiohttp import web

from channels.sms_replies import CONFIRM_REPLIES, is_confirmation, normalize_reply
from channels.textfit import fit_sentences
from channels.twilio_common import (
    EMPTY_TWIML,
    SignedWebhooks,
    TwilioConfig,
    build_client,
    guarded,
    ids_of,
    ids_query,
    twiml_response,
)
from warnbus.plugin import (
    AckVia,
    Address,
    ChannelInfo,
    Delivery,
    EventSink,
    Medium,
    ProviderStatus,
    Receipt,
    WebhookHandler,
    breaker_key_for,
    load_config,
    mask_phone,
    parse_report,
    secret_fields_of,
)

log = structlog.get_logger("channels.twilio_sms")
# Re-exported: the reply rules were born here and are still imported from here.
__all__ = ["CONFIRM_REPLIES", "TwilioSms", "fit_sms", "is_confirmation", "normalize_reply",
           "sms_segments"]

GSM_SINGLE, GSM_PART = 160, 153  # septets in one SMS / in each part of a long one
UCS2_SINGLE, UCS2_PART = 70, 67  # UTF-16 units: any Chinese character forces UCS-2
_GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    "ÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
_GSM_EXT = frozenset("^{}\\[~]|€\f")  # two septets each (escape + char)
_GSM = _GSM_BASIC | _GSM_EXT

# Error codes that will not change on a retry (Twilio REST API, Messages resource).
SMS_PERMANENT: Mapping[int, str] = {
    21211: "the number is not a valid phone number",
    21214: "the number cannot be reached",
    21408: "SMS to this region is not enabled on the Twilio account (geo permissions)",
    21602: "the message body is empty",
    21606: "from_number cannot send SMS: check from_number",
    21610: "the recipient opted out (replied STOP); they must reply START to receive SMS again",
    21612: "Twilio cannot route from from_number to this number",
    21614: "the number is not a mobile number",
    21617: "the message is too long",
}
# Status-callback ErrorCodes: the handset could not be reached (UNDELIVERED) versus the
# message was refused for good (FAILED: filtered, blocked, opted out).
_UNREACHABLE = frozenset({30003, 30005, 30006, 30008})
_REFUSED = frozenset({21610, 30004, 30007, 30034})
_STATUS = {
    "accepted": ProviderStatus.QUEUED, "scheduled": ProviderStatus.QUEUED,
    "queued": ProviderStatus.QUEUED, "sending": ProviderStatus.QUEUED,
    "sent": ProviderStatus.SENT, "delivered": ProviderStatus.DELIVERED,
    "read": ProviderStatus.DELIVERED,  # read is not an ack: acks come from replies only
    "undelivered": ProviderStatus.UNDELIVERED, "failed": ProviderStatus.FAILED,
    "canceled": ProviderStatus.FAILED,
}



def is_gsm7(text: str) -> bool:
    return _GSM.issuperset(text)


def sms_units(text: str) -> int:
    """Length as the network counts it: GSM-7 septets, or UTF-16 units for UCS-2."""
    return _units(text, is_gsm7(text))


def _units(text: str, gsm: bool) -> int:
    if gsm:  # (counted in C: this runs for each candidate while a long text is fitted)
        return len(text) + sum(text.count(ch) for ch in _GSM_EXT)
    return len(text.encode("utf-16-le")) // 2


def sms_segments(text: str) -> int:
    """How many SMS parts `text` is sent as (70 / 67 per part for Chinese)."""
    gsm = is_gsm7(text)
    units = _units(text, gsm)
    single, part = (GSM_SINGLE, GSM_PART) if gsm else (UCS2_SINGLE, UCS2_PART)
    return 1 if units <= single else math.ceil(units / part)


def max_chars(max_segments: int) -> int:
    """The most characters `max_segments` parts can carry (GSM-7, one septet each)."""
    return GSM_SINGLE if max_segments == 1 else max_segments * GSM_PART


def fit_sms(text: str, max_segments: int, link: str | None = None) -> str:
    """Shorten `text` to at most `max_segments` parts, keeping headline, ack text and link."""
    return fit_sentences(text, lambda s: sms_segments(s) <= max_segments, keep=link,
                         bound=max_chars(max_segments))


class TwilioSmsConfig(TwilioConfig, kw_only=True, forbid_unknown_fields=True, frozen=True):
    type: str = "twilio-sms"
    max_segments: int = 6  # longer texts are shortened at sentence boundaries

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 1 <= self.max_segments <= 10:
            raise ValueError("max_segments must be between 1 and 10")


class TwilioSms:
    """SMS through Twilio's Messages API, with signed status and inbound webhooks."""

    def __init__(self, name: str, config: TwilioSmsConfig) -> None:
        self.name = name
        self.config = config
        self.info = ChannelInfo(
            kind="twilio-sms", provider="twilio", medium=Medium.SMS, address=Address.PHONE,
            rate_per_s=config.rate_per_s,
            breaker_key=breaker_key_for(config, "twilio", config.account_sid, config.api_base),
            # Chinese characters in the configured parts
            max_length=UCS2_SINGLE if config.max_segments == 1 else (
                config.max_segments * UCS2_PART),
            secret_fields=secret_fields_of(TwilioSmsConfig))
        self._client, self._http = build_client(config)
        self._hooks = SignedWebhooks(name, config.callback_url, config.auth_token.reveal())

    @classmethod
    def from_config(cls, name: str, raw: Mapping[str, Any]) -> TwilioSms:
        return cls(name, load_config(TwilioSmsConfig, name, raw))

    def __repr__(self) -> str:
        return f"TwilioSms({self.name!r})"

    async def send(self, delivery: Delivery) -> Receipt:
        body = fit_sms(delivery.text, self.config.max_segments, delivery.ack_url)
        callback = (f"{self._hooks.base}/status?"
                    + ids_query(delivery.campaign_id, delivery.id, delivery.target_id))
        message = await guarded(
            self._client.messages.create_async(
                to=delivery.address, from_=self.config.from_number, body=body,
                status_callback=callback),
            f"{self.name}: SMS", delivery.address, SMS_PERMANENT)
        return Receipt(provider_id=str(message.sid))

    async def aclose(self) -> None:
        await self._http.close()

    def webhooks(self, sink: EventSink) -> Sequence[tuple[str, str, WebhookHandler]]:
        async def status(request: web.Request, form: Mapping[str, str]) -> web.Response:
            return await self._on_status(sink, request, form)

        async def inbound(request: web.Request, form: Mapping[str, str]) -> web.Response:
            return await self._on_inbound(sink, form)

        return [("POST", "status", self._hooks.wrap("status", status)),
                ("POST", "inbound", self._hooks.wrap("inbound", inbound))]

    async def _on_status(
        self, sink: EventSink, request: web.Request, form: Mapping[str, str]
    ) -> web.Response:
        ids = ids_of(request.query)
        raw = form.get("MessageStatus") or form.get("SmsStatus") or ""
        status = _STATUS.get(raw)
        if ids is None or status is None:
            log.warning("sms status callback not understood", channel=self.name, status=raw)
            return twiml_response(EMPTY_TWIML)  # 200: Twilio must not retry
        code = form.get("ErrorCode", "")
        if status in (ProviderStatus.FAILED, ProviderStatus.UNDELIVERED) and code.isdigit():
            if int(code) in _UNREACHABLE:
                status = ProviderStatus.UNDELIVERED
            elif int(code) in _REFUSED:
                status = ProviderStatus.FAILED
        detail = f"{raw} (Twilio {code})" if code else raw
        # Out of order (delivered before sent) is fine: the engine never moves backwards.
        await sink.delivery_status(*ids, status, detail)
        return twiml_response(EMPTY_TWIML)

    async def _on_inbound(self, sink: EventSink, form: Mapping[str, str]) -> web.Response:
        sender, body = form.get("From", ""), form.get("Body", "")
        if sender and is_confirmation(body):
            # Deduplicated by the message's id: a resent (or replayed) reply, answered the
            # same way, confirms nothing more.
            reply_id = form.get("MessageSid") or form.get("SmsSid") or ""
            campaigns = await sink.confirm_from(self.name, sender, AckVia.SMS, reply_id)
            log.info("sms reply confirmed", channel=self.name, phone_masked=mask_phone(sender),
                     campaigns=len(campaigns))
        elif sender and (report := parse_report(body)) is not None:
            reply_id = form.get("MessageSid") or form.get("SmsSid") or ""
            campaigns = await sink.report_from(self.name, sender, AckVia.SMS, report, reply_id)
            log.info("sms reply reported", channel=self.name, phone_masked=mask_phone(sender),
                     kind=report.kind.value, campaigns=len(campaigns))
        else:
            log.info("sms reply is not a confirmation", channel=self.name,
                     phone_masked=mask_phone(sender), length=len(body))
        return twiml_response(EMPTY_TWIML)
