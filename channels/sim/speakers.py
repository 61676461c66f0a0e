"""Simulated village loudspeakers on MQTT, for the demo and the tests.

One MQTT 5 client per device, so each has its own LWT and status like a real speaker. A device
subscribes to its area's cmd and active topics and to its own cmd topic, says `online`
(retained) when connected and again every `heartbeat_s`, and plays a command: ack
`received`, then `playing`, then `done` (or `failed`, by `fail_rate`) after a random
`play_s`. Stop ends the campaign's playback.

Like a real speaker, each checks a command's origin (the `wb-sig` HMAC of
`channels.loudspeaker_sig`, under the deployment's `command_key`) and refuses an unsigned,
mis-signed or stale one: it reports `failed` with the reason and plays nothing. Each device
logs in with its own account when `passwords` are given (user name = device id, as the
broker's ACL patterns expect), else with the URL's credentials, if any.

Devices use a clean session on purpose: what a speaker missed while offline reaches it only
through the retained active message, which is the mechanism under test. A cmd id is played
once, however many times it arrives (cmd topic, active topic, redelivery after reconnect).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import aiomqtt
import msgspec
import structlog
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from channels.loudspeaker_payload import (
    DEFAULT_PREFIX,
    AckState,
    CommandKind,
    DeviceStatus,
    SpeakerAck,
    SpeakerCommand,
    Topics,
    backoff,
    beijing,
    decode_command,
    encode,
    parse_broker_url,
)
from channels.loudspeaker_sig import CommandRefused, signature_of, verify
from warnbus.plugin import DeviceState

log = structlog.get_logger("channels.sim.speakers")


@dataclass
class _Device:
    id: str
    area: str
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    client: aiomqtt.Client | None = None
    task: asyncio.Task[None] | None = None
    player: asyncio.Task[None] | None = None
    queue: asyncio.Queue[SpeakerCommand] = field(default_factory=asyncio.Queue)
    current: SpeakerCommand | None = None
    interrupt: asyncio.Event = field(default_factory=asyncio.Event)
    seen: set[str] = field(default_factory=set)  # cmd ids taken (play once)
    #: campaign id -> start_time of its last stop: a play issued before it is not played;
    #: one issued after it (an Update that puts the village back) is.
    stopped: dict[str, datetime] = field(default_factory=dict)
    cut: bool = False  # a simulated network cut: stay offline until revived


def _stopped(dev: _Device, cmd: SpeakerCommand) -> bool:
    """A play of a campaign stopped after the play was issued."""
    at = dev.stopped.get(cmd.campaign_id)
    return at is not None and cmd.start_time <= at


def _unit(*parts: object) -> float:
    h = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(h, "big") / 2**64


_WITH_WILL = ReasonCode(PacketTypes.DISCONNECT, identifier=4)  # "disconnect with will message"


class SpeakerFleet:
    """A set of simulated speakers: `devices` are (device_id, area_code) pairs."""

    def __init__(
        self,
        url: str,
        devices: Sequence[tuple[str, str]],
        *,
        fail_rate: float = 0.0,
        offline: Sequence[str] = (),
        play_s: tuple[float, float] = (0.2, 1.0),
        seed: int = 0,
        topic_prefix: str = DEFAULT_PREFIX,
        keepalive_s: int = 10,
        reconnect_max_s: float = 2.0,
        connect_timeout_s: float = 15.0,
        heartbeat_s: float = 60.0,
        command_key: str,
        command_key_id: str = "k1",
        passwords: Mapping[str, str] | None = None,
    ) -> None:
        self.broker = parse_broker_url(url)
        self.keys = {command_key_id: command_key}  # what a speaker trusts commands from
        self._passwords = dict(passwords or {})
        self.refused: dict[str, list[str]] = {d: [] for d, _ in devices}  # reasons, per device
        self.topics = Topics(topic_prefix)
        self.play_s = play_s
        self.seed = seed
        self.keepalive_s = keepalive_s
        self.reconnect_max_s = reconnect_max_s
        self.connect_timeout_s = connect_timeout_s
        self.heartbeat_s = heartbeat_s  # a connected speaker repeats `online` this often
        self.fail_rate = fail_rate
        self.played: dict[str, list[str]] = {d: [] for d, _ in devices}
        self._devices = {d: _Device(d, area) for d, area in devices}
        self._offline = set(offline)
        self._tag = secrets.token_hex(3)  # client ids unique to this fleet on a shared broker
        self._closing = False

    # ----------------------------------------------------------------- control

    async def start(self) -> None:
        """Connect every device not listed as offline; return when all are subscribed."""
        self._closing = False
        await self._bring_up([d for d in self._devices.values() if d.id not in self._offline])

    async def stop(self) -> None:
        """Say offline and disconnect every device cleanly."""
        self._closing = True
        await asyncio.gather(*(self._say_offline(d) for d in self._devices.values()))
        await asyncio.gather(*(self._halt(d) for d in self._devices.values()))

    async def drop(self, device_id: str) -> None:
        """Cut the device off as a network failure looks to the broker: it publishes the
        device's will (LWT, offline) and the device is gone until `revive`.

        MQTT 5 says exactly that with DISCONNECT reason 0x04 ("disconnect with will
        message"). Shutting paho's socket down under aiomqtt instead raced with aiomqtt's
        writer registration: a stale `add_writer` landed on a reused file descriptor and
        stalled another client (a flaky test found it)."""
        dev = self._devices[device_id]
        dev.cut = True
        client, task = dev.client, dev.task
        if client is not None:
            with contextlib.suppress(Exception):
                client._client.disconnect(reasoncode=_WITH_WILL)
            if task is not None:
                # The connection loop sees the disconnect and ends (dev.cut); bounded.
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(asyncio.shield(task), 5)
        await self._halt(dev)

    async def revive(self, device_id: str) -> None:
        """Bring a dropped (or initially offline) device back; it catches up on active alerts."""
        dev = self._devices[device_id]
        dev.cut = False
        self._offline.discard(device_id)
        await self._bring_up([dev])

    def is_online(self, device_id: str) -> bool:
        return self._devices[device_id].connected.is_set()

    async def __aenter__(self) -> SpeakerFleet:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ----------------------------------------------------------------- lifecycle

    async def _bring_up(self, devices: Sequence[_Device]) -> None:
        timeout = self.connect_timeout_s
        for dev in devices:
            if dev.task is None or dev.task.done():
                dev.task = asyncio.create_task(self._run(dev), name=f"speaker-{dev.id}")
            if dev.player is None or dev.player.done():
                dev.player = asyncio.create_task(self._play_loop(dev))
        waits = [asyncio.create_task(dev.connected.wait()) for dev in devices]
        try:
            await asyncio.wait_for(asyncio.gather(*waits), timeout)
        except TimeoutError:
            late = [d.id for d in devices if not d.connected.is_set()]
            raise TimeoutError(f"speakers not connected within {timeout}s: {late}") from None

    async def _halt(self, dev: _Device) -> None:
        tasks = [t for t in (dev.task, dev.player) if t is not None]
        for t in tasks:
            t.cancel()
        if tasks:  # bounded: aiomqtt's DISCONNECT wait is (timeout=5), a stuck one is not
            await asyncio.wait(tasks, timeout=8)
        dev.task = dev.player = None
        dev.client = None
        dev.connected.clear()
        dev.current = None
        dev.queue = asyncio.Queue()  # an unplugged speaker forgets what it had queued

    async def _say_offline(self, dev: _Device) -> None:
        # A clean DISCONNECT does not fire the LWT, so a speaker switched off says so itself.
        if dev.client is not None and dev.connected.is_set():
            with contextlib.suppress(aiomqtt.MqttError):
                await dev.client.publish(self.topics.dev_status(dev.id),
                                         encode(self._status(dev, DeviceState.OFFLINE)),
                                         qos=1, retain=True, timeout=2)

    def _status(self, dev: _Device, state: DeviceState) -> DeviceStatus:
        return DeviceStatus(state=state, area=dev.area, device=dev.id,
                            at=beijing(time.time()) if state is DeviceState.ONLINE else None)

    async def _run(self, dev: _Device) -> None:
        t = self.topics
        attempt = 0
        while not (self._closing or dev.cut):
            user, password = self._account(dev.id)
            client = aiomqtt.Client(
                self.broker.host, self.broker.port, identifier=f"wbsim-{self._tag}-{dev.id}",
                username=user, password=password,
                protocol=aiomqtt.ProtocolVersion.V5, clean_start=True,
                keepalive=self.keepalive_s, timeout=5,
                will=aiomqtt.Will(t.dev_status(dev.id),
                                  encode(self._status(dev, DeviceState.OFFLINE)), 1, True),
            )
            try:
                async with client:
                    dev.client = client
                    await client.subscribe([(t.area_cmd(dev.area), 1),
                                            (t.area_active_all(dev.area), 1),
                                            (t.dev_cmd(dev.id), 1)])
                    await client.publish(t.dev_status(dev.id),
                                         encode(self._status(dev, DeviceState.ONLINE)),
                                         qos=1, retain=True)
                    dev.connected.set()
                    attempt = 0
                    beat = asyncio.create_task(self._heartbeat(dev, client)) if (
                        self.heartbeat_s > 0) else None
                    try:
                        async for message in client.messages:
                            if isinstance(message.payload, bytes) and message.payload:
                                await self._on_message(dev, message)
                    finally:
                        if beat is not None:
                            beat.cancel()
            except aiomqtt.MqttError:
                pass  # the broker went away or the network was cut: reconnect below
            finally:
                dev.connected.clear()
                dev.client = None
            await asyncio.sleep(backoff(attempt, 0.1, self.reconnect_max_s))
            attempt += 1

    def _account(self, device_id: str) -> tuple[str | None, str | None]:
        if device_id in self._passwords:
            return device_id, self._passwords[device_id]
        return self.broker.username, self.broker.password

    async def _heartbeat(self, dev: _Device, client: aiomqtt.Client) -> None:
        """Say `online` again now and then (retained, with the time): the last heartbeat."""
        t = self.topics
        with contextlib.suppress(aiomqtt.MqttError):
            while True:
                await asyncio.sleep(self.heartbeat_s)
                await client.publish(t.dev_status(dev.id),
                                     encode(self._status(dev, DeviceState.ONLINE)),
                                     qos=1, retain=True, timeout=5)

    # ----------------------------------------------------------------- behaviour

    async def _on_message(self, dev: _Device, message: aiomqtt.Message) -> None:
        payload = message.payload
        assert isinstance(payload, bytes)
        try:
            cmd = decode_command(payload)
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            log.warning("speaker ignored a malformed command", device=dev.id, error=str(e))
            return
        props = getattr(message.properties, "UserProperty", None)
        try:
            verify(signature_of(props), message.topic.value, payload, self.keys,
                   now=time.time(), retained=message.retain)
        except CommandRefused as e:
            # Not marked seen: the genuine command with this id may still come.
            self.refused[dev.id].append(str(e))
            log.warning("speaker refused a command", device=dev.id, cmd_id=cmd.cmd_id,
                        reason=str(e))
            await self._ack(dev, cmd, AckState.FAILED, f"refused: {e}")
            return
        await self._on_command(dev, cmd)

    async def _on_command(self, dev: _Device, cmd: SpeakerCommand) -> None:
        if cmd.cmd_id in dev.seen:
            return
        dev.seen.add(cmd.cmd_id)
        if cmd.kind is CommandKind.STOP:
            dev.stopped[cmd.campaign_id] = max(cmd.start_time, dev.stopped.get(
                cmd.campaign_id, cmd.start_time))
            if dev.current is not None and _stopped(dev, dev.current):
                dev.interrupt.set()
            await self._ack(dev, cmd, AckState.DONE, "stopped")
            return
        # A speaker never plays a warning past its end time, whatever the broker delivers.
        if _stopped(dev, cmd) or cmd.expired(time.time()):
            return
        await self._ack(dev, cmd, AckState.RECEIVED)
        dev.queue.put_nowait(cmd)

    async def _play_loop(self, dev: _Device) -> None:
        while True:
            cmd = await dev.queue.get()
            if _stopped(dev, cmd):
                await self._ack(dev, cmd, AckState.DONE, "stopped before playing")
                continue
            dev.current = cmd
            dev.interrupt.clear()
            self.played[dev.id].append(cmd.cmd_id)
            await self._ack(dev, cmd, AckState.PLAYING)
            lo, hi = self.play_s
            length = lo + (hi - lo) * _unit(self.seed, "len", dev.id, cmd.cmd_id)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(dev.interrupt.wait(), length)
            dev.current = None
            if dev.interrupt.is_set():
                await self._ack(dev, cmd, AckState.DONE, "stopped")
            elif _unit(self.seed, "fail", dev.id, cmd.cmd_id) < self.fail_rate:
                await self._ack(dev, cmd, AckState.FAILED, "amplifier fault (simulated)")
            else:
                await self._ack(dev, cmd, AckState.DONE)

    async def _ack(self, dev: _Device, cmd: SpeakerCommand, state: AckState,
                   detail: str = "") -> None:
        """Publish an ack; across a broker restart, wait for the reconnect (bounded)."""
        ack = SpeakerAck(cmd_id=cmd.cmd_id, campaign_id=cmd.campaign_id, state=state,
                         at=beijing(time.time()), detail=detail, alert_id=cmd.alert_id,
                         step=cmd.step, device=dev.id)
        for _ in range(5):
            client = dev.client
            if client is None or not dev.connected.is_set():
                try:
                    await asyncio.wait_for(dev.connected.wait(), 10)
                except TimeoutError:
                    break
                continue
            try:
                await client.publish(self.topics.dev_ack(dev.id), encode(ack), qos=1, timeout=5)
                return
            except aiomqtt.MqttError:
                await asyncio.sleep(0.1)
        log.warning("speaker could not report", device=dev.id, cmd_id=cmd.cmd_id,
                    state=state.value)
