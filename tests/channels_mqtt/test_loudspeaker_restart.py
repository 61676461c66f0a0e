"""Broker restarts: the channel and the speakers reconnect, re-subscribe and carry on."""

from __future__ import annotations

import asyncio

import pytest
from loudspeaker_kit import AREA_A, KEY, RecordingSink, channel, delivery

from channels.sim.speakers import SpeakerFleet
from tests.waits import until
from warnbus.errors import TransientChannelError
from warnbus.runtime.services import ManagedService

pytestmark = pytest.mark.timeout(40)

PREFIX = "wb/v1"  # the broker is this test's own


@pytest.mark.parametrize("keep_state", [True, False], ids=["persistent", "state-wiped"])
async def test_channel_survives_a_broker_restart(
    fresh_mosquitto_service: ManagedService, sink: RecordingSink, keep_state: bool,
) -> None:
    broker = fresh_mosquitto_service
    ch = channel(broker.url, PREFIX)
    fleet = SpeakerFleet(broker.url, [("r1", AREA_A), ("r2", AREA_A)], command_key=KEY, play_s=(0.05, 0.1),
                         topic_prefix=PREFIX, reconnect_max_s=0.5)
    await ch.start(sink)
    await fleet.start()
    try:
        before = delivery(AREA_A, alert="al_before")
        await ch.send(before)
        await until(lambda: sink.finished(before.id) == {"dev:r1", "dev:r2"}, "acks")

        await asyncio.to_thread(broker.stop)
        await until(lambda: not ch.connected, "the channel to notice the outage")
        with pytest.raises(TransientChannelError):
            await ch.send(delivery(AREA_A, alert="al_during"))
        if not keep_state:  # no sessions survive: only re-subscribing brings acks back
            (broker.data_dir / "mosquitto.db").unlink(missing_ok=True)
        await asyncio.to_thread(broker.start)

        await until(lambda: ch.connected and fleet.is_online("r1")
                         and fleet.is_online("r2"), "reconnects", within=10)
        after = delivery(AREA_A, alert="al_after")
        await ch.send(after)
        await until(lambda: sink.finished(after.id) == {"dev:r1", "dev:r2"},
                         "acks after the restart")
        await until(lambda: len(ch.devices_status()) == 2, "device status again")
    finally:
        await fleet.stop()
        await ch.aclose()
