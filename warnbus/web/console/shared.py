"""What every live page of a process reads alike, computed once a turn for all of them.

The desk's live list, the newest messages, the drafts waiting and a campaign's board are the
same for every officer watching: a stream that asks within `ttl_s` of the last computation
gets its result, and streams that ask at once wait for one computation (200 open pages looked
at a county's Redis 200 times a second, and each look is a dozen round trips per campaign).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

#: Most results kept (one per campaign watched, and the desk's): the oldest go first.
KEPT = 256


class Shared:
    def __init__(self) -> None:
        self._got: dict[Hashable, tuple[float, Any]] = {}
        self._locks: dict[Hashable, asyncio.Lock] = {}

    async def get(self, key: Hashable, ttl_s: float, make: Callable[[], Awaitable[Any]]) -> Any:
        """`make()`'s result, computed at most once per `ttl_s` for `key`."""
        hit = self._got.get(key)
        if hit is not None and time.monotonic() - hit[0] < ttl_s:
            return hit[1]
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            hit = self._got.get(key)
            if hit is not None and time.monotonic() - hit[0] < ttl_s:
                return hit[1]  # computed while this one waited
            value = await make()
            self._got.pop(key, None)
            self._got[key] = (time.monotonic(), value)
            while len(self._got) > KEPT:
                old = next(iter(self._got))
                del self._got[old]
                self._locks.pop(old, None)
            return value
