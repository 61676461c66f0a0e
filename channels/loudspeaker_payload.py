"""The MQTT wire format of the loudspeaker channel (村村响): topics, commands, acks, status.

Shared by the channel (`channels.loudspeaker`) and the simulated speakers (`channels.sim`).
A command carries the fields of a GD/J 082 emergency broadcast message (EBM) that a village
speaker needs: the EBM id (our cmd id), message type (play = 请求播发, stop = 取消播发),
severity 1–4 (red = 1 … blue = 4), start and end time (Beijing time, ISO-8601), area codes,
the text to speak and an optional audio resource with its digest. Receivers ignore fields they
do not know, so the format can grow without a version bump.

Topics under a prefix (default `wb/v1`):
  area/{code}/cmd               one command per area; the broker fans out to its speakers
  area/{code}/active/{campaign} retained active warning with a message expiry (catch-up)
  dev/{id}/cmd                  a command to one device
  dev/{id}/ack                  playout reports: received / playing / done / failed
  dev/{id}/status               retained online/offline (offline is the device's LWT)
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from enum import StrEnum
from typing import Annotated
from urllib.parse import unquote, urlsplit

import msgspec
from paho.mqtt.properties import Properties

from channels.textfit import fit_sentences
from warnbus.plugin import Delivery, DeliveryKind, DeviceState, Level

DEFAULT_PREFIX = "wb/v1"
BEIJING = timezone(timedelta(hours=8), "CST")
MAX_EXPIRY_S = 2**32 - 1  # MQTT 5 message expiry is a four-byte integer
TTS_MAX = 2000  # characters a command's TTS text may hold; longer warnings are shortened

# 统计用区划代码 are digits (6 for a county, 9 or 12 below); device ids and campaign ids must
# be a single topic level: no '/', no wildcards, nothing a broker would treat specially.
_AREA_CODE = re.compile(r"\d{6,12}")
_TOPIC_LEVEL = re.compile(r"[0-9A-Za-z][0-9A-Za-z_.:-]{0,127}")


class CommandKind(StrEnum):
    PLAY = "play"  # EBM MsgType 1, 请求播发
    STOP = "stop"  # EBM MsgType 2, 取消播发


class AckState(StrEnum):
    RECEIVED = "received"
    PLAYING = "playing"
    DONE = "done"
    FAILED = "failed"


#: EBM severity: 1 特别重大 (red) … 4 一般 (blue).
SEVERITY: Mapping[Level, int] = {Level.RED: 1, Level.ORANGE: 2, Level.YELLOW: 3, Level.BLUE: 4}
LEVEL_OF_SEVERITY: Mapping[int, Level] = {v: k for k, v in SEVERITY.items()}

Severity = Annotated[int, msgspec.Meta(ge=1, le=4)]
Volume = Annotated[int, msgspec.Meta(ge=0, le=100)]
Repeat = Annotated[int, msgspec.Meta(ge=1, le=20)]


class SpeakerCommand(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What a speaker is told to do (play or stop); JSON, UTF-8."""

    cmd_id: str  # EBM id; = the delivery id, echoed in every ack
    campaign_id: str
    alert_id: str
    kind: CommandKind
    severity: Severity
    start_time: datetime
    end_time: datetime | None = None  # the alert's expiry: never play after it
    areas: tuple[str, ...] = ()
    text: str = ""  # TTS text (MsgDesc)
    audio_url: str | None = None
    audio_sha256: str | None = None
    repeat: Repeat = 1
    volume: Volume = 80
    drill: bool = False  # 演练: an exercise, announced as such
    step: int = 0  # the delivery's step: echoed in acks, it binds a report to its command
    v: int = 1

    @property
    def level(self) -> Level:
        return LEVEL_OF_SEVERITY[self.severity]

    def expired(self, now: float) -> bool:
        return self.end_time is not None and self.end_time.timestamp() <= now


