"""MQTT village loudspeakers (村村响 / 应急广播): MQTT 5, QoS 1, one command per area.

`send` publishes a delivery's command on the area (or device) cmd topic and, for an area
warning, a retained copy on `area/{code}/active/{campaign}` whose message expiry ends with the
alert, so a speaker that comes online later still plays it, and never after it expired. A
cancel publishes stop and clears that retained copy. The listener reports device acks to the
engine's EventSink and keeps a view of which devices are online (their LWT says offline)
and of their heartbeats (`channels.loudspeaker_status`), which it also hands to a sink that
keeps device status, so the console of any process sees it.

Every publish carries the origin check speakers verify: an HMAC-SHA256 of topic and payload
in the MQTT 5 user property `wb-sig`, under the deployment's `command_key`
(`channels.loudspeaker_sig`, docs/devices.md). A device's playout report counts only from its
own topic and only for a command sent to it or to its area: the area comes from the registry
when the sink knows devices (`DeviceDirectory`), else from the device's own status.

The connection is resumable (clean start off, a session expiry, a client id stable for the
process) and comes back within `reconnect_max_s` of the broker; on each reconnect the active
warnings this process published are published again (retained, with what is left of their
expiry), so that a broker that lost its retained messages (restarted without persistence,
or since its last save) still gives them to speakers that come online later. Device acks are
PUBACKed only after the sink took them: acks sent while we were briefly away, or while the
sink failed, are redelivered by the broker when we reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import socket
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import aiomqtt
import msgspec
import structlog
from paho.mqtt.packettypes import PacketTypes

from channels.loudspeaker_payload import (
    DEFAULT_PREFIX,
    TTS_MAX,
    AckState,
    CommandKind,
    SpeakerAck,
    SpeakerAddress,
    SpeakerCommand,
    Topics,
    backoff,
    command_for,
    decode_ack,
    encode,
    expiry_seconds,
    parse_address,
    parse_broker_url,
    properties,
    topic_level_ok,
    valid_prefix,
)
from channels.loudspeaker_sig import (
    KEY_ID,
    MIN_KEY_CHARS,
    SIG_PROPERTY,
    report_binds,
    sign,
)
from channels.loudspeaker_status import DeviceDirectory, DeviceTracker, DeviceView
from warnbus.plugin import (
    Address,
    ChannelConfig,
    ChannelInfo,
    ConfigError,
    Delivery,
    DeliveryKind,
    EventSink,
    Medium,
    PermanentChannelError,
    ProviderStatus,
    Receipt,
    Secret,
    TransientChannelError,
    breaker_key_for,
    load_config,
    secret_fields_of,
)

log = structlog.get_logger("channels.loudspeaker")

_ACK_STATUS: Mapping[AckState, ProviderStatus] = {
    AckState.RECEIVED: ProviderStatus.DELIVERED,
    AckState.PLAYING: ProviderStatus.PLAYING,
    AckState.DONE: ProviderStatus.DONE,
    AckState.FAILED: ProviderStatus.FAILED,
}
_SINK_TRIES = 3  # then reconnect, so the broker redelivers what we did not PUBACK


class _IncomingQueue(asyncio.Queue[aiomqtt.Message]):
    """aiomqtt's queue of incoming messages, each kept without its MQTT 5 properties.

    Nothing here reads them, and paho gives every Properties object lookup tables of its
    own (about 60 objects for the cyclic collector to walk): ~900 device reports waiting
    in a first wave made each full collection of the engine's heap ~40 ms longer, a
    stall of the event loop.
    """

    def put_nowait(self, item: aiomqtt.Message) -> None:
        item.properties = None
        super().put_nowait(item)


PositiveS = Annotated[float, msgspec.Meta(gt=0)]


class LoudspeakerConfig(ChannelConfig, forbid_unknown_fields=True, frozen=True):
    type: str = "mqtt-loudspeaker"
    # None: one publish per area, and the broker does the fan-out
    rate_per_s: Annotated[float, msgspec.Meta(gt=0)] | None = None
    url: str = "mqtt://127.0.0.1:1883"  # may carry user:password (percent-encoded)
    username: str = ""  # else the URL's
    password: Secret = Secret("")  # else the URL's
    # The per-deployment key commands are signed with (wb-sig), shared with the speakers.
    command_key: Secret = Secret("")
    command_key_id: str = "k1"
    client_id: str = "warnbus"  # prefix; the id adds the channel name, host and pid
    keepalive_s: Annotated[int, msgspec.Meta(ge=5, le=3600)] = 30
    topic_prefix: str = DEFAULT_PREFIX
    volume: Annotated[int, msgspec.Meta(ge=0, le=100)] = 80
    repeat: Annotated[int, msgspec.Meta(ge=1, le=20)] = 2
    session_expiry_s: Annotated[int, msgspec.Meta(ge=0)] = 600
    default_ttl_s: Annotated[int, msgspec.Meta(ge=1)] = 6 * 3600  # alert without an expiry
    publish_timeout_s: PositiveS = 10.0  # no PUBACK by then: transient failure
    connect_wait_s: Annotated[float, msgspec.Meta(ge=0)] = 1.0  # send waits this for a link
    reconnect_min_s: PositiveS = 0.5
    # At most this long between tries while the broker is away: back within seconds of it.
    reconnect_max_s: PositiveS = 5.0


@dataclass
class _Link:
    """One live connection; `lost` is set when it ends, waking sends awaiting a PUBACK."""

    client: aiomqtt.Client
    lost: asyncio.Event
    subscribed: bool = False


class _SinkDown(Exception):
    """The sink kept failing: drop the connection so unacked device acks come again."""


class Loudspeakers:
    """The `mqtt-loudspeaker` channel; also a ListeningChannel for device acks and status."""

    def __init__(self, name: str, config: LoudspeakerConfig,
                 clock: Callable[[], float] = time.time) -> None:
        self.name = name
        self.config = config
        self.topics = Topics(config.topic_prefix)
        self.broker = parse_broker_url(config.url)
        account = config.username or self.broker.username or ""
        self.info = ChannelInfo(
            kind="mqtt-loudspeaker", provider="mqtt", medium=Medium.LOUDSPEAKER,
            address=Address.AREA, rate_per_s=config.rate_per_s,
            breaker_key=breaker_key_for(config, "mqtt", account,
                                        f"{self.broker.host}:{self.broker.port}"),
            # TTS text; longer warnings are shortened (tts_text)
            max_length=TTS_MAX, secret_fields=secret_fields_of(LoudspeakerConfig))
        # The URL in logs and errors: the account's name, never its password.
        self.display_url = dataclasses.replace(
            self.broker, username=config.username or self.broker.username).display
        # Stable for this process's life, so reconnects resume the session; unique per
        # process, so several engine processes never take each other's session over.
        self.client_id = f"{config.client_id}-{name}-{socket.gethostname()}-{os.getpid()}"[:128]
        self._clock = clock
        self._sink: EventSink | None = None
        self._link: _Link | None = None
        self._up = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._status = DeviceTracker(clock)
        # The active warnings this process published: retained topic -> (payload, expiry).
        self._active: dict[str, tuple[bytes, float]] = {}
        self._again: asyncio.Task[None] | None = None

    @classmethod
    def from_config(cls, name: str, raw: Mapping[str, Any]) -> Loudspeakers:
        config = load_config(LoudspeakerConfig, name, raw)
        try:
            broker = parse_broker_url(config.url)
        except ValueError as e:
            raise ConfigError(f"channels.{name}.url: {e}") from e
        if broker.username or broker.password:
            # Credentials from the URL (WARNBUS_MQTT_URL) move to the secret fields, so
            # that the configuration's url (and its repr) never holds a password.
            config = msgspec.structs.replace(
                config, url=broker.bare, username=config.username or broker.username or "",
                password=config.password if config.password.reveal()
                else Secret(broker.password or ""))
        if len(config.command_key.reveal()) < MIN_KEY_CHARS:
            raise ConfigError(
                f"channels.{name}.command_key: set the deployment's command signing key (at "
                f"least {MIN_KEY_CHARS} characters, shared with the speakers; e.g. "
                f"WARNBUS_CHANNELS__{name.upper()}__COMMAND_KEY): speakers refuse unsigned "
                "commands (docs/devices.md)")
        if not KEY_ID.fullmatch(config.command_key_id):
            raise ConfigError(f"channels.{name}.command_key_id: 1-32 of A-Z a-z 0-9 . _ -")
        if not valid_prefix(config.topic_prefix):
            raise ConfigError(f"channels.{name}.topic_prefix: {config.topic_prefix!r} is not "
                              "a topic prefix (no empty levels, no wildcards)")
        return cls(name, config)

    # ----------------------------------------------------------------- public

    @property
    def connected(self) -> bool:
        return self._link is not None

    def devices_status(self) -> dict[str, DeviceView]:
        """Device id → last online/offline report and heartbeat (this process's view)."""
        return self._status.view()

    async def start(self, sink: EventSink) -> None:
        """Listen for device acks and status; reconnects by itself until `aclose`."""
        self._sink = sink
        self._ensure_running()
        link = self._link
        if link is not None and not link.subscribed:
            await self._subscribe(link)

    async def send(self, delivery: Delivery) -> Receipt:
        """Publish the delivery's command (QoS 1) and wait for the broker's PUBACK."""
        try:
            target = parse_address(delivery.address)
        except ValueError as e:
            raise PermanentChannelError(f"loudspeaker: {e}", provider_code="bad-address") from e
        now = self._clock()
        stop = delivery.kind is DeliveryKind.CANCEL  # stopping is always safe, even late
        if not stop and delivery.expires_at is not None and delivery.expires_at <= now:
            raise PermanentChannelError(
                f"loudspeaker: the alert expired {now - delivery.expires_at:.0f}s ago; "
                "an expired warning is not broadcast", provider_code="expired")
        cmd = command_for(delivery, target, now=now, volume=self.config.volume,
                          repeat=self.config.repeat)
        publishes = self._plan(cmd, target, delivery.expires_at, now)
        link = await self._wait_link()
        results = await asyncio.gather(
            *(self._publish(link, *p) for p in publishes), return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException):
                raise r
        self._keep(publishes, now)
        log.debug("loudspeaker command published", delivery_id=delivery.id,
                  kind=cmd.kind.value, address=delivery.address)
        return Receipt(provider_id=cmd.cmd_id)

    async def aclose(self) -> None:
        """Disconnect cleanly (the session stays for `session_expiry_s`) and stop listening."""
        self._closed = True
        if self._again is not None:
            self._again.cancel()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            # aiomqtt waits up to the client timeout for the broker's side of DISCONNECT; a
            # close must not hang past that whatever the connection's state (tests have seen
            # a close that did not return at all), so it is bounded here too.
            done, _ = await asyncio.wait({task}, timeout=self.config.publish_timeout_s + 2)
            if not done:
                log.warning("loudspeaker channel did not close in time", broker=self.display_url)

    # ----------------------------------------------------------------- sending

    def _plan(self, cmd: SpeakerCommand, target: SpeakerAddress, expires_at: float | None,
              now: float) -> list[tuple[str, bytes, bool, int | None]]:
        """(topic, payload, retain, expiry) for each publish a command needs."""
        payload = encode(cmd)
        if target.device is not None:
            topic = self.topics.dev_cmd(target.device)
        else:
            assert target.area is not None
            topic = self.topics.area_cmd(target.area)
        if cmd.kind is CommandKind.STOP:
            out: list[tuple[str, bytes, bool, int | None]] = [(topic, payload, False, None)]
            if target.area is not None:  # empty retained payload: the broker drops the copy
                out.append((self._active_topic(target.area, cmd.campaign_id), b"", True, None))
            return out
        # The expiry also bounds cmd messages queued for speakers with persistent sessions.
        ttl = expiry_seconds(expires_at, now, self.config.default_ttl_s)
        out = [(topic, payload, False, ttl)]
        if target.area is not None:
            out.append((self._active_topic(target.area, cmd.campaign_id), payload, True, ttl))
        return out

    def _keep(self, publishes: list[tuple[str, bytes, bool, int | None]], now: float) -> None:
        """Remember the retained copies just published (an empty one clears its topic)."""
        for topic, payload, retain, expiry in publishes:
            if not retain:
                continue
            if payload and expiry:
                self._active[topic] = (payload, now + expiry)
            else:
                self._active.pop(topic, None)

    async def _publish_again(self, link: _Link) -> None:
        """Publish the still-valid active warnings again after a reconnect (retained)."""
        now = self._clock()
        for topic, (payload, until) in list(self._active.items()):
            left = int(until - now)
            if left < 1:
                self._active.pop(topic, None)
                continue
            if self._active.get(topic) != (payload, until):
                continue  # stopped or replaced meanwhile
            try:
                await self._publish(link, topic, payload, True, left)
            except TransientChannelError as e:  # the link went again: the next one retries
                log.warning("active warnings not published again", broker=self.display_url,
                            error=e.message)
                return
        if self._active:
            log.info("active warnings published again", broker=self.display_url,
                     n=len(self._active))

    def _active_topic(self, area: str, campaign_id: str) -> str:
        if not topic_level_ok(campaign_id):
            raise PermanentChannelError(f"loudspeaker: campaign id {campaign_id!r} cannot be "
                                        "a topic level", provider_code="bad-campaign-id")
        return self.topics.area_active(area, campaign_id)

    async def _wait_link(self) -> _Link:
        if self._closed:
            raise TransientChannelError("loudspeaker: the channel is closed")
        self._ensure_running()
        if self._link is None and self.config.connect_wait_s > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._up.wait(), self.config.connect_wait_s)
        if self._link is None:
            raise TransientChannelError(
                f"loudspeaker: not connected to the MQTT broker at {self.display_url}",
                provider_code="not-connected")
        return self._link

    async def _publish(self, link: _Link, topic: str, payload: bytes, retain: bool,
                       expiry: int | None) -> None:
        c = self.config
        sig = sign(c.command_key.reveal(), c.command_key_id, int(time.time()), topic, payload)
        values: dict[str, object] = {"UserProperty": [(SIG_PROPERTY, sig)]}
        if expiry is not None:
            values["MessageExpiryInterval"] = expiry
        props = properties(PacketTypes.PUBLISH, **values)
        pub = asyncio.ensure_future(link.client.publish(
            topic, payload, qos=1, retain=retain, properties=props, timeout=float("inf")))
        lost = asyncio.ensure_future(link.lost.wait())
        try:
            done, _ = await asyncio.wait({pub, lost}, timeout=self.config.publish_timeout_s,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
        if pub not in done:
            pub.cancel()
            why = "the connection was lost" if lost in done else (
                f"no PUBACK within {self.config.publish_timeout_s:g}s")
            raise TransientChannelError(f"loudspeaker: {why} publishing to {topic}",
                                        provider_code="no-puback")
        try:
            pub.result()
        except aiomqtt.MqttError as e:
            raise TransientChannelError(f"loudspeaker: publish to {topic} failed: {e}",
                                        provider_code="publish") from e

    # ----------------------------------------------------------------- connection

    def _ensure_running(self) -> None:
        if self._task is None and not self._closed:
            self._task = asyncio.create_task(self._run(), name=f"mqtt-{self.name}")

    def _client(self) -> aiomqtt.Client:
        c = self.config
        props = properties(PacketTypes.CONNECT, SessionExpiryInterval=c.session_expiry_s)
        client = aiomqtt.Client(
            self.broker.host, self.broker.port, identifier=self.client_id,
            username=c.username or self.broker.username,
            password=c.password.reveal() or self.broker.password,
            protocol=aiomqtt.ProtocolVersion.V5, clean_start=False, properties=props,
            keepalive=c.keepalive_s, timeout=c.publish_timeout_s,
            tls_context=ssl.create_default_context() if self.broker.tls else None,
            logger=logging.getLogger("channels.loudspeaker.mqtt"),
            queue_type=_IncomingQueue,
        )
        # aiomqtt does not expose paho's manual ack: PUBACK device acks only once recorded.
        client._client.manual_ack_set(True)
        client.pending_calls_threshold = 1000  # a wave of sends is not a warning sign
        return client

    async def _run(self) -> None:
        attempt = 0
        while not self._closed:
            link: _Link | None = None
            try:
                client = self._client()
                async with client:
                    link = _Link(client, asyncio.Event())
                    if self._sink is not None:
                        await self._subscribe(link)
                    self._link = link
                    self._up.set()
                    attempt = 0
                    if self._active:
                        self._again = asyncio.create_task(self._publish_again(link))
                    log.info("loudspeaker channel connected", broker=self.display_url,
                             client_id=self.client_id)
                    async for message in client.messages:
                        await self._handle(link, message)
            except (aiomqtt.MqttError, _SinkDown, OSError) as e:
                log.warning("loudspeaker channel disconnected", broker=self.display_url,
                            error=str(e) or type(e).__name__, attempt=attempt)
            finally:
                self._up.clear()
                self._link = None
                if link is not None:
                    link.lost.set()
            delay = backoff(attempt, self.config.reconnect_min_s, self.config.reconnect_max_s)
            attempt += 1
            await asyncio.sleep(delay)

    async def _subscribe(self, link: _Link) -> None:
        # Every time, not only on a fresh session: a broker without persistence forgets them,
        # and re-subscribing also brings the retained status of every device again.
        link.subscribed = True
        await link.client.subscribe([(self.topics.all_acks, 1), (self.topics.all_status, 1)])

    # ----------------------------------------------------------------- listening

    async def _handle(self, link: _Link, message: aiomqtt.Message) -> None:
        where = self.topics.device_topic(message.topic.value)
        payload = message.payload if isinstance(message.payload, bytes) else b""
        if where is not None:
            device, leaf = where
            if leaf == "ack":
                await self._on_ack(device, payload)
            elif leaf == "status":
                await self._status.on_status(device, payload, self._sink)
        if message.qos > 0:
            link.client._client.ack(message.mid, message.qos)

    async def _on_ack(self, device: str, payload: bytes) -> None:
        sink = self._sink
        try:
            ack = decode_ack(payload)
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            log.warning("malformed loudspeaker ack dropped", device=device, error=str(e))
            return
        if sink is None:
            return
        if why := self._foreign(device, ack, sink):
            # Not this device's to report: changes nothing (and the broker's ACL should
            # not have let it through: a sign of a misconfigured or hostile device).
            log.warning("loudspeaker report refused", device=device, delivery_id=ack.cmd_id,
                        campaign_id=ack.campaign_id, reason=why)
            return
        status = _ACK_STATUS[ack.state]
        for n in range(_SINK_TRIES):
            try:
                await sink.delivery_status(ack.campaign_id, ack.cmd_id, f"dev:{device}", status,
                                           ack.detail)
                return
            except Exception as e:  # the engine's store may be down: retry, then reconnect
                log.warning("sink refused a loudspeaker ack", device=device,
                            delivery_id=ack.cmd_id, error=repr(e), try_=n + 1)
                await asyncio.sleep(0.2 * 2**n)
        raise _SinkDown(f"the sink refused an ack of {device} {_SINK_TRIES} times")

    def _foreign(self, device: str, ack: SpeakerAck, sink: object) -> str | None:
        """Why a report on `dev/{device}/ack` is not this device's to make, or None."""
        if ack.device and ack.device != device:
            return f"the report names device {ack.device[:64]!r}"
        if isinstance(sink, DeviceDirectory):
            area = sink.device_area(device)
        else:  # no registry at hand: the area the device itself reported
            area = self._status.area_of(device)
        if not report_binds(ack.cmd_id, ack.campaign_id, ack.alert_id, ack.step, self.name,
                            device=device, area=area):
            return "the command was not sent to this device or its area"
        return None
