"""What every live page of a process reads alike, computed once a turn for all of them.

The desk's live list, the newest messages, the drafts waiting and a campaign's board are the
same for every officer watching: a stream that asks within `ttl_s` of the last computation
gets its result, and streams that ask at once wait for one computation (200 open pages looked
at a county's Redis 200 times a second, and each look is a dozen round trips per campaign).

A stream never sends a result older than itself (`since`): a page served just after an action
(a stop, a confirmation by hand) opens its stream after it was rendered, and a result computed
before that would show the state before the action until the next turn.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

_MISS = object()

#: Most results kept (one per campaign watched, and the desk's): the oldest go first.
KEPT = 256


class Shared:
    def __init__(self) -> None:
        self._got: dict[Hashable, tuple[float, Any]] = {}
        self._locks: dict[Hashable, asyncio.Lock] = {}

    async def get(self, key: Hashable, ttl_s: float, make: Callable[[], Awaitable[Any]],
                  *, since: float = 0.0) -> Any:
        """`make()`'s result, computed at most once per `ttl_s` for `key`, and begun at or
        after `since` (`time.monotonic()`: a stream's opening)."""
        hit = self._kept(key, ttl_s, since)
        if hit is not _MISS:
            return hit
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            hit = self._kept(key, ttl_s, since)
            if hit is not _MISS:
                return hit  # computed while this one waited
            begun = time.monotonic()  # what it reads is at least this new
            value = await make()
            self._got.pop(key, None)
            self._got[key] = (begun, value)
            while len(self._got) > KEPT:
                old = next(iter(self._got))
                del self._got[old]
                self._locks.pop(old, None)
            return value

    def _kept(self, key: Hashable, ttl_s: float, since: float) -> Any:
        """The kept result if it is new enough, else `_MISS`."""
        hit = self._got.get(key)
        if hit is None or hit[0] < since or time.monotonic() - hit[0] >= ttl_s:
            return _MISS
        return hit[1]
