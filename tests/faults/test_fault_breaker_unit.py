"""The circuit breaker on its own: when it opens, how it probes, when it closes (pure)."""

from __future__ import annotations

import pytest

from warnbus.flow.breaker import Breaker, BreakerPolicy, Breakers, State

P = BreakerPolicy(window_s=10, min_calls=4, failure_ratio=0.5, open_s=2, max_open_s=5)


def test_one_failing_address_does_not_open_it() -> None:
    b = Breaker("sms", P)
    for t in range(3):  # below the minimum volume: that address, not the provider
        assert b.check(t) is None
        b.record(t, ok=False)
    assert b.state is State.CLOSED


def test_opens_on_failure_ratio_then_probes_and_closes() -> None:
    b = Breaker("sms", P)
    for t, ok in enumerate([True, False, False, False]):
        assert b.check(t) is None
        b.record(t, ok=ok)
    assert b.state is State.OPEN and b.opened == 1
    assert b.check(3.5) == pytest.approx(1.5)  # wait until the open period ends
    assert b.check(5.0) is None  # half-open: one probe
    assert b.check(5.0) is not None  # a second one waits while the probe is out
    b.record(5.1, ok=True)
    assert b.state is State.CLOSED
    assert b.check(5.2) is None


def test_failed_probe_doubles_the_open_period_up_to_the_cap() -> None:
    b = Breaker("voice", P)
    for t in range(4):
        b.check(t)
        b.record(t, ok=False)
    lengths = []
    now = 3.0
    for _ in range(4):
        now = b.opened_until
        assert b.check(now) is None
        b.record(now, ok=False)
        lengths.append(b.open_for)
    assert lengths == [4, 5, 5, 5]


def test_old_outcomes_leave_the_window() -> None:
    b = Breaker("wecom", P)
    for t in (0, 1, 2):
        b.check(t)
        b.record(t, ok=False)
    b.check(20)
    b.record(20, ok=False)  # the three old failures are out of the 10 s window
    assert b.state is State.CLOSED


def test_breakers_are_per_key() -> None:
    now = [0.0]
    bs = Breakers(lambda: now[0], P)
    for _ in range(4):
        assert bs.admit("twilio", 1) == (1, None)
        bs.record_many("twilio", 0, 1)
    assert bs.admit("twilio", 1)[0] == 0
    assert bs.admit("wecom", 1) == (1, None)
    assert bs.states() == {"twilio": State.OPEN, "wecom": State.CLOSED}


def test_a_chunk_is_admitted_whole_when_closed_and_one_probe_when_half_open() -> None:
    b = Breaker("sms", BreakerPolicy(window_s=10, min_calls=4, failure_ratio=0.5, open_s=2,
                                     max_open_s=5, probes=2))
    assert b.admit(0, 64) == (64, None)
    b.record_many(0, 1, 63)  # a chunk's outcomes, reported together
    assert b.state is State.OPEN
    assert b.admit(1, 64) == (0, pytest.approx(1))  # all wait for the open period
    assert b.admit(2, 64) == (2, 2)  # half-open: the probes go, the others come back later
    assert b.admit(2, 5) == (0, 2)  # the probes are out
    assert b.rejected == 64 + 62 + 5
    b.record_many(2.5, 0, 2)
    assert b.state is State.OPEN and b.open_for == 4
    assert b.admit(6.5, 1) == (1, None)
    b.record_many(6.6, 1, 0)
    assert b.state is State.CLOSED


def test_chunk_reports_count_each_send_in_the_window() -> None:
    b = Breaker("wecom", P)
    b.record_many(0, 3, 0)
    b.record_many(1, 0, 2)  # 2 of 5 failed: under the ratio
    assert b.state is State.CLOSED
    b.record_many(2, 0, 1)  # 3 of 6
    assert b.state is State.OPEN
    c = Breaker("wecom", P)
    c.record_many(0, 0, 3)
    c.record_many(20, 0, 1)  # the three old failures left the window: 1 call
    assert c.state is State.CLOSED
    c.record_many(20, 0, 0)  # nothing to report
    assert c.state is State.CLOSED


@pytest.mark.parametrize("kwargs", [{"failure_ratio": 0}, {"min_calls": 0}, {"open_s": 0},
                                    {"open_s": 10, "max_open_s": 5}, {"probes": 0}])
def test_policy_is_validated(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        BreakerPolicy(**kwargs)  # type: ignore[arg-type]
