"""Who may speak to a speaker, and for whom a speaker may speak (issue 14, item 9).

Commands carry a `wb-sig` HMAC that the simulated speakers verify; a playout report counts
only for a command sent to the reporting device or its area; the broker's accounts keep
everyone else out. Against real mosquitto: the shared anonymous one where the test is about
what the channel and the speakers do, an authenticated one (`auth_mosquitto`) where it is
about the broker.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiomqtt
import msgspec
import pytest
from loudspeaker_kit import (
    AREA_A,
    AREA_B,
    KEY,
    RecordingSink,
    ack_for,
    channel,
    delivery,
    publish,
)
from paho.mqtt.packettypes import PacketTypes
from structlog.testing import capture_logs

from channels.loudspeaker_payload import (
    AckState,
    DeviceStatus,
    command_for,
    decode_command,
    encode,
    parse_address,
    parse_broker_url,
    properties,
)
from channels.loudspeaker_sig import (
    REPLAY_WINDOW_S,
    SIG_PROPERTY,
    CommandRefused,
    sign,
    verify,
)
from channels.sim.speakers import SpeakerFleet
from tests.mqtt_probe import NOT_AUTHORIZED, Probe
from tests.waits import until
from warnbus.domain.models import Delivery
from warnbus.errors import TransientChannelError
from warnbus.plugin import DeviceState, ProviderStatus
from warnbus.runtime.services import ManagedService, free_port

pytestmark = pytest.mark.timeout(40)
P = ProviderStatus
FAST = (0.05, 0.1)
DOC = Path(__file__).resolve().parents[2] / "docs" / "devices.md"


@dataclass
class DirectorySink(RecordingSink):
    """A sink that knows the registry's devices, as the engine's does (`device_area`)."""

    areas: dict[str, str] = field(default_factory=dict)

    def device_area(self, device_id: str) -> str | None:
        return self.areas.get(device_id)


# --------------------------------------------------------------------------- the scheme


def test_the_documented_worked_example() -> None:
    text = DOC.read_text(encoding="utf-8")
    block = text.split("### Worked example", 1)[1].split("```text", 1)[1].split("```", 1)[0]
    v = dict(re.match(r"(\S+):\s+(.*)", line).groups()  # type: ignore[union-attr]
             for line in block.strip().splitlines())
    payload = v["payload"].encode()
    assert sign(v["key"], v["kid"], int(v["ts"]), v["topic"], payload) == v["wb-sig"]
    # Computed as the page tells a device maker to, without warnbus's code:
    msg = b"\n".join([b"wb-sig-v1", v["kid"].encode(), v["ts"].encode(), v["topic"].encode(),
                      payload])
    assert v["wb-sig"].endswith(hmac.new(v["key"].encode(), msg, hashlib.sha256).hexdigest())
    verify(v["wb-sig"], v["topic"], payload, {v["kid"]: v["key"]}, now=int(v["ts"]) + 5,
           retained=False)
    cmd = decode_command(payload)  # the example is a real command
    assert cmd.areas == (v["topic"].split("/")[3],) and cmd.severity == 1


@pytest.mark.parametrize(("case", "reason"), [
    ("unsigned", "unsigned"), ("garbage", "malformed"), ("other key", "bad signature"),
    ("other kid", "unknown key id"), ("other topic", "bad signature"),
    ("other payload", "bad signature"), ("future", "in the future"), ("old", "replay window"),
])
def test_what_a_speaker_refuses(case: str, reason: str) -> None:
    topic, payload, now = "wb/v1/area/430623101001/cmd", b'{"cmd_id":"x"}', 1_800_000_000
    keys = {"k1": KEY}
    header: str | None = sign(KEY, "k1", now, topic, payload)
    args = {"topic": topic, "payload": payload}
    if case == "unsigned":
        header = None
    elif case == "garbage":
        header = "v1;kid=k1;sig=00"
    elif case == "other key":
        header = sign("another-key-of-32-characters-or-more", "k1", now, topic, payload)
    elif case == "other kid":
        header = sign(KEY, "k2", now, topic, payload)
    elif case == "other topic":
        args["topic"] = "wb/v1/area/430623101002/cmd"
    elif case == "other payload":
        args["payload"] = b'{"cmd_id":"y"}'
    elif case == "future":
        header = sign(KEY, "k1", now + 120, topic, payload)
    elif case == "old":
        header = sign(KEY, "k1", now - REPLAY_WINDOW_S - 1, topic, payload)
    with pytest.raises(CommandRefused, match=reason):
        verify(header, str(args["topic"]), bytes(args["payload"]), keys,  # type: ignore[arg-type]
               now=now, retained=False)
    if case == "old":  # a retained catch-up copy may be older (its end time bounds it)
        verify(header, topic, payload, keys, now=now, retained=True)


# --------------------------------------------------------------------------- speakers refuse


async def _raw_command(url: str, topic: str, d: Delivery, *, key: str | None,
                       ts: float | None = None) -> None:
    """Publish the command of `d` as an attacker (or a replay) would: own signature or none."""
    payload = encode(command_for(d, parse_address(d.address), now=time.time(), volume=80,
                                 repeat=1))
    props = None
    if key is not None:
        sig = sign(key, "k1", int(ts if ts is not None else time.time()), topic, payload)
        props = properties(PacketTypes.PUBLISH, UserProperty=[(SIG_PROPERTY, sig)])
    broker = parse_broker_url(url)
    async with aiomqtt.Client(broker.host, broker.port, username=broker.username,
                              password=broker.password,
                              protocol=aiomqtt.ProtocolVersion.V5) as client:
        await client.publish(topic, payload, qos=1, properties=props)


async def test_a_speaker_refuses_unsigned_missigned_and_replayed_commands(
    mqtt_url: str, prefix: str,
) -> None:
    sink = DirectorySink(areas={"t1": AREA_A})
    ch = channel(mqtt_url, prefix)
    await ch.start(sink)
    await until(lambda: ch.connected, "the channel to connect")
    try:
        async with SpeakerFleet(mqtt_url, [("t1", AREA_A)], play_s=FAST, topic_prefix=prefix,
                                command_key=KEY) as fleet:
            d = delivery(AREA_A)
            topic = f"{prefix}/area/{AREA_A}/cmd"
            await _raw_command(mqtt_url, topic, d, key=None)
            await _raw_command(mqtt_url, topic, d, key="an-attacker-key-of-32-characters-x")
            await _raw_command(mqtt_url, topic, d, key=KEY, ts=time.time() - 3600)
            await until(lambda: len(fleet.refused["t1"]) == 3, "three refusals")
            assert [r.split(" ")[0] for r in fleet.refused["t1"]] == ["unsigned", "bad", "signed"]
            assert "replay window" in fleet.refused["t1"][2]
            assert fleet.played["t1"] == []
            # The speaker reported each refusal (it names the command it refused) ...
            await until(lambda: len(sink.statuses) == 3, "three failed reports")
            assert {s.status for s in sink.statuses} == {P.FAILED}
            assert all(s.detail.startswith("refused: ") for s in sink.statuses)
            # ... and the genuine command, with the same id, still plays.
            await ch.send(d)
            await until(lambda: P.DONE in sink.seen(d.id).get("dev:t1", []), "playout")
            assert fleet.played["t1"] == [d.id]
    finally:
        await ch.aclose()


# --------------------------------------------------------------------------- reports bind


async def test_forged_playout_reports_change_nothing(mqtt_url: str, prefix: str) -> None:
    sink = DirectorySink(areas={"a1": AREA_A, "b1": AREA_B})
    ch = channel(mqtt_url, prefix)
    await ch.start(sink)
    await until(lambda: ch.connected, "the channel to connect")
    try:
        mine, theirs, to_b1 = delivery(AREA_A), delivery(AREA_B), delivery("dev:b1")
        forged = [
            ack_for(theirs, AckState.DONE),  # another village's command
            ack_for(to_b1, AckState.DONE),  # another device's own command
            ack_for(mine, AckState.DONE, device="b1"),  # the payload names another device
            msgspec.structs.replace(ack_for(mine, AckState.DONE), step=3),  # a made-up step
        ]
        with capture_logs() as logs:
            for ack in forged:
                await publish(mqtt_url, f"{prefix}/dev/a1/ack", encode(ack))
            # The genuine report, published last, is counted: the forged ones were handled.
            await publish(mqtt_url, f"{prefix}/dev/a1/ack", encode(ack_for(mine, AckState.DONE)))
            await until(lambda: bool(sink.statuses), "the genuine report")
        assert [(s.delivery_id, s.target_id, s.status) for s in sink.statuses] == [
            (mine.id, "dev:a1", P.DONE)]
        refused = [e for e in logs if e["event"] == "loudspeaker report refused"]
        assert len(refused) == 4 and {e["device"] for e in refused} == {"a1"}
        assert "names device 'b1'" in refused[2]["reason"]
        # The same report of b1's own command, on b1's own topic, counts.
        await publish(mqtt_url, f"{prefix}/dev/b1/ack", encode(ack_for(to_b1, AckState.DONE)))
        await until(lambda: "dev:b1" in sink.seen(to_b1.id), "b1's own report")
    finally:
        await ch.aclose()


async def test_a_status_naming_another_device_is_refused(mqtt_url: str, prefix: str) -> None:
    sink = DirectorySink(areas={"s1": AREA_A})
    ch = channel(mqtt_url, prefix)
    await ch.start(sink)
    await until(lambda: ch.connected, "the channel to connect")
    try:
        with capture_logs() as logs:
            other = DeviceStatus(state=DeviceState.OFFLINE, device="s2", area=AREA_A)
            await publish(mqtt_url, f"{prefix}/dev/s1/status", encode(other))
            claim = DeviceStatus(state=DeviceState.ONLINE, device="s1", area=AREA_B)
            await publish(mqtt_url, f"{prefix}/dev/s1/status", encode(claim))
            await until(lambda: "s1" in ch.devices_status(), "s1's own status")
        view = ch.devices_status()["s1"]
        assert view.state is DeviceState.ONLINE and view.area == AREA_A  # the registry's
        assert any(e["event"] == "loudspeaker status refused" for e in logs)
    finally:
        await ch.aclose()


# --------------------------------------------------------------------------- on a real account


async def test_speakers_play_on_an_authenticated_broker_and_no_password_shows(
    auth_mosquitto: Callable[..., ManagedService],
) -> None:
    svc = auth_mosquitto([("p1", AREA_A), ("p2", AREA_B)])
    assert svc.accounts is not None
    secret = svc.accounts.engine_password
    sink = DirectorySink(areas={"p1": AREA_A, "p2": AREA_B})
    with capture_logs() as logs:
        ch = channel(svc.url, "wb/v1")
        await ch.start(sink)
        await until(lambda: ch.connected, "the channel to log in")
        try:
            async with SpeakerFleet(svc.url.replace(f"warnbus:{secret}@", ""),
                                    [("p1", AREA_A), ("p2", AREA_B)], play_s=FAST,
                                    command_key=KEY,
                                    passwords=svc.accounts.device_passwords) as fleet:
                d = delivery(AREA_A)
                await ch.send(d)
                await until(lambda: P.DONE in sink.seen(d.id).get("dev:p1", []), "playout")
                assert fleet.played == {"p1": [d.id], "p2": []}
                # p1 cannot report for p2: the broker refuses it, the engine never hears it.
                with Probe(svc.port, "p1", svc.accounts.device_passwords["p1"]) as p1:
                    assert p1.connect() == 0
                    forged = encode(ack_for(delivery(AREA_B), AckState.DONE))
                    assert p1.publish("wb/v1/dev/p2/ack", forged) == NOT_AUTHORIZED
                with Probe(svc.port) as anonymous:
                    assert anonymous.connect() != 0
                # What the engine hears of p2 is p2's own report of a command sent after.
                later = delivery(AREA_B, alert="al_later")
                await ch.send(later)
                await until(lambda: P.DONE in sink.seen(later.id).get("dev:p2", []),
                            "p2's own playout")
                assert {s.delivery_id for s in sink.statuses
                        if s.target_id == "dev:p2"} == {later.id}
        finally:
            await ch.aclose()
    assert secret not in repr(logs) and f"{svc.port}" in ch.display_url
    assert ch.display_url == f"mqtt://warnbus:***@127.0.0.1:{svc.port}"
    dead = channel(f"mqtt://warnbus:{secret}@127.0.0.1:{free_port()}", "wb/v1",
                   connect_wait_s=0.2)
    try:
        with pytest.raises(TransientChannelError) as info:
            await dead.send(delivery(AREA_A))
        assert secret not in str(info.value) and "warnbus:***@" in str(info.value)
    finally:
        await dead.aclose()


async def test_the_engine_judges_reports_by_the_registry(redis_url: str) -> None:
    from channels.loudspeaker_status import DeviceDirectory
    from tests.engine.helpers import make_harness

    h = await make_harness(redis_url)
    try:
        sink = h.app.engine.sink
        assert isinstance(sink, DeviceDirectory)
        for device in list(h.ctx.registry.data.devices.values())[:5]:
            assert sink.device_area(device.id) == device.region
        assert sink.device_area("not-a-device") is None
    finally:
        await h.app.close()
