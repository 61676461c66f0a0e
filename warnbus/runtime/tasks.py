"""Running many coroutines: a bounded set of background tasks whose first failure reaches
the one who submitted them, a gather that starts its coroutines a few per loop turn, and
waiting for a Redis command at most so long."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Coroutine, Iterable
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


#: Coroutines `gather_paced` starts in its first turn of the event loop; then it starts
#: twice as many per turn while a turn takes under half of TURN_BUDGET_S, half as many
#: when one takes longer (first steps that cost little go together, costly ones apart).
STARTS_PER_TURN = 4
TURN_BUDGET_S = 0.005
MAX_STARTS_PER_TURN = 256


async def gather_paced(coros: Iterable[Coroutine[Any, Any, T]],
                       per_turn: int = STARTS_PER_TURN,
                       budget_s: float = TURN_BUDGET_S, *, settle: bool = False) -> list[T]:
    """`asyncio.gather` of `coros`, started a few per turn of the event loop, as many as
    keep a turn within `budget_s`.

    A task's first step runs in the loop turn after it is created, together with every
    other task created before that turn. A chunk of 64 provider sends, each building its
    request (0.3 to 0.9 ms for a long warning), held the loop up to ~55 ms in one turn, and
    every timer, webhook and ack of the process waited that long. Started a few per turn,
    the same work leaves the loop free in between; sends that start cheaply (a provider
    without a request to build) are started more per turn, so they lose no time. A turn is
    measured in the loop thread's CPU time, the other work of the turn included: on a
    loaded machine the wall time of every turn also holds the waits for a CPU, and paced by
    it the starts fell to one per turn, the county's first wave then costing ~80 % more CPU
    (more turns, each polling every socket). The caller's cancellation cancels the tasks
    started; coroutines not yet started are closed. `settle`: when one fails, wait for all
    the others to end before raising its error (nothing started still runs when the caller
    goes on, e.g. to send again what it could not record).
    """
    if per_turn < 1:
        raise ValueError("per_turn must be at least 1")
    tasks: list[asyncio.Future[T]] = []
    pending = iter(coros)
    batch = 0
    try:
        for coro in pending:
            if batch >= per_turn:
                start = time.thread_time()
                try:
                    await asyncio.sleep(0)
                except BaseException:
                    coro.close()
                    raise
                took = time.thread_time() - start
                if took > budget_s:
                    per_turn = max(1, per_turn // 2)
                elif took < budget_s / 2:
                    per_turn = min(MAX_STARTS_PER_TURN, 2 * per_turn)
                batch = 0
            tasks.append(asyncio.ensure_future(coro))
            batch += 1
    except BaseException:
        close = getattr(pending, "close", None)
        if close is not None:  # a generator: what it has not made yet is never made
            close()
        else:
            for coro in pending:
                coro.close()
        for task in tasks:
            task.cancel()
        raise
    if not settle:
        return await asyncio.gather(*tasks)
    out: list[T] = []
    for r in await asyncio.gather(*tasks, return_exceptions=True):
        if isinstance(r, BaseException):
            raise r
        out.append(r)
    return out


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
