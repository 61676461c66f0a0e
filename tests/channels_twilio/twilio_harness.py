"""Helpers of the Twilio channel tests (a module with a unique name, imported by the tests).

The webhook side is a small aiohttp app mounting the channel's `webhooks(sink)` under
`/hooks/<name>/`, as the engine's web app does, with a recording EventSink.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from twilio.request_validator import RequestValidator

from channels.sim.officers import OfficerModel
from channels.sim.twilio_sim import TwilioSimulator
from warnbus.domain.models import AckVia, Delivery, DeliveryKind, Level, TargetKind
from warnbus.plugin import Confirmation, ProviderStatus

SID = "AC" + "0" * 32
TOKEN = "test-auth-token-0123456789abcdef"
FROM = "+15005550006"
PHONE = "+8613812345678"

#: Everyone answers at once: for the confirmation paths.
EVERYONE = OfficerModel(responsive=1.0, per_message=1.0, unreachable=0.0, delay_s=(0.01, 0.02))
#: Nobody confirms, everyone reachable.
NOBODY = OfficerModel(responsive=0.0, per_message=0.0, unreachable=0.0, delay_s=(0.01, 0.02))


@dataclass
class RecordingSink:
    """An EventSink that records what the channel hands the engine."""

    statuses: list[tuple[str, str, str, ProviderStatus, str]] = field(default_factory=list)
    confirms: list[tuple[str, str, AckVia, str | None]] = field(default_factory=list)
    replies: list[tuple[str, str, AckVia]] = field(default_factory=list)
    reply_ids: list[str] = field(default_factory=list)
    answer: Confirmation = Confirmation.RECORDED  # what `confirm` answers

    async def delivery_status(self, campaign_id: str, delivery_id: str, target_id: str,
                              status: ProviderStatus, detail: str = "") -> None:
        self.statuses.append((campaign_id, delivery_id, target_id, status, detail))

    async def confirm(self, campaign_id: str, person_id: str, via: AckVia,
                      delivery_id: str | None = None) -> Confirmation:
        self.confirms.append((campaign_id, person_id, via, delivery_id))
        return self.answer

    async def confirm_from(self, channel: str, address: str, via: AckVia,
                           reply_id: str = "") -> list[str]:
        self.replies.append((channel, address, via))
        self.reply_ids.append(reply_id)
        return ["cmp-1"]

    @property
    def touched(self) -> bool:
        return bool(self.statuses or self.confirms or self.replies)


@dataclass
class Env:
    channel: Any  # TwilioSms | TwilioVoice
    sim: TwilioSimulator
    sink: RecordingSink
    hooks: str  # public base of the channel's webhooks
    http: aiohttp.ClientSession

    async def post_signed(self, path: str, params: dict[str, str], *, token: str = TOKEN,
                          signed_params: dict[str, str] | None = None,
                          signed_url: str | None = None) -> aiohttp.ClientResponse:
        """POST as Twilio would; `signed_*` sign something other than what is sent."""
        url = f"{self.hooks}/{path}"
        sig = RequestValidator(token).compute_signature(
            signed_url or url, params if signed_params is None else signed_params)
        resp = await self.http.post(url, data=params, headers={"X-Twilio-Signature": sig})
        await resp.read()
        return resp


def delivery(text: str = "【红色预警】暴雨红色预警。回复1确认收到", *, address: str = PHONE,
             channel: str = "sms", ack_url: str | None = None,
             kind: DeliveryKind = DeliveryKind.WARNING, confirm: bool | None = None) -> Delivery:
    return Delivery(
        id="dl_1", campaign_id="cmp-1", alert_id="al_1", target_id="p-1",
        target_kind=TargetKind.PERSON, channel=channel, step=0, kind=kind,
        level=Level.RED, address=address, text=text, created_at=0.0, ack_url=ack_url,
        confirm=confirm)


EnvFactory = Callable[..., Awaitable[Env]]
