"""The loudspeaker channel and the simulated speakers against a real mosquitto (MQTT 5)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from loudspeaker_kit import (
    AREA_A,
    AREA_B,
    KEY,
    RecordingSink,
    ack_for,
    channel,
    delivery,
    publish,
    retained,
)

from channels.loudspeaker import Loudspeakers
from channels.loudspeaker_payload import (
    AckState,
    decode_status,
    encode,
)
from channels.sim.speakers import SpeakerFleet
from tests.waits import until
from warnbus.domain.models import DeliveryKind
from warnbus.errors import PermanentChannelError, TransientChannelError
from warnbus.plugin import DeviceState, ProviderStatus
from warnbus.runtime.services import free_port

pytestmark = pytest.mark.timeout(30)

P = ProviderStatus
FAST = (0.05, 0.1)


@pytest_asyncio.fixture
async def speakers(mqtt_url: str, prefix: str,
                   sink: RecordingSink) -> AsyncIterator[Loudspeakers]:
    ch = channel(mqtt_url, prefix)
    await ch.start(sink)
    await until(lambda: ch.connected, "the channel to connect")
    try:
        yield ch
    finally:
        await ch.aclose()


async def played_next(speakers: Loudspeakers, fleet: SpeakerFleet, device: str) -> list[str]:
    """What `device` played before a command sent to it now, once it plays that one.

    A speaker handles what reaches it in order, and the broker sends the retained copies of a
    subscription before anything published later: when the new command plays, every copy
    that came on (re)connecting has been played or refused (no fixed wait for "nothing")."""
    probe = delivery(f"dev:{device}", campaign="cp_probe", alert="al_probe")
    await speakers.send(probe)
    await until(lambda: probe.id in fleet.played[device], f"{device} to play a new command")
    played = fleet.played[device]
    return played[: played.index(probe.id)]


async def test_one_publish_per_area_reaches_its_speakers_only(
    mqtt_url: str, prefix: str, sink: RecordingSink, speakers: Loudspeakers,
) -> None:
    a = ["a1", "a2", "a3"]
    devices = [(d, AREA_A) for d in a] + [("b1", AREA_B), ("b2", AREA_B)]
    async with SpeakerFleet(mqtt_url, devices, command_key=KEY, play_s=FAST,
                            topic_prefix=prefix) as fleet:
        d = delivery(AREA_A)
        receipt = await speakers.send(d)
        assert receipt.provider_id == d.id
        await until(lambda: sink.finished(d.id) == {f"dev:{x}" for x in a}, "3 playouts")
        for x in a:
            assert sink.seen(d.id)[f"dev:{x}"] == [P.DELIVERED, P.PLAYING, P.DONE]
            assert fleet.played[x] == [d.id]  # the cmd and the active copy: played once
        # Area B's speakers heard nothing of it: the first they play is B's own, sent after.
        to_b = delivery(AREA_B)
        await speakers.send(to_b)
        await until(lambda: sink.finished(to_b.id) == {"dev:b1", "dev:b2"}, "B's playouts")
        assert fleet.played["b1"] == fleet.played["b2"] == [to_b.id]
        assert {s.campaign_id for s in sink.statuses} == {d.campaign_id}
        assert set(sink.seen(d.id)) == {f"dev:{x}" for x in a}


async def test_device_address_and_failed_playout(
    mqtt_url: str, prefix: str, sink: RecordingSink, speakers: Loudspeakers,
) -> None:
    devices = [("c1", AREA_A), ("c2", AREA_A)]
    async with SpeakerFleet(mqtt_url, devices, command_key=KEY, play_s=FAST, fail_rate=1.0,
                            topic_prefix=prefix) as fleet:
        d = delivery("dev:c2", kind=DeliveryKind.REDIAL, step=1)
        await speakers.send(d)
        await until(lambda: sink.finished(d.id) == {"dev:c2"}, "c2 to report")
        assert sink.seen(d.id)["dev:c2"] == [P.DELIVERED, P.PLAYING, P.FAILED]
        assert fleet.played == {"c1": [], "c2": [d.id]}
        # a direct command leaves no retained copy for the area
        assert await retained(mqtt_url, f"{prefix}/area/{AREA_A}/active/+", 0.3) == []


async def test_offline_speaker_catches_up_before_expiry_not_after(
    mqtt_url: str, prefix: str, sink: RecordingSink, speakers: Loudspeakers,
) -> None:
    devices = [("on", AREA_A), ("soon", AREA_A), ("late", AREA_A)]
    async with SpeakerFleet(mqtt_url, devices, command_key=KEY, play_s=FAST,
                            offline=("soon", "late"), topic_prefix=prefix) as fleet:
        d = delivery(AREA_A, expires_in=2.0)
        assert d.expires_at is not None
        await speakers.send(d)
        await fleet.revive("soon")  # back before expiry: the retained copy plays
        await until(lambda: sink.finished(d.id) == {"dev:on", "dev:soon"}, "catch-up")
        assert fleet.played["soon"] == [d.id]
        # A reconnect brings the retained copy again; the same cmd id is not played twice.
        await fleet.drop("soon")
        await fleet.revive("soon")
        assert await played_next(speakers, fleet, "soon") == [d.id]
        # After expiry the broker has dropped the copy, so a speaker back now stays silent.
        await asyncio.sleep(max(0.0, d.expires_at + 1.2 - time.time()))
        assert await retained(mqtt_url, f"{prefix}/area/{AREA_A}/active/+", 0.3) == []
        await fleet.revive("late")
        assert await played_next(speakers, fleet, "late") == []
        assert "dev:late" not in sink.seen(d.id)


async def test_cancel_stops_playback_and_clears_the_retained_copy(
    mqtt_url: str, prefix: str, sink: RecordingSink, speakers: Loudspeakers,
) -> None:
    devices = [("s1", AREA_A), ("s2", AREA_A), ("away", AREA_A), ("other", AREA_B)]
    async with SpeakerFleet(mqtt_url, devices, command_key=KEY, play_s=(30.0, 30.0),
                            offline=("away",), topic_prefix=prefix) as fleet:
        d = delivery(AREA_A)
        other = delivery(AREA_B, campaign="cp_other")
        await speakers.send(d)
        await speakers.send(other)
        playing = {"dev:s1", "dev:s2"}
        await until(lambda: {t for t, st in sink.seen(d.id).items() if P.PLAYING in st}
                         == playing, "playback to start")
        assert len(await retained(mqtt_url, f"{prefix}/area/{AREA_A}/active/+", 0.3)) == 1
        started = time.monotonic()
        c = delivery(AREA_A, kind=DeliveryKind.CANCEL, alert="al_cancel")
        assert (await speakers.send(c)).provider_id == c.id
        await until(lambda: sink.finished(c.id) == playing, "stop to be acked")
        await until(lambda: sink.finished(d.id) == playing, "playback to end")
        assert time.monotonic() - started < 5  # stopped, not played out (30 s)
        assert {s.detail for s in sink.statuses
                if s.delivery_id == d.id and s.status is P.DONE} == {"stopped"}
        assert await retained(mqtt_url, f"{prefix}/area/{AREA_A}/active/+", 0.3) == []
        # Another campaign's warning, elsewhere, is untouched.
        assert len(await retained(mqtt_url, f"{prefix}/area/{AREA_B}/active/+", 0.3)) == 1
        await fleet.revive("away")
        assert await played_next(speakers, fleet, "away") == []


async def test_a_village_put_back_after_its_stop_plays_again(
    mqtt_url: str, prefix: str, sink: RecordingSink, speakers: Loudspeakers,
) -> None:
    """An Update drops the village (stop, with its 解除 text), a later one puts it back: the
    later play of the campaign plays; a play issued before the stop does not."""
    async with SpeakerFleet(mqtt_url, [("s1", AREA_A)], command_key=KEY, play_s=FAST,
                            topic_prefix=prefix) as fleet:
        d = delivery(AREA_A)
        await speakers.send(d)
        await until(lambda: sink.finished(d.id) == {"dev:s1"}, "the warning to play")
        c = delivery(AREA_A, kind=DeliveryKind.CANCEL, alert="al_dropped",
                     text="预警解除通知。华容县气象台于7月15日14时30分解除章华镇暴雨红色预警。")
        await speakers.send(c)
        await until(lambda: sink.finished(c.id) == {"dev:s1"}, "the stop to be acked")
        back = delivery(AREA_A, kind=DeliveryKind.UPDATE, alert="al_back")
        await speakers.send(back)
        await until(lambda: sink.finished(back.id) == {"dev:s1"}, "the update to play")
        assert {s.detail for s in sink.statuses
                if s.delivery_id == back.id and s.status is P.DONE} == {""}
        assert fleet.played["s1"] == [d.id, back.id]


async def test_lwt_marks_a_dropped_speaker_offline(
    mqtt_url: str, prefix: str, speakers: Loudspeakers,
) -> None:
    devices = [("x", AREA_A), ("y", AREA_B)]
    async with SpeakerFleet(mqtt_url, devices, command_key=KEY, topic_prefix=prefix) as fleet:
        online = DeviceState.ONLINE
        await until(lambda: {k: v.state for k, v in speakers.devices_status().items()}
                         == {"x": online, "y": online}, "both online")
        assert speakers.devices_status()["x"].area == AREA_A
        await fleet.drop("x")
        await until(lambda: speakers.devices_status()["x"].state is DeviceState.OFFLINE,
                         "the LWT")
        assert speakers.devices_status()["y"].state is online
        [status] = await retained(mqtt_url, f"{prefix}/dev/x/status", 0.3)
        assert decode_status(status).state is DeviceState.OFFLINE
        await fleet.revive("x")
        await until(lambda: speakers.devices_status()["x"].state is online, "x back")
    # a clean stop says offline too
    await until(lambda: speakers.devices_status()["y"].state is DeviceState.OFFLINE,
                     "y offline after stop")


async def test_acks_sent_while_the_channel_is_away_are_not_lost(
    mqtt_url: str, prefix: str, sink: RecordingSink,
) -> None:
    first = channel(mqtt_url, prefix, name="ls-session", client_id="tsession")
    await first.start(sink)
    await until(lambda: first.connected, "connect")
    await first.aclose()
    away = delivery("dev:z", channel="ls-session")
    await publish(mqtt_url, f"{prefix}/dev/z/ack", encode(ack_for(away, AckState.DONE)))
    again = channel(mqtt_url, prefix, name="ls-session", client_id="tsession")
    assert again.client_id == first.client_id
    await again.start(sink)
    try:
        await until(lambda: sink.seen(away.id) == {"dev:z": [P.DONE]}, "the queued ack")
    finally:
        await again.aclose()


class FlakySink(RecordingSink):
    """Fails its first `n` calls, as an engine whose Redis is briefly away."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n

    async def delivery_status(self, campaign_id: str, delivery_id: str, target_id: str,
                              status: ProviderStatus, detail: str = "") -> None:
        if self.n > 0:
            self.n -= 1
            raise ConnectionError("redis is away")
        await super().delivery_status(campaign_id, delivery_id, target_id, status, detail)


