"""Clocks. Everything that schedules takes a Clock, so tests and the demo control time.

Deadlines are kept on one clock, Redis's: a process reads it as its own clock plus the offset
it measured with TIME (`RedisTime`), so what it schedules and stamps in the audit is right
even when its own clock is not; and the timers are promoted by TIME inside the promotion
script, whatever the promoting process's clock says. Each clock tells that script how it
reads from Redis's time (`Frame`): the real clock is Redis's time itself, the demo's
compressed clock a scaled copy of it, a test's manual clock a fixed time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol


class Frame(NamedTuple):
    """A clock as a function of Redis's time: `at + (redis_now - redis_at) * factor`."""

    at: float
    redis_at: float
    factor: float


class RedisTime:
    """Redis's time as this process reads it: its own clock (`raw`) plus the offset last
    measured with TIME (`sync`)."""

    def __init__(self, raw: Callable[[], float] = time.time) -> None:
        self.raw = raw
        self.offset = 0.0  # Redis's time minus the process's own clock
        self.synced = False

    def now(self) -> float:
        return self.raw() + self.offset

    @property
    def skew(self) -> float:
        """How far the process's own clock is from Redis's (seconds, either way)."""
        return abs(self.offset)

    async def sync(self, redis: Any, samples: int = 3) -> float:
        """Measure the offset (the sample with the shortest round trip); return it."""
        best: tuple[float, float] | None = None
        for _ in range(samples):
            t0 = self.raw()
            sec, usec = await redis.time()
            t1 = self.raw()
            sample = (t1 - t0, float(sec) + float(usec) / 1e6 - (t0 + t1) / 2)
            if best is None or sample[0] < best[0]:
                best = sample
        assert best is not None
        self.offset, self.synced = best[1], True
        return self.offset


class Clock(Protocol):
    def now(self) -> float:
        """Current time as epoch seconds (the time timers are scored by)."""

    async def sleep(self, seconds: float) -> None:
        """Sleep for `seconds` of this clock's time."""

    def frame(self) -> Frame:
        """How this clock reads from Redis's time (what the timer promotion computes)."""

    def source(self) -> RedisTime | None:
        """The Redis time this clock follows (synced at start), None for a manual clock."""


class SystemClock:
    """Real time, on Redis's clock (the process's own, corrected by the measured offset)."""

    def __init__(self, source: RedisTime | None = None) -> None:
        self._source = source or RedisTime()

    def now(self) -> float:
        return self._source.now()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    def frame(self) -> Frame:
        return Frame(0.0, 0.0, 1.0)

    def source(self) -> RedisTime:
        return self._source


class ScaledClock:
    """A compressed clock for the demo: `factor` clock seconds pass per real second of
    Redis's time."""

    def __init__(self, factor: float, start: float | None = None,
                 source: RedisTime | None = None) -> None:
        if factor <= 0:
            raise ValueError("factor must be positive")
        self.factor = factor
        self._source = source or RedisTime()
        self._real0 = time.monotonic()
        self._start = self._source.now() if start is None else start

    def now(self) -> float:
        return self._start + (time.monotonic() - self._real0) * self.factor

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.factor)

    def frame(self) -> Frame:
        # Redis's time when this clock started, by the offset measured now.
        redis_at = self._source.now() - (time.monotonic() - self._real0)
        return Frame(self._start, redis_at, self.factor)

    def source(self) -> RedisTime:
        return self._source


class ManualClock:
    """A clock that moves only when told to (tests). `sleep` yields without waiting."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds

    def set(self, when: float) -> None:
        self._now = when

    async def sleep(self, seconds: float) -> None:
        # Real time must still pass a little, or polling loops would spin.
        await asyncio.sleep(min(max(0.0, seconds), 0.01))

    def frame(self) -> Frame:
        return Frame(self._now, 0.0, 0.0)

    def source(self) -> None:
        return None
