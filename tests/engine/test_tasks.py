"""`Bounded`: a limit on tasks in flight, and no failure lost."""

from __future__ import annotations

import asyncio
import gc

import pytest

from warnbus.runtime.tasks import Bounded


async def test_at_most_limit_run_at_once_and_join_waits_for_all() -> None:
    running, peak, done = 0, 0, []

    async def work(i: int) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01 * (i % 3))
        running -= 1
        done.append(i)

    tasks = Bounded(2)
    for i in range(7):
        await tasks.submit(work(i))
    await tasks.join()
    assert peak == 2
    assert sorted(done) == list(range(7))


async def test_a_failure_reaches_the_next_submit_and_join() -> None:
    async def fail() -> None:
        raise RuntimeError("write lost")

    async def slow() -> None:
        await asyncio.sleep(10)

    tasks = Bounded(1)
    await tasks.submit(fail())
    with pytest.raises(RuntimeError, match="write lost"):
        await tasks.submit(slow())  # waits for a free place: finds the failure instead

    tasks = Bounded(3)
    await tasks.submit(slow())
    await tasks.submit(fail())
    with pytest.raises(RuntimeError, match="write lost"):
        await tasks.join()  # does not wait for the slow one to report the failure
    tasks.cancel()


async def test_every_failure_is_retrieved() -> None:
    reported: list[str] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, ctx: reported.append(str(ctx.get("message"))))

    async def fail(n: int) -> None:
        raise ValueError(n)

    try:
        tasks = Bounded(3)
        for n in range(3):
            await tasks.submit(fail(n))
        await asyncio.sleep(0)  # all three fail before join looks
        with pytest.raises(ValueError):
            await tasks.join()
        del tasks
        gc.collect()  # a task whose exception nobody retrieved reports it when collected
        assert reported == []
    finally:
        loop.set_exception_handler(None)


async def test_cancel_stops_what_runs() -> None:
    started = asyncio.Event()

    async def forever() -> None:
        started.set()
        await asyncio.sleep(3600)

    tasks = Bounded(2)
    await tasks.submit(forever())
    await started.wait()
    running = list(tasks._running)
    tasks.cancel()
    await asyncio.sleep(0)
    assert all(t.cancelled() for t in running)
    await tasks.join()  # nothing left


def test_limit_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Bounded(0)