async def test_an_ack_the_sink_refused_is_redelivered(mqtt_url: str, prefix: str) -> None:
    sink = FlakySink(4)  # more than the channel's in-process tries: forces a reconnect
    ch = channel(mqtt_url, prefix)
    await ch.start(sink)
    try:
        await until(lambda: ch.connected, "connect")
        flaky = delivery("dev:f")
        await publish(mqtt_url, f"{prefix}/dev/f/ack", encode(ack_for(flaky, AckState.RECEIVED)))
        await until(lambda: sink.seen(flaky.id) == {"dev:f": [P.DELIVERED]},
                         "the redelivered ack", within=8)
    finally:
        await ch.aclose()


async def test_send_errors_are_classified(mqtt_url: str, prefix: str) -> None:
    ch = channel(mqtt_url, prefix)
    try:
        for bad in ("430623/1", "dev:a/b", "dev:", "area:430623101001"):
            with pytest.raises(PermanentChannelError):
                await ch.send(delivery(bad))
        with pytest.raises(PermanentChannelError, match="expired"):
            await ch.send(delivery(AREA_A, expires_in=-5))
        # a stop still goes out after expiry: stopping is always safe
        late = delivery(AREA_A, kind=DeliveryKind.CANCEL, expires_in=-5)
        assert (await ch.send(late)).provider_id == late.id
    finally:
        await ch.aclose()
    nobody = channel(f"mqtt://127.0.0.1:{free_port()}", prefix, connect_wait_s=0.3)
    try:
        with pytest.raises(TransientChannelError, match="not connected"):
            await nobody.send(delivery(AREA_A))
    finally:
        await nobody.aclose()
