"""The console's fixtures (helpers are in console_kit)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
from aiohttp.test_utils import TestClient
from console_kit import console_client

from tests.engine.helpers import Harness


@pytest_asyncio.fixture
async def web(redis_url: str) -> AsyncIterator[tuple[TestClient, Harness]]:  # type: ignore[type-arg]
    """A test client on the API with the console, on a fresh harness with the test users."""
    async with console_client(redis_url) as pair:
        yield pair
