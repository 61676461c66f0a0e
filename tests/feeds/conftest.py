"""Fixtures of the feed tests: a feed server on 127.0.0.1 and an engine on a real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
from feedkit import FeedServer, Kit

from tests.engine.helpers import make_harness


@pytest_asyncio.fixture
async def kit(redis_url: str) -> AsyncIterator[Kit]:
    h = await make_harness(redis_url)
    server = FeedServer()
    await server.start()
    kit = Kit(h, server, [])
    yield kit
    for poller in kit.pollers:
        await poller.aclose()
    await server.close()
    await h.app.close()
