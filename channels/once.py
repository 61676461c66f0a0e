"""Act on a provider's event once, and never call it done before it is.

Providers resend an event they got no answer to (WeCom after 5 s, the mainland providers'
pushes) and sometimes send it twice anyway. A key counts as done only once its act returned
(the engine's sink returns once the event is durable: in Redis, or in its journal); a resend
that arrives while the first is still under way waits for it, and acts itself if the first
failed. So a resend is never answered "done" for something that was not recorded.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class Once(Generic[T]):
    """Keys acted on (bounded, in memory), and the acts under way."""

    def __init__(self, keep: int = 200_000, max_age_s: float | None = None) -> None:
        self._done: OrderedDict[Hashable, tuple[float, T]] = OrderedDict()
        self._running: dict[Hashable, asyncio.Future[T]] = {}
        self._keep, self._max_age_s = keep, max_age_s

    def done(self, key: Hashable) -> bool:
        """Whether `key` was acted on (and its act returned)."""
        self._expire()
        return key in self._done

    async def run(self, key: Hashable, act: Callable[[], Awaitable[T]]) -> tuple[bool, T]:
        """(True, result) after running `act` for a new key; (False, the first result) for a
        key done before or done meanwhile by the act under way. An act that raises leaves
        the key new (the provider's resend runs it again)."""
        self._expire()
        while True:
            if key in self._done:
                return False, self._done[key][1]
            running = self._running.get(key)
            if running is None:
                break
            try:
                return False, await asyncio.shield(running)
            except Exception:
                continue
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._running[key] = future
        try:
            result = await act()
        except BaseException as e:
            future.set_exception(e if isinstance(e, Exception) else RuntimeError("cancelled"))
            future.exception()  # retrieved: nobody may be waiting
            raise
        finally:
            del self._running[key]
        self._done[key] = (time.monotonic(), result)
        future.set_result(result)
        return True, result

    def _expire(self) -> None:
        done = self._done
        while len(done) > self._keep:
            done.popitem(last=False)
        if self._max_age_s is not None:
            oldest = time.monotonic() - self._max_age_s
            while done and next(iter(done.values()))[0] < oldest:
                done.popitem(last=False)
