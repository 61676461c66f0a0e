"""A circuit breaker per provider: stop calling a provider that is down, probe it, resume.

The dispatcher asks `Breakers.admit(key, n)` before each chunk of sends (they start together)
and reports their outcomes with `Breakers.record_many(key, ok, failed)`; a breaker's own
`check` and `record` are the same for one send. The key is the channel's
`info.breaker_key`: by default its provider account at the endpoint it calls, so channels on
one account and endpoint (Twilio's SMS and voice) share a breaker; configurable per channel.

States (classic closed / open / half-open):

- closed: every send goes out. Outcomes within the last `window_s` are counted; when there
  are at least `min_calls` of them and `failure_ratio` or more failed, the breaker opens.
  A minimum volume matters: one person's phone failing five times in a row is that address,
  not the provider, and must not cut everyone else off.
- open: no send goes out until `open_s` has passed; `check` (or `holding`, asked before a
  chunk is even claimed) says how long to wait. A refused delivery was not sent: the
  dispatcher records no attempt for it and puts it on the durable timers for the next probe
  (plus jitter), not in memory, until its deadline (`flow.retry`).
- half-open: up to `probes` sends go out at once. A success closes the breaker; a failure
  opens it again for twice as long (up to `max_open_s`).

State lives in process memory on purpose: it is an optimisation (fewer calls to a provider
that is down), not a record. A restarted process starts closed and finds out again within
`min_calls` sends; with N processes a provider sees at most N probes per open period.
Time comes from the engine's injected clock, so tests drive it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

import structlog

log = structlog.get_logger("warnbus.flow.breaker")

__all__ = ["Breaker", "BreakerPolicy", "Breakers", "State"]


class State(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class BreakerPolicy:
    """When a breaker opens and for how long (seconds of the engine's clock)."""

    window_s: float = 30.0
    min_calls: int = 10
    failure_ratio: float = 0.5
    open_s: float = 5.0
    max_open_s: float = 60.0
    probes: int = 1

    def __post_init__(self) -> None:
        if not 0 < self.failure_ratio <= 1 or self.min_calls < 1 or self.probes < 1:
            raise ValueError("breaker: failure_ratio in (0, 1], min_calls and probes >= 1")
        if not 0 < self.open_s <= self.max_open_s or self.window_s <= 0:
            raise ValueError("breaker: need 0 < open_s <= max_open_s and window_s > 0")


@dataclass
class Breaker:
    """The breaker of one provider."""

    key: str
    policy: BreakerPolicy
    state: State = State.CLOSED
    opened_until: float = 0.0
    open_for: float = 0.0  # the length of the current (or last) open period
    in_probe: int = 0  # half-open sends not yet reported
    opened: int = 0  # how many times it opened (for tests and metrics)
    rejected: int = 0  # sends it refused
    # (time, calls, failures) per report: one entry per dispatched chunk, not per send.
    _calls: deque[tuple[float, int, int]] = field(default_factory=deque)
    _n: int = 0  # calls in _calls
    _failures: int = 0  # failures among _calls

    def check(self, now: float) -> float | None:
        """None: go ahead (and report the outcome). Else: seconds until the next probe."""
        go, wait = self.admit(now, 1)
        return None if go else wait

    def admit(self, now: float, n: int) -> tuple[int, float | None]:
        """How many of `n` sends starting together may go out (report each outcome), and,
        if not all, how many seconds the others should wait."""
        if self.state is State.OPEN:
            if now < self.opened_until:
                self.rejected += n
                return 0, self.opened_until - now
            self.state = State.HALF_OPEN
            self.in_probe = 0
        if self.state is State.HALF_OPEN:
            go = max(0, min(n, self.policy.probes - self.in_probe))
            self.in_probe += go
            if go < n:
                self.rejected += n - go
                # A probe is out: come back after a short open period, by when it has
                # answered (sooner would only burn the delivery's attempts).
                return go, self.policy.open_s
            return go, None
        return n, None

    def holding(self, now: float, n: int) -> float | None:
        """While open: seconds until the next probe (the `n` sends asked about are refused);
        None: ask `admit` when the sends start."""
        if self.state is State.OPEN and now < self.opened_until:
            self.rejected += n
            return self.opened_until - now
        return None

    def record(self, now: float, *, ok: bool) -> None:
        """Report the outcome of a send that `check` let through."""
        self.record_many(now, int(ok), int(not ok))

    def record_many(self, now: float, ok: int, failed: int) -> None:
        """Report the outcomes of sends that `admit` let through: `ok` answered (the
        provider is up), `failed` did not."""
        if ok + failed == 0:
            return
        if self.state is State.HALF_OPEN:
            self.in_probe = max(0, self.in_probe - ok - failed)
            if ok:
                self._close()
            else:
                self._open(now, min(self.policy.max_open_s, 2 * self.open_for))
            return
        if self.state is State.OPEN:
            return  # sends that started before the breaker opened: already counted
        # Running counts over the window: this runs once per chunk of sends, so it must not
        # rescan the window (the province benchmark spent 59 % of its CPU doing so).
        self._calls.append((now, ok + failed, failed))
        self._n += ok + failed
        self._failures += failed
        horizon = now - self.policy.window_s
        while self._calls and self._calls[0][0] < horizon:
            _t, calls, failures = self._calls.popleft()
            self._n -= calls
            self._failures -= failures
        if (self._n >= self.policy.min_calls
                and self._failures >= self.policy.failure_ratio * self._n):
            self._open(now, self.policy.open_s)

    def _open(self, now: float, length: float) -> None:
        self.state = State.OPEN
        self.open_for = length
        self.opened_until = now + length
        self.opened += 1
        self._calls.clear()
        self._n = 0
        self._failures = 0
        log.warning("circuit opened", provider=self.key, open_s=round(length, 3))

    def _close(self) -> None:
        self.state = State.CLOSED
        self.open_for = 0.0
        self._calls.clear()
        self._n = 0
        self._failures = 0
        log.info("circuit closed", provider=self.key, rejected=self.rejected)


class Breakers:
    """The breakers of a process, one per provider key, created on first use."""

    def __init__(self, now: Callable[[], float], policy: BreakerPolicy | None = None) -> None:
        self._now = now
        self.policy = policy or BreakerPolicy()
        self._by_key: dict[str, Breaker] = {}

    def get(self, key: str) -> Breaker:
        b = self._by_key.get(key)
        if b is None:
            b = self._by_key[key] = Breaker(key, self.policy)
        return b

    def admit(self, key: str, n: int) -> tuple[int, float | None]:
        return self.get(key).admit(self._now(), n)

    def record_many(self, key: str, ok: int, failed: int) -> None:
        self.get(key).record_many(self._now(), ok, failed)

    def holding(self, key: str, n: int) -> float | None:
        return self.get(key).holding(self._now(), n)

    def failing(self, key: str) -> bool:
        """The provider fails broadly: its breaker is open or probing."""
        b = self._by_key.get(key)
        return b is not None and b.state is not State.CLOSED

    def states(self) -> dict[str, State]:
        return {k: b.state for k, b in self._by_key.items()}
