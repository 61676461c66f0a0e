"""A Redis connection of its own for one lane loop, with the store and lanes over it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import NamedTuple

from redis.asyncio import Redis

from warnbus.state.client import RedisClient
from warnbus.state.queue import Lanes
from warnbus.state.store import Store


class IO(NamedTuple):
    """The Redis access of one lane loop."""

    store: Store
    lanes: Lanes


@asynccontextmanager
async def pinned(redis: RedisClient, store: Store, lanes: Lanes) -> AsyncIterator[IO]:
    """A connection of the pool for one lane loop's own use (else `store` and `lanes`).

    The loop's commands follow one another (read, claim, record, acknowledge), so a
    connection of its own serves it as well as the pool, and each command skips the pool's
    checkout (a lock and bookkeeping: about a quarter of the client's CPU per command,
    `benchmarks/redis_checkout_micro.py`). A cluster client keeps its own connections.
    """
    if not isinstance(redis, Redis):
        yield IO(store, lanes)
        return
    client = redis.client()
    try:
        yield IO(Store(client), Lanes(client, lanes.channels, lanes.heartbeats))
    finally:
        await client.aclose()
