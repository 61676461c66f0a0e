"""The test channel: a real channel with no provider behind it, and simulated officers.

It records every delivery it is handed (in memory, and in Redis when `record_url` is set so a
test can see sends made by other processes), can be told to fail for given addresses, and can
simulate the people at the other end: a share of them confirm by opening their signed ack link
over real HTTP, after a delay, like an officer tapping the link in an SMS.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
from collections.abc import Mapping
from typing import Annotated, Any

import aiohttp
import msgspec
from redis.asyncio import Redis

from warnbus.plugin import (
    MEDIUM_ADDRESS,
    ChannelConfig,
    ChannelInfo,
    Delivery,
    Medium,
    PermanentChannelError,
    Receipt,
    TransientChannelError,
    breaker_key_for,
    load_config,
    secret_fields_of,
)

RECORD_KEY = "wbtest:sent"  # list of msgpack [id, channel, address, kind, step, text, pid]


class TestChannelConfig(ChannelConfig, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """`medium` says which real channel the test channel stands in for: it decides what the
    engine sends it (phones for voice and SMS, WeCom ids, areas for loudspeakers)."""

    __test__ = False  # not a pytest test class
    medium: Medium
    type: str = "test"
    rate_per_s: Annotated[float, msgspec.Meta(gt=0)] | None = None
    max_length: Annotated[int, msgspec.Meta(ge=1)] | None = None
    record_url: str = ""  # redis URL to record sends in (multi-process tests)
    fail_temp: tuple[str, ...] = ()  # addresses that fail transiently
    fail_perm: tuple[str, ...] = ()  # addresses that fail permanently
    delay_s: float = 0.0  # time a send takes before the provider accepts it
    after_s: float = 0.0  # time its answer takes after the provider accepted (and recorded) it
    answer_rate: float = 0.0  # share of people who confirm (simulated officers)
    answer_call_rate: float = 1.0  # chance a responsive person confirms a given message
    answer_delay_s: tuple[float, float] = (0.2, 2.0)  # real seconds before they confirm
    seed: int = 0


class TestChannel:
    """A channel that hands messages to nobody (or to simulated officers)."""

    __test__ = False  # not a pytest test class

    def __init__(self, name: str, config: TestChannelConfig) -> None:
        self.name = name
        self.config = config
        self.info = ChannelInfo(
            kind="test", provider="test", medium=config.medium,
            address=MEDIUM_ADDRESS[config.medium], rate_per_s=config.rate_per_s,
            breaker_key=breaker_key_for(config, "test", name), max_length=config.max_length,
            secret_fields=secret_fields_of(TestChannelConfig))
        self.sent: list[Delivery] = []
        self._fail_temp = set(config.fail_temp)
        self._fail_perm = set(config.fail_perm)
        self._redis: Redis | None = Redis.from_url(config.record_url) if config.record_url else None
        self._http: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._enc = msgspec.msgpack.Encoder()

    @classmethod
    def from_config(cls, name: str, raw: Mapping[str, Any]) -> TestChannel:
        return cls(name, load_config(TestChannelConfig, name, raw))

    async def send(self, delivery: Delivery) -> Receipt:
        if self.config.delay_s:
            await asyncio.sleep(self.config.delay_s)
        if delivery.address in self._fail_perm:
            raise PermanentChannelError(f"test: {delivery.address} is unreachable",
                                        provider_code="test-perm")
        if delivery.address in self._fail_temp:
            raise TransientChannelError(f"test: {delivery.address} is busy", retry_after=None)
        self.sent.append(delivery)
        if self._redis is not None:
            await self._redis.rpush(RECORD_KEY, self._enc.encode(
                [delivery.id, self.name, delivery.address, delivery.kind.value, delivery.step,
                 delivery.text, os.getpid()]))
        if self.config.after_s:
            await asyncio.sleep(self.config.after_s)
        if delivery.ack_url and self._answers(delivery):
            task = asyncio.create_task(self._confirm(delivery.ack_url))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return Receipt(provider_id=f"test-{delivery.id}")

    def _answers(self, d: Delivery) -> bool:
        c = self.config
        if c.answer_rate <= 0:
            return False
        h = hashlib.blake2b(f"{c.seed}|{d.target_id}".encode(), digest_size=8).digest()
        responsive = int.from_bytes(h, "big") / 2**64 < c.answer_rate
        rnd = random.Random(f"{c.seed}|{d.id}")
        return responsive and rnd.random() < c.answer_call_rate

    async def _confirm(self, url: str) -> None:
        lo, hi = self.config.answer_delay_s
        await asyncio.sleep(random.uniform(lo, hi))
        if self._http is None:
            self._http = aiohttp.ClientSession()
        try:
            async with self._http.post(url) as resp:
                await resp.read()
        except aiohttp.ClientError:
            pass  # an officer whose tap did not get through simply has not confirmed

    async def aclose(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        if self._http is not None:
            await self._http.close()
        if self._redis is not None:
            await self._redis.aclose()
