"""Device reports waiting for the engine cost little memory and little collector time."""

from __future__ import annotations

import asyncio
import gc

import aiomqtt
from loudspeaker_kit import RecordingSink, ack_for, channel, delivery
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from channels.loudspeaker_payload import AckState, encode, parse_broker_url, properties
from tests.waits import until
from warnbus.plugin import ProviderStatus

REPORTS = 300


class HeldSink(RecordingSink):
    """A sink that takes no report until released (an engine busy with a first wave)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()

    async def delivery_status(self, campaign_id: str, delivery_id: str, target_id: str,
                              status: ProviderStatus, detail: str = "") -> None:
        await self.release.wait()
        await super().delivery_status(campaign_id, delivery_id, target_id, status, detail)


def live(cls: type) -> int:
    """Instances of `cls` still reachable: cyclic garbage (the publisher's sent messages'
    Properties, say) is collected first, or a late collection under load would count it."""
    gc.collect()
    return sum(1 for o in gc.get_objects() if isinstance(o, cls))


async def test_waiting_reports_are_kept_without_their_mqtt5_properties(
        mqtt_url: str, prefix: str) -> None:
    """paho gives each message's Properties ~60 objects of lookup tables of its own: ~900
    reports waiting in a first wave made every full collection of the engine ~40 ms longer,
    a stall of its event loop. What waits is kept without them (nothing reads them)."""
    sink = HeldSink()
    ch = channel(mqtt_url, prefix)
    await ch.start(sink)
    before = live(Properties)
    try:
        await until(lambda: ch.connected, "connect")
        broker = parse_broker_url(mqtt_url)
        ds = [delivery(f"dev:d{i}") for i in range(REPORTS)]
        async with aiomqtt.Client(broker.host, broker.port,
                                  protocol=aiomqtt.ProtocolVersion.V5) as speaker:
            for i, d in enumerate(ds):
                props = properties(PacketTypes.PUBLISH, UserProperty=[("fw", "1.2.3")])
                await speaker.publish(f"{prefix}/dev/d{i}/ack",
                                      encode(ack_for(d, AckState.RECEIVED)), qos=0,
                                      properties=props)
            await until(lambda: live(aiomqtt.Message) >= REPORTS, "the reports queued")
        assert live(Properties) - before < 20
        sink.release.set()
        await until(lambda: len(sink.statuses) == REPORTS, "every report handled")
    finally:
        sink.release.set()
        await ch.aclose()
