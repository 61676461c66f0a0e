"""The loudspeaker wire format and config: pure, no broker."""

from __future__ import annotations

import json
import time

import msgspec
import pytest
from loudspeaker_kit import AREA_A, delivery

from channels.loudspeaker import Loudspeakers
from channels.loudspeaker_payload import (
    LEVEL_OF_SEVERITY,
    SEVERITY,
    CommandKind,
    SpeakerAck,
    SpeakerAddress,
    Topics,
    command_for,
    decode_ack,
    decode_command,
    decode_status,
    encode,
    expiry_seconds,
    parse_address,
    parse_broker_url,
)
from warnbus.domain.models import DeliveryKind, Level
from warnbus.errors import ConfigError
from warnbus.plugin import DeviceState


@pytest.mark.parametrize(("level", "severity"), [
    (Level.RED, 1), (Level.ORANGE, 2), (Level.YELLOW, 3), (Level.BLUE, 4),
])
def test_severity_follows_ebm(level: Level, severity: int) -> None:
    d = delivery(level=level)
    cmd = command_for(d, SpeakerAddress(area=AREA_A), now=time.time(), volume=80, repeat=2)
    assert SEVERITY[level] == severity
    assert LEVEL_OF_SEVERITY[severity] is level
    assert decode_command(encode(cmd)).level is level


def test_command_round_trip_keeps_every_field() -> None:
    d = delivery(drill=True, expires_in=3600)
    now = time.time()
    cmd = command_for(d, SpeakerAddress(area=AREA_A), now=now, volume=65, repeat=3)
    raw = encode(cmd)
    assert decode_command(raw) == cmd
    body = json.loads(raw.decode("utf-8"))
    assert "暴雨红色预警" in raw.decode("utf-8")  # UTF-8, not \u escapes
    assert body["cmd_id"] == d.id and body["campaign_id"] == d.campaign_id
    assert body["alert_id"] == d.alert_id and body["kind"] == "play"
    assert body["areas"] == [AREA_A] and body["drill"] is True
    assert body["volume"] == 65 and body["repeat"] == 3 and body["severity"] == 1
    assert body["start_time"].endswith("+08:00")  # EBM times are Beijing time
    assert abs(cmd.start_time.timestamp() - now) < 1e-3
    assert d.expires_at is not None and cmd.end_time is not None
    assert abs(cmd.end_time.timestamp() - d.expires_at) < 1e-3
    assert not cmd.expired(now) and cmd.expired(d.expires_at + 0.01)


def test_cancel_is_stop_and_device_address_keeps_region() -> None:
    d = delivery(kind=DeliveryKind.CANCEL)
    cmd = command_for(d, parse_address(d.address), now=time.time(), volume=80, repeat=1)
    # The speaker stops the warning and announces its lifting (the 解除 text).
    assert cmd.kind is CommandKind.STOP and cmd.text == d.text and cmd.text
    d2 = delivery("dev:spk-7")
    assert command_for(d2, parse_address(d2.address), now=0, volume=1, repeat=1).areas == ()


@pytest.mark.parametrize("raw", [
    b'{"cmd_id":"x","campaign_id":"c","alert_id":"a","kind":"play","severity":0,'
    b'"start_time":"2026-07-15T13:30:00+08:00"}',
    b'{"cmd_id":"x","campaign_id":"c","alert_id":"a","kind":"play","severity":5,'
    b'"start_time":"2026-07-15T13:30:00+08:00"}',
    b'{"cmd_id":"x","campaign_id":"c","alert_id":"a","kind":"shout","severity":1,'
    b'"start_time":"2026-07-15T13:30:00+08:00"}',
    b'{"cmd_id":"x"}',
    b"not json",
])
def test_bad_commands_are_rejected(raw: bytes) -> None:
    with pytest.raises((msgspec.DecodeError, msgspec.ValidationError)):
        decode_command(raw)


def test_unknown_fields_are_ignored_for_forward_compatibility() -> None:
    raw = (b'{"cmd_id":"x","campaign_id":"c","alert_id":"a","kind":"stop","severity":2,'
           b'"start_time":"2026-07-15T13:30:00+08:00","ebm_version":"2.0"}')
    assert decode_command(raw).kind is CommandKind.STOP


def test_ack_and_status_payloads() -> None:
    ack = decode_ack(b'{"cmd_id":"d","campaign_id":"c","state":"playing",'
                     b'"at":"2026-07-15T13:30:00+08:00"}')
    assert isinstance(ack, SpeakerAck) and ack.state == "playing" and ack.detail == ""
    assert decode_status(b"offline").state is DeviceState.OFFLINE
    assert decode_status(b'{"state":"online","area":"430623101001"}').area == AREA_A


