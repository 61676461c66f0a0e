"""Time what the code under test costs, not what a shared machine's load adds to it.

Wall clocks measure the machine: on two cores shared by several test runs, a thread waits
tens of milliseconds, sometimes seconds, for a CPU. The tests' timing checks are about the
code, so they measure with these instead:

- `cpu_seconds(fn)`: the CPU time of a computation in this thread (`time.thread_time`),
  what an algorithm costs: a quadratic step still shows, a busy machine does not.
- `worst_lag(stop)`: how late the event loop was to wake a sleeping task, minus the time it
  waited for a CPU. The rest is what holds the loop: work on it, or a thread holding the
  GIL. The wait for a CPU comes from Linux's schedstat (`/proc/self/task/*/schedstat`, the
  time each thread was runnable but not running); where it is missing, the plain lateness.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
_TASKS = "/proc/self/task"


def cpu_seconds(fn: Callable[[], T]) -> tuple[T, float]:
    """Call `fn` and return its result with the CPU seconds this thread spent on it."""
    start = time.thread_time()
    got = fn()
    return got, time.thread_time() - start


def _runnable_waits() -> dict[int, float]:
    """Seconds each thread of this process has waited for a CPU, by thread id (Linux)."""
    waits: dict[int, float] = {}
    try:
        tids = os.listdir(_TASKS)
    except OSError:
        return waits
    for tid in tids:
        try:
            with open(f"{_TASKS}/{tid}/schedstat", "rb") as f:
                waits[int(tid)] = int(f.read().split()[1]) / 1e9
        except (OSError, IndexError, ValueError):
            continue  # a thread that ended meanwhile
    return waits


def _waited(before: dict[int, float], after: dict[int, float], loop_tid: int) -> float:
    """The wait for a CPU that made the loop late: its own, and that of one other thread.

    A thread holding the GIL while it waits for a CPU keeps the loop waiting too; the GIL
    goes to the loop when that one thread lets go, so one other thread's wait counts (the
    longest, to be safe), never the sum of all: that would hide the loop's own work.
    """
    grew = {tid: w - before.get(tid, 0.0) for tid, w in after.items()}
    own = grew.pop(loop_tid, 0.0)
    return own + max(grew.values(), default=0.0)


async def worst_lag(stop: asyncio.Event, tick: float = 0.005) -> float:
    """The longest the event loop held a sleeping task past its time, until `stop` is set.

    Seconds of lateness not explained by the process's threads waiting for a CPU.
    """
    loop_tid = threading.get_native_id()
    worst = 0.0
    while not stop.is_set():
        waits = _runnable_waits()
        t = time.perf_counter()
        await asyncio.sleep(tick)
        late = time.perf_counter() - t - tick
        if waits:
            late -= _waited(waits, _runnable_waits(), loop_tid)
        worst = max(worst, late)
    return worst
