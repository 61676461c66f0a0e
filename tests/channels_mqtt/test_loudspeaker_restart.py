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
    fleet = SpeakerFleet(broker.url, [("r1", AREA_A), ("r2", AREA_A)], command_key=KEY,
                         play_s=(0.05, 0.1), topic_prefix=PREFIX, reconnect_max_s=0.5)
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


async def test_a_broker_that_lost_its_retained_warnings_gets_them_again(
    fresh_mosquitto_service: ManagedService, sink: RecordingSink,
) -> None:
    """Issue 16, item 3: the broker restarts with its state lost (no persistence, or a crash
    since its last save) while a warning is active; a speaker that was offline meanwhile
    comes online after the restart and still plays it, because the channel publishes the
    active warnings it holds again when it reconnects (on main it never heard of it)."""
    broker = fresh_mosquitto_service
    ch = channel(broker.url, PREFIX)
    fleet = SpeakerFleet(broker.url, [("r1", AREA_A), ("r2", AREA_A)], command_key=KEY,
                         play_s=(0.05, 0.1), topic_prefix=PREFIX, reconnect_max_s=0.5)
    await ch.start(sink)
    await fleet.start()
    try:
        await fleet.drop("r2")  # its network is down while the warning goes out
        warning = delivery(AREA_A, alert="al_active")
        await ch.send(warning)
        await until(lambda: sink.finished(warning.id) == {"dev:r1"}, "r1 plays")
        await asyncio.to_thread(broker.stop)
        await until(lambda: not ch.connected, "the channel to notice the outage")
        (broker.data_dir / "mosquitto.db").unlink(missing_ok=True)
        await asyncio.to_thread(broker.start)
        await until(lambda: ch.connected, "the channel to reconnect", within=10)
        await until(lambda: fleet.is_online("r1"), "r1 to reconnect", within=10)
        await fleet.revive("r2")
        await until(lambda: sink.finished(warning.id) == {"dev:r1", "dev:r2"},
                         "r2 plays the active warning after the restart", within=10)
        assert len(fleet.played["r1"]) == 1, "r1 played it once, not again"
    finally:
        await fleet.stop()
        await ch.aclose()
