"""The channel contract: the one module of warnbus a channel imports.

A channel (`channels/`, or a third party's package found through the `warnbus.channels` entry
points) imports from warnbus only this module, besides its own helpers and its provider's SDK:

- `ChannelInfo`: what a channel is (medium, address field, person or device, rate, breaker,
  length, secrets), declared by the channel from its configuration and read by the engine,
  which never infers anything from the name a deployment gives a channel;
- the protocols a channel implements: `Channel` (with `from_config`), and optionally
  `WebhookChannel` and `ListeningChannel`; `EventSink`, how it hands provider events back;
- configuration: `ChannelConfig` (the keys every channel takes), `load_config` (strict, errors
  naming the channel and the field), `Secret`;
- `RequestGate` / `admit_request`: the signature-first rate gate a webhook asks;
- re-exported from the engine: the records a channel reads (`Delivery` ...), the one phone
  mask, the errors a channel raises, and the hardened XML parser (`parse_xml_safely`).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextvars import ContextVar
from enum import StrEnum
from operator import attrgetter
from typing import Any, Protocol, Self, TypeVar, runtime_checkable
from urllib.parse import urlsplit

import msgspec
from lxml import etree

from warnbus.domain.feedback import (
    FEEDBACK_ZH,
    KEYPAD_PROMPT,
    FeedbackKind,
    Report,
    keypad_report,
    parse_report,
)
from warnbus.domain.models import (
    LEVEL_NAMES_ZH,
    AckVia,
    Delivery,
    DeliveryKind,
    Level,
    Outcome,
    Person,
    Receipt,
    TargetKind,
    delivery_id_for,
    mask_phone,
    mask_phones_in,
    mask_text,
)
from warnbus.domain.states import DeviceState
from warnbus.errors import (
    AuthError,
    ChannelError,
    ConfigError,
    IngestError,
    LimitedChannelError,
    PermanentChannelError,
    TransientChannelError,
)
from warnbus.ingest.safexml import parse_xml as _parse_xml

__all__ = [
    "CONFIRMATION_ZH",
    "FEEDBACK_ZH",
    "KEYPAD_PROMPT",
    "LEVEL_NAMES_ZH",
    "MEDIUM_ADDRESS",
    "PERSON_FIELD",
    "REQUEST_GATE",
    "AckVia",
    "Address",
    "AuthError",
    "Channel",
    "ChannelConfig",
    "ChannelError",
    "ChannelInfo",
    "ConfigError",
    "Confirmation",
    "Delivery",
    "DeliveryKind",
    "DeviceState",
    "EventSink",
    "FeedbackKind",
    "Level",
    "LimitedChannelError",
    "ListeningChannel",
    "Medium",
    "Outcome",
    "PermanentChannelError",
    "ProviderStatus",
    "Receipt",
    "Report",
    "RequestGate",
    "Secret",
    "TargetKind",
    "TransientChannelError",
    "WebhookChannel",
    "WebhookHandler",
    "admit_request",
    "breaker_key_for",
    "delivery_id_for",
    "keypad_report",
    "load_config",
    "mask_phone",
    "mask_phones_in",
    "mask_text",
    "parse_report",
    "parse_xml_safely",
    "person_address",
    "secret_fields_of",
    "secret_hook",
]

# --------------------------------------------------------------------------- what a channel is


class Medium(StrEnum):
    """How a message reaches its addressee. Message templates are chosen by it (after the
    channel's own name), and the console prices SMS and voice by it."""

    VOICE = "voice"  # a call, read aloud; a key press confirms
    SMS = "sms"  # a text; a reply confirms
    WECOM = "wecom"  # a WeCom (企业微信) app message; its button confirms
    LOUDSPEAKER = "loudspeaker"  # a broadcast over an area's speakers; playout is reported


class Address(StrEnum):
    """What a delivery's `address` holds: a person's contact field, or an area."""

    PHONE = "phone"  # Person.phone, E.164
    WECOM = "wecom"  # Person.wecom, the WeCom userid
    AREA = "area"  # a village code: every speaker of the area (the broker fans out)


#: The address each medium takes.
MEDIUM_ADDRESS: Mapping[Medium, Address] = {
    Medium.VOICE: Address.PHONE, Medium.SMS: Address.PHONE, Medium.WECOM: Address.WECOM,
    Medium.LOUDSPEAKER: Address.AREA,
}
#: The field of a Person that holds each person address.
PERSON_FIELD: Mapping[Address, Callable[[Person], str | None]] = {
    Address.PHONE: attrgetter("phone"), Address.WECOM: attrgetter("wecom"),
}


def person_address(person: Person, address: Address) -> str | None:
    """The person's `address` (None when they have none, or `address` is not a person's)."""
    get = PERSON_FIELD.get(address)
    value = get(person) if get is not None else None
    return value or None


class ChannelInfo(msgspec.Struct, frozen=True, kw_only=True):
    """What a channel is, declared once (an instance's `info`, from its configuration).

    The engine reads it and nothing else about a channel: the planner the address and the
    target, the dispatcher the rate and the breaker key, the replies the address, the
    templates and the console the medium. A deployment may call a WeCom channel "wx".
    """

    kind: str  # the channel type: the entry point's name, e.g. "twilio-voice"
    provider: str  # whose service: "twilio", "aliyun", "tencent", "wecom", "mqtt", "test"
    medium: Medium
    address: Address
    #: Channels with the same key share a circuit breaker (`flow.breaker`): by default the
    #: provider account and the API endpoint it calls (`breaker_key_for`).
    breaker_key: str
    rate_per_s: float | None = None  # sends per second the provider allows; None: no limit
    max_length: int | None = None  # characters a message carries; longer ones are fitted
    secret_fields: tuple[str, ...] = ()  # configuration fields that are `Secret`s

    def __post_init__(self) -> None:
        if not self.kind or not self.provider or not self.breaker_key:
            raise ValueError("kind, provider and breaker_key must not be empty")
        if self.rate_per_s is not None and not self.rate_per_s > 0:
            raise ValueError("rate_per_s must be positive (or None: no limit)")
        if self.max_length is not None and self.max_length < 1:
            raise ValueError("max_length must be positive (or None)")

    @property
    def target(self) -> TargetKind:
        """Whom a delivery goes to: a person (by a contact field) or the devices of an area."""
        return TargetKind.DEVICE if self.address is Address.AREA else TargetKind.PERSON


def breaker_key_for(config: ChannelConfig, provider: str, account: str, endpoint: str = "") -> str:
    """The configured `breaker_key`, else `provider:account@host`.

    One account's products on separate endpoints (Aliyun SMS and voice) fail apart; those on
    one endpoint (Twilio's Messages and Calls) fail together and share a breaker."""
    if config.breaker_key:
        return config.breaker_key
    host = urlsplit(endpoint).netloc if "://" in endpoint else endpoint
    return f"{provider}:{account}@{host}" if host else f"{provider}:{account}"


# --------------------------------------------------------------------------- configuration


class Secret(str):
    """A configuration string that never shows itself: its repr is `Secret('***')`, and so
    is its part in the repr of a configuration, a dict or an error. `reveal()` gives it."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "Secret('***')"

    def reveal(self) -> str:
        return str.__str__(self)


class ChannelConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """The keys every channel's configuration takes; a channel's model extends it."""

    type: str = ""
    callback_url: str = ""  # public base of /hooks/<name>/: set by the composition root
    breaker_key: str = ""  # "": the provider account (see `ChannelInfo.breaker_key`)


C = TypeVar("C", bound=ChannelConfig)
_AT = re.compile(r" - at `\$\.?([^`]*)`$")


def secret_hook(tp: type, obj: Any) -> Any:
    """msgspec's `dec_hook` for models with `Secret` fields."""
    if tp is Secret:
        if isinstance(obj, str):
            return Secret(obj)
        # Named by its type only: the value of a secret never goes into an error.
        raise TypeError(f"Expected a string (a secret), got `{type(obj).__name__}`")
    raise NotImplementedError


def load_config(model: type[C], name: str, raw: Mapping[str, Any]) -> C:
    """Validate a channel's configuration once, strictly: unknown keys are errors, `Secret`
    fields become Secrets. A ConfigError names the channel and the field, never a value.

    Values set through the environment arrive as strings: "5" is taken for a number."""
    try:
        return msgspec.convert(dict(raw), model, strict=False, dec_hook=secret_hook)
    except msgspec.ValidationError as e:
        message = str(e)
        where = f"channels.{name}"
        at = _AT.search(message)
        if at is not None:
            message = message[: at.start()]
            where += f".{at.group(1)}" if at.group(1) else ""
        raise ConfigError(f"{where}: {message}") from e


def secret_fields_of(model: type[msgspec.Struct]) -> tuple[str, ...]:
    """The fields of a configuration model that hold `Secret`s (what `ChannelInfo` declares)."""
    return tuple(f.name for f in msgspec.structs.fields(model) if f.type is Secret)


# --------------------------------------------------------------------------- protocols


class ProviderStatus(StrEnum):
    """A provider's report on a delivery (status callbacks, playout reports)."""

    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"  # permanent: the policy may switch channel
    UNDELIVERED = "undelivered"
    NO_ANSWER = "no-answer"  # calls: rang out, busy, answered without the key
    ANSWERED = "answered"  # calls: heard (in full or in part) without the key: not an ack
    LIMITED = "limited"  # refused by the provider's per-number limit: not the person's failure
    PLAYING = "playing"  # loudspeakers
    DONE = "done"


@runtime_checkable
class Channel(Protocol):
    """How a message reaches a person or device. See channels/ for implementations.

    `from_config` builds one from its configuration (`load_config`), the composition root
    calls it for each `[channels.<name>]`. `send` returns a Receipt or raises
    TransientChannelError (retry after a while) or PermanentChannelError (do not retry; the
    policy may switch channel).
    """

    @property
    def name(self) -> str: ...

    @property
    def info(self) -> ChannelInfo: ...

    @classmethod
    def from_config(cls, name: str, raw: Mapping[str, Any]) -> Self: ...

    def send(self, delivery: Delivery) -> Awaitable[Receipt]: ...

    def aclose(self) -> Awaitable[None]: ...


class Confirmation(StrEnum):
    """What became of a person's confirmation (`EventSink.confirm`), for the channel to word
    to the person: only `RECORDED` is true (so `if await sink.confirm(...)` reads as before,
    when it returned True for "recorded now"). `CONFIRMATION_ZH` says each in Chinese."""

    RECORDED = "recorded"  # confirmed now
    DUPLICATE = "duplicate"  # had confirmed before: nothing new
    LIFTED = "lifted"  # the warning had been lifted (解除), or an Update had dropped the
    # person's area: kept as a late confirmation only
    ENDED = "ended"  # the campaign had ended (expired): kept as a late confirmation only
    UNKNOWN = "unknown"  # no such campaign, or not its target: nothing recorded

    def __bool__(self) -> bool:
        return self is Confirmation.RECORDED

    @property
    def confirmed(self) -> bool:
        """The person stands confirmed in a running campaign (now or before)."""
        return self in (Confirmation.RECORDED, Confirmation.DUPLICATE)

    @classmethod
    def of(cls, value: Confirmation | bool) -> Confirmation:
        """A sink's answer as a Confirmation: an older sink's True is `RECORDED` and its
        False `DUPLICATE` (it said only whether the confirmation was recorded now)."""
        if isinstance(value, Confirmation):
            return value
        return cls.RECORDED if value else cls.DUPLICATE


#: What a person hears or reads after confirming (a call's closing line, a page). A late one
#: never says 已确认: the engine keeps it as late, and the person learns why no more is asked.
CONFIRMATION_ZH: Mapping[Confirmation, str] = {
    Confirmation.RECORDED: "已确认，谢谢。",
    Confirmation.DUPLICATE: "您已确认过，谢谢。",
    Confirmation.LIFTED: "已收到。该预警已解除。",
    Confirmation.ENDED: "已收到。该预警已结束。",
    Confirmation.UNKNOWN: "未找到需要您确认的预警。",
}


class EventSink(Protocol):
    """How a channel hands provider events to the engine without importing it.

    Channels put `campaign_id`, `delivery_id` and `target_id` into what the provider echoes
    back (callback URLs, card keys, MQTT payloads); every method is idempotent.
    """

    def delivery_status(
        self, campaign_id: str, delivery_id: str, target_id: str, status: ProviderStatus,
        detail: str = "",
    ) -> Awaitable[None]: ...

    def confirm(
        self, campaign_id: str, person_id: str, via: AckVia, delivery_id: str | None = None
    ) -> Awaitable[Confirmation]:
        """A person confirmed (DTMF key, WeCom button): what became of it, for the channel
        to word (`Confirmation`; true only when recorded now). A confirmation after the
        campaign ended (or after an Update dropped the person's area) is kept as late and
        answered `LIFTED` or `ENDED`, never as confirmed.
        With `delivery_id` (the confirmation came through that delivery) the engine also
        marks the delivery delivered: the channel need not report it separately."""
        ...

    def confirm_from(self, channel: str, address: str, via: AckVia, reply_id: str = ""
                     ) -> Awaitable[list[str]]:
        """An inbound reply (e.g. SMS "1" from a phone): confirm the sender's open campaigns,
        those where a message through `channel` (the name of the channel the reply came
        through; its `info.address` says what `address` is) had reached them before.
        `reply_id`, the provider's id of the reply (e.g. Twilio's MessageSid): the same reply
        again, resent or replayed, confirms nothing more. Returns the campaigns confirmed now."""
        ...

    def report_from(self, channel: str, address: str, via: AckVia, report: Report,
                    reply_id: str = "") -> Awaitable[list[str]]:
        """An inbound reply that reports after the ack (an SMS "转移 35", `parse_report`):
        kept in the sender's active campaigns where a message through `channel` had reached
        them (it confirms them there first, as "1" would). `reply_id` as for `confirm_from`.
        Returns the campaigns where the report was kept."""
        ...

    def report(self, campaign_id: str, person_id: str, via: AckVia, report: Report,
               event_id: str = "") -> Awaitable[bool]:
        """A person who confirmed reports through what names the campaign (keys after the
        confirmation on a call, the WeCom card): whether it was kept (False: no such
        campaign or person, or they have not confirmed). `event_id`, what identifies the
        provider's event (a call's id and keys, a card callback's ResponseCode): the same
        event again, resent or replayed, changes nothing and is answered True as the first
        was."""
        ...


#: aiohttp-style handler: the channel module owns the request parsing (signatures etc.).
WebhookHandler = Callable[[Any], Awaitable[Any]]


@runtime_checkable
class WebhookChannel(Protocol):
    """A channel that receives provider callbacks over HTTP (mounted under /hooks/<name>/)."""

    def webhooks(self, sink: EventSink) -> Sequence[tuple[str, str, WebhookHandler]]:
        """(method, path relative to /hooks/<channel name>/, handler) triples."""
        ...


@runtime_checkable
class ListeningChannel(Protocol):
    """A channel with a background listener (e.g. MQTT device acks)."""

    def start(self, sink: EventSink) -> Awaitable[None]: ...


class RequestGate(Protocol):
    """The rate limits of a public route whose requests carry a signature (provider callbacks
    under `/hooks/`, ack links): genuine requests and failed ones spend separate budgets.

    A handler asks once, right after checking the signature (a cheap HMAC) and before any other
    work: `admit(True)` spends from the budget genuine requests share, `admit(False)` from the
    smaller one of requests that failed the check. Either raises `RateLimitedError` (a 429)
    when its budget is spent; later calls for the same request change nothing. So a flood of
    unsigned or forged requests never costs a genuine one its place."""

    def admit(self, verified: bool) -> Awaitable[None]: ...


#: The gate of the public request being handled, set by the HTTP layer around its handler.
REQUEST_GATE: ContextVar[RequestGate | None] = ContextVar("warnbus_request_gate", default=None)


async def admit_request(verified: bool) -> None:
    """Ask the gate of the request being handled whether it may go on (see `RequestGate`).
    Outside the engine's HTTP layer (a channel's own test server) there is none: it may."""
    gate = REQUEST_GATE.get()
    if gate is not None:
        await gate.admit(verified)


# --------------------------------------------------------------------------- XML


def parse_xml_safely(body: bytes) -> etree._Element:
    """Parse XML from outside with the engine's hardened parser (the CAP reader's): no DTD,
    no entity expansion, nothing loaded from the network or the disk. ValueError if the body
    is not well-formed XML or holds a DTD."""
    try:
        return _parse_xml(body)
    except IngestError as e:
        raise ValueError(e.message) from e
