"""A bounded set of background tasks whose first failure reaches the one who submitted them;
waiting for a Redis command at most so long."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


async def within(aw: Awaitable[T], seconds: float) -> T:
    """Await `aw` for at most `seconds` (TimeoutError after), leaving it to finish alone.

    Not cancelled: cancelling a Redis command that waits on a stalled server can take as
    long as the command (Python 3.11's `wait_for` waits for the cancellation to end); what
    it finally raises is retrieved, not logged."""
    task = asyncio.ensure_future(aw)
    try:
        return await asyncio.wait_for(asyncio.shield(task), seconds)
    except TimeoutError:
        task.add_done_callback(_retrieve)
        raise


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


class Bounded:
    """Run up to `limit` coroutines at once; `submit` waits for a free place.

    The first task that fails makes the next `submit` or `join` raise its exception (the
    others keep running until `cancel`), so work that must finish in full, such as the
    writes of a first wave, is never reported done when part of it was lost.
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self._running: set[asyncio.Task[None]] = set()

    async def submit(self, coro: Coroutine[Any, Any, None]) -> None:
        try:
            while len(self._running) >= self.limit:
                await self._reap(asyncio.FIRST_COMPLETED)
        except BaseException:
            coro.close()  # never started: it must not linger as "never awaited"
            raise
        self._running.add(asyncio.create_task(coro))

    async def join(self) -> None:
        """Wait for every task; raise the first failure."""
        while self._running:
            await self._reap(asyncio.FIRST_EXCEPTION)

    def cancel(self) -> None:
        """Cancel what is still running (after a failure, or when the caller is cancelled)."""
        for task in self._running:
            task.cancel()
        self._running.clear()

    async def _reap(self, when: str) -> None:
        done, _ = await asyncio.wait(self._running, return_when=when)
        self._running -= done
        first: BaseException | None = None
        for task in done:
            # Every exception is retrieved (none is logged as "never retrieved"); the
            # first one is raised.
            exc = None if task.cancelled() else task.exception()
            if exc is not None and first is None:
                first = exc
        if first is not None:
            raise first
