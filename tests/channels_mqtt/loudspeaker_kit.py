"""Helpers of the loudspeaker tests: a recording sink, deliveries, raw MQTT (waits: tests.waits)."""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aiomqtt

from channels.loudspeaker import Loudspeakers
from channels.loudspeaker_payload import AckState, SpeakerAck, parse_broker_url
from warnbus.domain.models import AckVia, Delivery, DeliveryKind, Level, TargetKind, delivery_id_for
from warnbus.plugin import ProviderStatus

AREA_A = "430623101001"
AREA_B = "430623101002"
#: The tests' command signing key (test-only): the channel signs with it, speakers verify.
KEY = "test-only-command-key-0123456789abcdef"


@dataclass(frozen=True)
class Status:
    campaign_id: str
    delivery_id: str
    target_id: str
    status: ProviderStatus
    detail: str


@dataclass
class RecordingSink:
    """An EventSink that remembers every call."""

    statuses: list[Status] = field(default_factory=list)

    async def delivery_status(self, campaign_id: str, delivery_id: str, target_id: str,
                              status: ProviderStatus, detail: str = "") -> None:
        self.statuses.append(Status(campaign_id, delivery_id, target_id, status, detail))

    async def confirm(self, campaign_id: str, person_id: str, via: AckVia,
                      delivery_id: str | None = None) -> bool:
        return False

    async def confirm_from(self, channel: str, address: str, via: AckVia,
                           reply_id: str = "") -> list[str]:
        return []

    def seen(self, delivery_id: str) -> dict[str, list[ProviderStatus]]:
        """target id → statuses reported for one delivery, in order."""
        out: dict[str, list[ProviderStatus]] = {}
        for s in self.statuses:
            if s.delivery_id == delivery_id:
                out.setdefault(s.target_id, []).append(s.status)
        return out

    def finished(self, delivery_id: str) -> set[str]:
        """Targets that reported done or failed for the delivery."""
        end = {ProviderStatus.DONE, ProviderStatus.FAILED}
        return {t for t, st in self.seen(delivery_id).items() if end & set(st)}


def delivery(address: str = AREA_A, *, kind: DeliveryKind = DeliveryKind.WARNING,
             level: Level = Level.RED, expires_in: float | None = 600.0,
             campaign: str = "cp_test", alert: str = "al_test", step: int = 0,
             drill: bool = False, text: str = "【暴雨红色预警】请立即转移。",
             channel: str = "loudspeaker") -> Delivery:
    target = address if address.startswith("dev:") else f"area:{address}"
    now = time.time()
    return Delivery(
        id=delivery_id_for(campaign, alert, target, channel, step),
        campaign_id=campaign, alert_id=alert, target_id=target, target_kind=TargetKind.DEVICE,
        channel=channel, step=step, kind=kind, level=level, address=address, text=text,
        created_at=now, drill=drill, region=None if address.startswith("dev:") else address,
        expires_at=None if expires_in is None else now + expires_in,
    )


def ack_for(d: Delivery, state: AckState, *, device: str = "") -> SpeakerAck:
    """The report a speaker makes of delivery `d` (echoing what binds it to the command)."""
    return SpeakerAck(cmd_id=d.id, campaign_id=d.campaign_id, state=state,
                      at=datetime.now(UTC), alert_id=d.alert_id, step=d.step, device=device)


def channel(url: str, prefix: str, name: str = "loudspeaker", **extra: object) -> Loudspeakers:
    raw: dict[str, object] = {
        "type": "mqtt-loudspeaker", "url": url, "topic_prefix": prefix,
        "client_id": f"t{secrets.token_hex(3)}", "reconnect_min_s": 0.1,
        "reconnect_max_s": 0.5, "publish_timeout_s": 3.0, "command_key": KEY,
    }
    raw.update(extra)
    return Loudspeakers.from_config(name, raw)


async def retained(url: str, topic: str, listen_s: float = 0.5) -> list[bytes]:
    """The retained payloads a new subscriber to `topic` gets (empty list: none)."""
    broker = parse_broker_url(url)
    out: list[bytes] = []
    async with aiomqtt.Client(broker.host, broker.port,
                              protocol=aiomqtt.ProtocolVersion.V5) as client:
        await client.subscribe(topic, qos=1)
        try:
            async with asyncio.timeout(listen_s):
                async for m in client.messages:
                    if m.retain and isinstance(m.payload, bytes):
                        out.append(m.payload)
        except TimeoutError:
            pass
    return out


async def publish(url: str, topic: str, payload: bytes, *, retain: bool = False) -> None:
    broker = parse_broker_url(url)
    async with aiomqtt.Client(broker.host, broker.port,
                              protocol=aiomqtt.ProtocolVersion.V5) as client:
        await client.publish(topic, payload, qos=1, retain=retain)
