"""Channels of the benchmarks, and a meter of when deliveries reach a provider.

`NullChannel` is a provider that takes every message at once: with it on every channel the
figures are the engine's alone (planning, Redis, claims, records), on the same Redis path
as production. `HttpSinkChannel` POSTs each delivery to a local HTTP sink, for the side-by-side
with a naive fan-out (`peer`). `SendMeter` times the moment each `send` returns.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from warnbus.plugin import (
    MEDIUM_ADDRESS,
    Channel,
    ChannelConfig,
    ChannelInfo,
    Delivery,
    Medium,
    Receipt,
    TransientChannelError,
    load_config,
)


class BenchConfig(ChannelConfig, kw_only=True, frozen=True):
    medium: Medium  # what the channel stands in for
    url: str = ""  # HttpSinkChannel: the sink's base URL


def _info(kind: str, name: str, medium: Medium) -> ChannelInfo:
    return ChannelInfo(kind=kind, provider="bench", medium=medium,
                       address=MEDIUM_ADDRESS[medium], breaker_key=f"bench:{name}")


class NullChannel:
    """A channel whose provider accepts every message immediately."""

    def __init__(self, name: str, medium: Medium) -> None:
        self.name = name
        self.info = _info("null", name, medium)

    @classmethod
    def from_config(cls, name: str, raw: Mapping[str, Any]) -> NullChannel:
        return cls(name, load_config(BenchConfig, name, raw).medium)

    async def send(self, delivery: Delivery) -> Receipt:
        # A provider id as long as a real one (a Twilio SID is 34 characters), so the Redis
        # bytes per delivery include what production stores in the audit stream.
        return Receipt(provider_id="NL" + delivery.id)

    async def aclose(self) -> None:
        return None


class HttpSinkChannel:
    """POST each delivery as JSON to `url/<channel>` over a pooled keep-alive session."""

    def __init__(self, name: str, medium: Medium, url: str, connections: int = 64) -> None:
        self.name = name
        self.info = _info("http-sink", name, medium)
        self._url = f"{url.rstrip('/')}/{name}"
        self._connections = connections
        self._http: aiohttp.ClientSession | None = None

    @classmethod
    def from_config(cls, name: str, raw: Mapping[str, Any]) -> HttpSinkChannel:
        config = load_config(BenchConfig, name, raw)
        return cls(name, config.medium, config.url)

    async def send(self, delivery: Delivery) -> Receipt:
        if self._http is None:
            self._http = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._connections),
                timeout=aiohttp.ClientTimeout(total=10))
        body = {"to": delivery.address, "title": delivery.kind.value, "message": delivery.text}
        try:
            async with self._http.post(self._url, json=body) as resp:
                await resp.read()
                status = resp.status
        except aiohttp.ClientError as e:
            raise TransientChannelError(f"sink: {e}") from e
        if status >= 300:
            raise TransientChannelError(f"sink answered HTTP {status}")
        return Receipt(provider_id=f"sink-{delivery.id}")

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None


@dataclass
class SendMeter:
    """Counts sends as they return and keeps the time (perf_counter) of the last one.

    `keep=True` also keeps (channel, address, text) of every delivery, so a peer can be
    given exactly the same messages to send.
    """

    keep: bool = False
    handed: int = 0  # sends that returned or raised: the provider has answered
    failed: int = 0
    last: float = 0.0
    last_by_channel: dict[str, float] = field(default_factory=dict)
    by_channel: Counter[str] = field(default_factory=Counter)
    kept: list[tuple[str, str, str]] = field(default_factory=list)

    def wrap(self, channel: Channel) -> None:
        """Time `channel.send` in place (the instance keeps its type and abilities)."""
        inner: Callable[[Delivery], Awaitable[Receipt]] = channel.send
        name = channel.name

        async def send(delivery: Delivery) -> Receipt:
            ok = False
            try:
                receipt = await inner(delivery)
                ok = True
                return receipt
            finally:
                now = time.perf_counter()
                self.handed += 1
                self.failed += not ok
                self.last = now
                self.last_by_channel[name] = now
                self.by_channel[name] += 1
                if self.keep:
                    self.kept.append((name, delivery.address, delivery.text))

        # An instance attribute shadows the method; isinstance checks against the
        # ListeningChannel / WebhookChannel protocols still see the real object.
        setattr(channel, "send", send)  # noqa: B010
