"""`Bounded`: a limit on tasks in flight, and no failure lost. `gather_paced`: a few starts
per loop turn, results in order, nothing left running or unawaited."""

from __future__ import annotations

import asyncio
import gc
import itertools
import time

import pytest

from warnbus.runtime.tasks import Bounded, gather_paced


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


def hold(seconds: float) -> None:
    """Keep the thread (and so the event loop) busy for `seconds` of its CPU time."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


class Turns:
    """Counts the turns of the event loop (one increment per turn), while running."""

    def __init__(self) -> None:
        self.n = 0
        self._task = asyncio.create_task(self._count())

    async def _count(self) -> None:
        while True:
            await asyncio.sleep(0)
            self.n += 1

    def stop(self) -> None:
        self._task.cancel()


async def test_gather_paced_starts_few_per_turn_more_while_they_are_cheap() -> None:
    """Cheap first steps: 4 in the first turn, then twice as many per turn. The results
    come in the order of the coroutines."""
    turns = Turns()
    started: list[int] = []

    async def work(i: int) -> int:
        started.append(turns.n)
        await asyncio.sleep(0.001 * (i % 4))
        return i * i

    try:
        assert await gather_paced((work(i) for i in range(64)), per_turn=4) == [
            i * i for i in range(64)]
    finally:
        turns.stop()
    per_turn = [started.count(t) for t in sorted(set(started))]
    # [4, 8, 16, 32, 4] unless the machine held a turn back (then that turn adds none)
    assert per_turn[0] == 4 and len(per_turn) < 16, per_turn
    assert all(b <= 2 * a for a, b in itertools.pairwise(per_turn)), per_turn


async def test_gather_paced_spreads_costly_first_steps_over_turns() -> None:
    """First steps that hold the loop (3 ms each, a provider request being built) are
    started fewer per turn until a turn fits the budget: 4, then 2, then 1."""
    turns = Turns()
    started: list[int] = []

    async def work() -> None:
        started.append(turns.n)
        hold(0.003)  # holds the loop, as building a request does
        await asyncio.sleep(0)

    try:
        await gather_paced((work() for _ in range(16)), per_turn=4, budget_s=0.005)
    finally:
        turns.stop()
    per_turn = [started.count(t) for t in sorted(set(started))]
    assert per_turn[:3] == [4, 2, 1] and max(per_turn[2:]) == 1, per_turn


async def test_gather_paced_counts_the_loops_cpu_not_its_waits() -> None:
    """A turn that only waited (as the loop waits for a CPU on a loaded machine: here a
    blocking sleep, 3 ms per first step) is not work of the loop: the starts per turn grow
    as for cheap first steps, never falling to one per turn."""
    turns = Turns()
    started: list[int] = []

    async def work() -> None:
        started.append(turns.n)
        time.sleep(0.003)  # noqa: ASYNC251 -- the thread waits, using no CPU, on purpose
        await asyncio.sleep(0)

    try:
        await gather_paced((work() for _ in range(28)), per_turn=4, budget_s=0.005)
    finally:
        turns.stop()
    per_turn = [started.count(t) for t in sorted(set(started))]
    assert per_turn[:2] == [4, 8], per_turn


@pytest.mark.parametrize("lazy", [True, False])
async def test_gather_paced_cancelled_cancels_what_it_started(lazy: bool) -> None:
    started: list[int] = []
    never: list[int] = []

    async def work(i: int) -> None:
        started.append(i)
        await asyncio.sleep(10)

    def coros():  # type: ignore[no-untyped-def]
        for i in range(40):
            never.append(i)
            yield work(i)

    task = asyncio.create_task(gather_paced(coros() if lazy else list(coros()), per_turn=2))
    for _ in range(3):
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0)
    assert 0 < len(started) < 40 and (len(never) < 40 or not lazy)
    # Nothing is left running, and no coroutine is left "never awaited".
    assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []
    gc.collect()


def test_per_turn_must_be_positive() -> None:
    with pytest.raises(ValueError, match="per_turn"):
        asyncio.run(gather_paced([], per_turn=0))


@pytest.mark.parametrize("settle", [False, True])
async def test_gather_paced_settled_raises_only_once_nothing_runs(settle: bool) -> None:
    """Settled, the first failure is raised once every other coroutine has ended (the
    dispatcher then sends again what no send is still carrying); unsettled, at once."""
    release = asyncio.Event()
    ended: list[int] = []

    async def fails() -> int:
        raise ConnectionError("Redis away")

    async def slow(i: int) -> int:
        await release.wait()
        ended.append(i)
        return i

    run = asyncio.ensure_future(gather_paced([fails(), slow(1), slow(2)], settle=settle))
    for _ in range(5):
        await asyncio.sleep(0)
    assert run.done() is not settle  # settled, it still waits for the two slow ones
    release.set()
    with pytest.raises(ConnectionError):
        await run
    assert sorted(ended) == ([1, 2] if settle else [])
    await asyncio.sleep(0)
