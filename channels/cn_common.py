"""What the Aliyun and Tencent Cloud channels share: config, numbers, receipt hooks, memory.

Neither provider signs its callbacks. A callback is taken only on a path holding the
deployment's `hook_secret` (a wrong or missing secret is a 404, like any unknown path) and,
when `allow_from` is set, only from those source networks. Each callback is then matched to
what this process sent (`SentBook`); duplicates and late repeats change nothing (`Seen`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Self

import msgspec
import structlog
from aiohttp import web

from warnbus.plugin import (
    Address,
    ChannelConfig,
    ChannelInfo,
    EventSink,
    Medium,
    PermanentChannelError,
    Secret,
    WebhookHandler,
    admit_request,
    load_config,
    mask_phone,
    secret_fields_of,
)

if TYPE_CHECKING:
    from channels.cn_receipts import Receipts

log = structlog.get_logger("channels.cn")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

CALLBACK_MAX_BYTES = 256 * 1024  # a push carries at most a few hundred receipts
SECRET_MIN_CHARS = 16
_E164_CN = re.compile(r"^\+86(1\d{10}|0\d{9,11})$")
_URL = re.compile(r"https?://\S+", re.IGNORECASE)

__all__ = ["CALLBACK_MAX_BYTES", "CloudChannel", "HookConfig", "HookGuard", "PullLoop", "Seen",
           "SentBook", "SentRef", "called_number", "e164", "items_of", "national_number",
           "without_links"]


class HookConfig(ChannelConfig, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """How receipts come back: pushed to our hooks, or pulled from the query APIs."""

    receipts: Literal["push", "pull"] = "push"
    hook_secret: Secret = Secret("")  # the secret path segment of every push URL
    allow_from: tuple[str, ...] = ()  # source networks allowed to push (CIDR); () = any
    pull_interval_s: float = 5.0
    pull_max_age_s: float = 7200.0  # stop asking about a send this much older
    timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if self.receipts == "push" and len(self.hook_secret) < SECRET_MIN_CHARS:
            raise ValueError(f"hook_secret must be at least {SECRET_MIN_CHARS} characters "
                             "(receipts are pushed to a path holding it)")
        if self.hook_secret and not re.fullmatch(r"[A-Za-z0-9_-]+", self.hook_secret):
            raise ValueError("hook_secret may hold only letters, digits, '-' and '_'")
        for net in self.allow_from:
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError as e:
                raise ValueError(f"allow_from: {net!r} is not a network ({e})") from e
        if self.pull_interval_s <= 0 or self.timeout_s <= 0 or self.pull_max_age_s <= 0:
            raise ValueError("pull_interval_s, pull_max_age_s and timeout_s must be positive")


# --------------------------------------------------------------------------- numbers


def national_number(address: str) -> str:
    """`+8613812345678` -> `13812345678`: what the mainland APIs take as a called number.

    Only mainland numbers are accepted; anything else is not a number these accounts can
    reach (ValueError, a permanent failure for the caller)."""
    value = address.replace(" ", "").replace("-", "")
    if value.startswith("0086"):
        value = "+" + value[2:]
    if not value.startswith("+"):
        value = "+86" + value
    if not _E164_CN.match(value):
        raise ValueError("not a mainland China number")
    return value[3:]


def called_number(address: str, where: str, code: str) -> str:
    """The national number of `address` for a send; PermanentChannelError (with the
    provider's own `code` for a bad number) when it is not a mainland number."""
    try:
        return national_number(address)
    except ValueError as e:
        raise PermanentChannelError(f"{where} to {mask_phone(address)}: {e}",
                                    provider_code=code) from e


def e164(number: str, nationcode: str = "86") -> str:
    """A provider's report of a number (`13812345678`, `+8613812345678`) as E.164."""
    n = number.strip()
    if n.startswith("+"):
        return n
    if n.startswith("00"):
        return "+" + n[2:]
    code = nationcode.strip().lstrip("+") or "86"
    return f"+{code}{n}"


def without_links(text: str, link: str | None) -> str:
    """The text without URLs: neither provider lets a template variable carry one.

    The clause that introduces the ack link ("，或点击链接确认：URL") goes with it; SMS
    replies and key presses confirm on these channels."""
    if link and link in text:
        at = text.find(link)
        cut = max(text.rfind("，", 0, at), text.rfind(",", 0, at))
        start = cut if cut >= 0 else at
        text = text[:start] + text[at + len(link):]
    return " ".join(_URL.sub("", text).split())


# --------------------------------------------------------------------------- hooks


class HookGuard:
    """Admits a provider push: the secret path (by routing), the source network, the size."""

    def __init__(self, channel: str, config: HookConfig) -> None:
        self.channel = channel
        self.secret = config.hook_secret.reveal()
        self.nets = tuple(ipaddress.ip_network(n, strict=False) for n in config.allow_from)

    def path(self, name: str) -> str:
        return f"{self.secret}/{name}"

    def public_url(self, base: str, name: str) -> str:
        """The URL to enter in the provider's console for the `name` push."""
        return f"{base.rstrip('/')}/{self.path(name)}"

    def allowed(self, request: web.Request) -> bool:
        if not self.nets:
            return True
        try:
            peer = ipaddress.ip_address(request.remote or "")
        except ValueError:
            return False
        return any(peer in net for net in self.nets)

    async def json(self, request: web.Request) -> Any:
        """The pushed JSON, or a web.Response to answer instead (refused or unreadable)."""
        # The secret path (routing) and the source network are what this push is signed
        # with: they decide which rate limit it spends (`models.RequestGate`).
        if not self.allowed(request):
            await admit_request(False)
            log.warning("cn push refused: source not allowed", channel=self.channel,
                        peer=request.remote)
            return web.Response(status=403, text="forbidden")
        await admit_request(True)
        if (request.content_length or 0) > CALLBACK_MAX_BYTES:
            return web.Response(status=413, text="too large")
        body = await request.content.read(CALLBACK_MAX_BYTES + 1)
        if len(body) > CALLBACK_MAX_BYTES:
            return web.Response(status=413, text="too large")
        try:
            return msgspec.json.decode(body)
        except msgspec.DecodeError:
            log.warning("cn push refused: not JSON", channel=self.channel, length=len(body))
            return web.Response(status=400, text="bad request")


def items_of(data: Any, kind: type[Any]) -> list[Any]:
    """A push's items as `kind` records (a JSON array, or one object); ValidationError if not.

    Numbers sent as strings and strings as numbers are both accepted: the providers' own
    examples mix them."""
    items = data if isinstance(data, list) else [data]
    return [msgspec.convert(item, kind, strict=False) for item in items]


# --------------------------------------------------------------------------- memory


@dataclass(frozen=True)
class SentRef:
    """What a provider id stands for: the delivery it carried, and what to ask about it."""

    campaign_id: str
    delivery_id: str
    target_id: str
    address: str
    at: float  # wall time of the send
    api: str = ""  # which API placed it (voice: IvrCall or SingleCallByTts)
    send: str = ""  # the send it is part of (its first message's id): statuses count per send


class SentBook:
    """Provider id -> SentRef, newest kept; what the pull loop still asks about.

    In memory: a push that reaches another process, or comes after a restart, is not found
    here. A key press or reply is then confirmed by its number (`sink.confirm_from`), so a
    confirmation is never lost; only the status of that one send is (deadlines drive the
    redials, statuses only inform)."""

    def __init__(self, keep: int = 100_000) -> None:
        self._refs: OrderedDict[str, SentRef] = OrderedDict()
        self._open: dict[str, None] = {}
        self._keep = keep

    def add(self, provider_id: str, ref: SentRef) -> None:
        self._refs[provider_id] = ref
        self._open[provider_id] = None
        while len(self._refs) > self._keep:
            old, _ = self._refs.popitem(last=False)
            self._open.pop(old, None)

    def get(self, provider_id: str) -> SentRef | None:
        return self._refs.get(provider_id)

    def close(self, provider_id: str) -> None:
        """No more news expected for this id: the pull loop stops asking."""
        self._open.pop(provider_id, None)

    def open_ids(self, now: float, max_age_s: float) -> list[tuple[str, SentRef]]:
        out: list[tuple[str, SentRef]] = []
        for pid in list(self._open):
            ref = self._refs.get(pid)
            if ref is None or now - ref.at > max_age_s:
                self._open.pop(pid, None)
            else:
                out.append((pid, ref))
        return out


class Seen:
    """Keys already acted on (bounded): providers push the same receipt more than once."""

    def __init__(self, keep: int = 200_000) -> None:
        self._keys: OrderedDict[tuple[str, ...], None] = OrderedDict()
        self._keep = keep

    def first(self, *key: str) -> bool:
        if key in self._keys:
            return False
        self._keys[key] = None
        while len(self._keys) > self._keep:
            self._keys.popitem(last=False)
        return True

    def has(self, *key: str) -> bool:
        return key in self._keys

    def forget(self, *key: str) -> None:
        self._keys.pop(key, None)


class PullLoop:
    """One background task calling `tick` every `interval_s` until stopped."""

    def __init__(self, channel: str, interval_s: float,
                 tick: Callable[[], Awaitable[None]]) -> None:
        self.channel, self.interval_s, self._tick = channel, interval_s, tick
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"pull-{self.channel}")

    async def _run(self) -> None:
        while True:
            started = time.monotonic()
            try:
                await self._tick()
            except asyncio.CancelledError:
                raise
            except Exception:  # a failed poll is retried at the next tick
                log.exception("cn pull failed; will ask again", channel=self.channel)
            await asyncio.sleep(max(0.0, self.interval_s - (time.monotonic() - started)))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None