class SpeakerAck(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A device's playout report on `dev/{id}/ack`; echoes the command's ids."""

    cmd_id: str
    campaign_id: str
    state: AckState
    at: datetime
    detail: str = ""
    # Echoed from the command, so the engine can tell the command was this device's (or its
    # area's): a report that does not bind to one changes nothing (channels.loudspeaker_sig).
    alert_id: str = ""
    step: int = 0
    device: str = ""  # the reporting device; when given, it must be the topic's


class DeviceStatus(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Retained on `dev/{id}/status`; the offline form is the device's LWT."""

    state: DeviceState
    at: datetime | None = None  # absent in the LWT, which is fixed at connect time
    area: str | None = None
    device: str | None = None  # when given, it must be the topic's


_encoder = msgspec.json.Encoder()
_cmd_decoder = msgspec.json.Decoder(SpeakerCommand)
_ack_decoder = msgspec.json.Decoder(SpeakerAck)
_status_decoder = msgspec.json.Decoder(DeviceStatus)


def encode(msg: SpeakerCommand | SpeakerAck | DeviceStatus) -> bytes:
    return _encoder.encode(msg)


def decode_command(raw: bytes) -> SpeakerCommand:
    """Decode a command; raises msgspec.DecodeError / ValidationError on a bad payload."""
    return _cmd_decoder.decode(raw)


def decode_ack(raw: bytes) -> SpeakerAck:
    return _ack_decoder.decode(raw)


def decode_status(raw: bytes) -> DeviceStatus:
    """Decode a status; a bare `online` / `offline` (common in device firmware) is accepted."""
    text = raw.strip()
    if text in (b"online", b"offline"):
        return DeviceStatus(state=DeviceState(text.decode()))
    return _status_decoder.decode(raw)


def beijing(ts: float) -> datetime:
    """Epoch seconds as an aware datetime in Beijing time (EBM times are Beijing time)."""
    return datetime.fromtimestamp(ts, tz=UTC).astimezone(BEIJING)


# --------------------------------------------------------------------------- topics


@dataclass(frozen=True)
class Topics:
    prefix: str = DEFAULT_PREFIX

    def area_cmd(self, code: str) -> str:
        return f"{self.prefix}/area/{code}/cmd"

    def area_active(self, code: str, campaign_id: str) -> str:
        return f"{self.prefix}/area/{code}/active/{campaign_id}"

    def area_active_all(self, code: str) -> str:
        return f"{self.prefix}/area/{code}/active/+"

    def dev_cmd(self, device_id: str) -> str:
        return f"{self.prefix}/dev/{device_id}/cmd"

    def dev_ack(self, device_id: str) -> str:
        return f"{self.prefix}/dev/{device_id}/ack"

    def dev_status(self, device_id: str) -> str:
        return f"{self.prefix}/dev/{device_id}/status"

    @property
    def all_acks(self) -> str:
        return f"{self.prefix}/dev/+/ack"

    @property
    def all_status(self) -> str:
        return f"{self.prefix}/dev/+/status"

    def device_topic(self, topic: str) -> tuple[str, str] | None:
        """`(device_id, leaf)` for `{prefix}/dev/{id}/{leaf}`, else None."""
        head = f"{self.prefix}/dev/"
        if not topic.startswith(head):
            return None
        parts = topic[len(head):].split("/")
        return (parts[0], parts[1]) if len(parts) == 2 and parts[0] else None


def valid_prefix(prefix: str) -> bool:
    levels = prefix.split("/")
    return bool(prefix) and all(lv and not set(lv) & {"+", "#", "\x00"} for lv in levels)


# --------------------------------------------------------------------------- addresses


@dataclass(frozen=True)
class SpeakerAddress:
    """Where a delivery goes: an area (village code) or one device (`dev:{id}`)."""

    device: str | None = None
    area: str | None = None


def parse_address(address: str) -> SpeakerAddress:
    """Parse a delivery address; raises ValueError with a reason fit for the attempt log."""
    if address.startswith("dev:"):
        device = address[4:]
        if not _TOPIC_LEVEL.fullmatch(device):
            raise ValueError(f"bad device id in address {address!r}")
        return SpeakerAddress(device=device)
    if not _AREA_CODE.fullmatch(address):
        raise ValueError(f"address {address!r} is neither an area code (6–12 digits) nor dev:<id>")
    return SpeakerAddress(area=address)


def topic_level_ok(value: str) -> bool:
    return _TOPIC_LEVEL.fullmatch(value) is not None


def command_for(delivery: Delivery, target: SpeakerAddress, *, now: float, volume: int,
                repeat: int) -> SpeakerCommand:
    """The command for one delivery: a cancel becomes stop, everything else play. A stop
    carries the 解除 text: the speaker stops the warning and announces its lifting."""
    stop = delivery.kind is DeliveryKind.CANCEL
    area = target.area or delivery.region
    return SpeakerCommand(
        cmd_id=delivery.id,
        campaign_id=delivery.campaign_id,
        alert_id=delivery.alert_id,
        kind=CommandKind.STOP if stop else CommandKind.PLAY,
        severity=SEVERITY[delivery.level],
        start_time=beijing(now),
        end_time=beijing(delivery.expires_at) if delivery.expires_at is not None else None,
        areas=(area,) if area else (),
        text=tts_text(delivery.text),
        repeat=repeat,
        volume=volume,
        drill=delivery.drill,
        step=delivery.step,
    )


def tts_text(text: str) -> str:
    """The text a speaker says: at most TTS_MAX characters, shortened at sentence ends."""
    return fit_sentences(text, lambda s: len(s) <= TTS_MAX, bound=TTS_MAX)


def expiry_seconds(expires_at: float | None, now: float, default_s: int) -> int:
    """Seconds until expiry, rounded up, for the MQTT 5 message expiry interval (≥ 1)."""
    if expires_at is None:
        return min(default_s, MAX_EXPIRY_S)
    return max(1, min(MAX_EXPIRY_S, math.ceil(expires_at - now)))


# --------------------------------------------------------------------------- connection


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def bare(self) -> str:
        """The URL without credentials."""
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"

    @property
    def display(self) -> str:
        """The URL for logs and messages: the user name shown, the password never."""
        user = f"{self.username}:***@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}"


def parse_broker_url(url: str) -> BrokerAddress:
    """`mqtt://[user:pass@]host[:1883]` or `mqtts://...[:8883]`; raises ValueError otherwise.

    Credentials are percent-decoded; the error message never repeats the URL (it may hold a
    password)."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        shown = url if "@" not in url else url.rsplit("@", 1)[-1]
        raise ValueError(f"{shown!r} is not an mqtt:// or mqtts:// URL with a host")
    tls = parts.scheme == "mqtts"
    return BrokerAddress(parts.hostname, parts.port or (8883 if tls else 1883), tls,
                         unquote(parts.username) if parts.username else None,
                         unquote(parts.password) if parts.password else None)


def redact_url(url: str) -> str:
    """A broker URL without its password (as given when it does not parse)."""
    try:
        return parse_broker_url(url).display
    except ValueError:
        return url.rsplit("@", 1)[-1]


def backoff(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with jitter: half fixed, half random, so clients spread out."""
    delay = min(cap, base * 2.0 ** min(attempt, 30))
    return delay / 2 + (rng or _rng).uniform(0, delay / 2)


_rng = random.Random()


def properties(packet_type: int, **values: object) -> Properties:
    """MQTT 5 properties, e.g. `properties(PacketTypes.PUBLISH, MessageExpiryInterval=60)`."""
    props = Properties(packet_type)  # type: ignore[no-untyped-call]  # paho leaves it untyped
    for key, value in values.items():
        setattr(props, key, value)
    return props