@pytest.mark.parametrize(("address", "expected"), [
    ("430623101001", SpeakerAddress(area="430623101001")),
    ("430623", SpeakerAddress(area="430623")),
    ("dev:spk-001", SpeakerAddress(device="spk-001")),
    ("dev:430623101001.3", SpeakerAddress(device="430623101001.3")),
])
def test_good_addresses(address: str, expected: SpeakerAddress) -> None:
    assert parse_address(address) == expected


@pytest.mark.parametrize("address", [
    "", "4306", "4306231010011", "43062310100a", "430623/101", "dev:", "dev:a/b", "dev:+",
    "dev:#", "area:430623101001", "+", "dev: x",
])
def test_bad_addresses(address: str) -> None:
    with pytest.raises(ValueError):
        parse_address(address)


@pytest.mark.parametrize(("expires_in", "default", "expected"), [
    (None, 3600, 3600), (2.0, 3600, 2), (1.2, 3600, 2), (0.1, 3600, 1), (1e12, 5, 2**32 - 1),
])
def test_expiry_seconds(expires_in: float | None, default: int, expected: int) -> None:
    now = 1_000_000.0
    at = None if expires_in is None else now + expires_in
    assert expiry_seconds(at, now, default) == expected


def test_topics() -> None:
    t = Topics("wb/v1")
    assert t.area_cmd(AREA_A) == "wb/v1/area/430623101001/cmd"
    assert t.area_active(AREA_A, "cp_1") == "wb/v1/area/430623101001/active/cp_1"
    assert t.dev_cmd("s1") == "wb/v1/dev/s1/cmd"
    assert (t.all_acks, t.all_status) == ("wb/v1/dev/+/ack", "wb/v1/dev/+/status")
    assert t.device_topic("wb/v1/dev/s1/ack") == ("s1", "ack")
    assert t.device_topic("wb/v1/dev/s1/ack/x") is None
    assert t.device_topic("wb/v2/dev/s1/ack") is None


@pytest.mark.parametrize(("url", "host", "port", "tls"), [
    ("mqtt://127.0.0.1:1884", "127.0.0.1", 1884, False),
    ("mqtt://broker", "broker", 1883, False),
    ("mqtts://broker", "broker", 8883, True),
])
def test_broker_url(url: str, host: str, port: int, tls: bool) -> None:
    b = parse_broker_url(url)
    assert (b.host, b.port, b.tls) == (host, port, tls)


@pytest.mark.parametrize(("raw", "field"), [
    ({"type": "mqtt-loudspeaker", "colour": "red"}, "colour"),
    ({"type": "mqtt-loudspeaker", "url": "http://x"}, "mqtt://"),
    ({"type": "mqtt-loudspeaker", "command_key": "short"}, "command_key"),
    ({"type": "mqtt-loudspeaker", "command_key": ""}, "command_key"),
    ({"type": "mqtt-loudspeaker", "command_key": "k" * 40, "command_key_id": "a b"},
     "command_key_id"),
    ({"type": "mqtt-loudspeaker", "volume": 101}, "volume"),
    ({"type": "mqtt-loudspeaker", "topic_prefix": "wb/+/v1"}, "topic_prefix"),
])
def test_config_is_strict(raw: dict[str, object], field: str) -> None:
    raw = {"command_key": "k" * 40, **raw}  # a valid key unless the case is about it
    with pytest.raises(ConfigError, match=r"channels\.ls") as err:
        Loudspeakers.from_config("ls", raw)
    assert field in str(err.value)


def test_password_never_shows() -> None:
    ch = Loudspeakers.from_config("ls", {"type": "mqtt-loudspeaker", "username": "wb",
                                         "password": "hunter2", "callback_url": "http://x",
                                         "command_key": "sekrit-" * 6})
    assert "hunter2" not in repr(ch.config) and "sekrit" not in repr(ch.config)
    assert ch.config.password.reveal() == "hunter2"
    assert set(ch.info.secret_fields) == {"password", "command_key"}
    assert ch.client_id.startswith("warnbus-ls-")


def test_credentials_in_the_url_become_secret_fields() -> None:
    ch = Loudspeakers.from_config("ls", {"type": "mqtt-loudspeaker", "command_key": "k" * 40,
                                         "url": "mqtt://warnbus:p%40ss%2Fw0rd@broker:1884"})
    assert ch.config.url == "mqtt://broker:1884" and ch.config.username == "warnbus"
    assert ch.config.password.reveal() == "p@ss/w0rd"
    assert "p@ss" not in repr(ch.config) and "p%40ss" not in repr(ch.config)
    assert ch.display_url == "mqtt://warnbus:***@broker:1884"
    # A username or password set in the configuration wins over the URL's.
    ch = Loudspeakers.from_config("ls", {"type": "mqtt-loudspeaker", "command_key": "k" * 40,
                                         "url": "mqtt://u:p@broker", "password": "own"})
    assert (ch.config.username, ch.config.password.reveal()) == ("u", "own")