# --------------------------------------------------------------------------- the channels


#: A push route: (name of the hook, the kind of item it carries, what to do with each item).
Push = tuple[str, type[Any], Callable[[Any], Awaitable[None]]]


class CloudChannel:
    """What the four cloud channels (Aliyun and Tencent, SMS and voice) share: their
    `ChannelInfo`, receipts, the pull loop, start and close, and their push routes.

    A channel sets the class's KIND, MEDIUM and CONFIG and calls `_setup` from its
    `__init__`; it implements `send`, `_pull_into` (pull mode) and `webhooks` (through
    `push_routes`), and `_close` when its SDK client holds connections."""

    KIND: ClassVar[str]  # "aliyun-sms", ...: the entry point's name
    MEDIUM: ClassVar[Medium]
    CONFIG: ClassVar[type[HookConfig]]

    name: str
    info: ChannelInfo
    receipts: Receipts

    def __init__(self, name: str, config: Any) -> None:
        raise NotImplementedError

    def _setup(self, name: str, config: HookConfig, provider: str, *, rate_per_s: float,
               breaker_key: str, max_length: int) -> None:
        from channels.cn_receipts import Receipts

        self.name = name
        self._hooks = config
        self.info = ChannelInfo(
            kind=self.KIND, provider=self.KIND.split("-")[0], medium=self.MEDIUM,
            address=Address.PHONE, rate_per_s=rate_per_s, breaker_key=breaker_key,
            max_length=max_length, secret_fields=secret_fields_of(self.CONFIG))
        self.receipts = Receipts(name, provider, config)
        self._sink: EventSink | None = None
        self._pull = PullLoop(name, config.pull_interval_s, self.pull_once)

    @classmethod
    def from_config(cls, name: str, raw: Mapping[str, Any]) -> Self:
        return cls(name, load_config(cls.CONFIG, name, raw))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    async def start(self, sink: EventSink) -> None:
        self._sink = sink
        if self._hooks.receipts == "pull":
            self._pull.start()

    async def aclose(self) -> None:
        await self._pull.stop()
        await self._close()

    async def _close(self) -> None:
        """Close the SDK's client (the Tencent SDK's async clients hold connections)."""

    async def pull_once(self) -> None:
        """Pull what the provider holds for this channel's sends (pull mode)."""
        sink = self._sink
        if sink is not None:
            await self._pull_into(sink)

    async def _pull_into(self, sink: EventSink) -> None:
        """Nothing to pull (a channel with no pull API)."""

    def push_routes(self, routes: Sequence[Push], ok: dict[str, Any], bad: dict[str, Any]
                    ) -> list[tuple[str, str, WebhookHandler]]:
        """The webhooks of `routes`, each under the secret path; none in pull mode."""
        if self._hooks.receipts != "push":
            return []
        rx = self.receipts

        def handler(kind: type[Any], apply: Callable[[Any], Awaitable[None]]) -> Handler:
            async def push(request: web.Request) -> web.StreamResponse:
                return await rx.on_push(request, kind, apply, ok, bad)
            return push

        return [("POST", rx.guard.path(name), handler(kind, apply)) for name, kind, apply in routes]
