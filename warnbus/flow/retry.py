"""When a delivery that failed, or was not sent, is tried again; and when it gives up.

Retries are bounded by time, not by a small count (an outage shorter than the deadline
delays people, it never drops them). A delivery is tried again, with backoff, until its
horizon (`retry_horizon`):

- a person's message of the 叫应 chain: its step's deadline (`Delivery.retry_until`), when
  the person's next redial or escalation takes over;
- an area command (loudspeakers): for as long as its alert is valid;
- anything else (an Update, a notice, the 解除 notice, a level that asks no confirmation):
  `engine.retry_window_s` after it was planned, and not beyond its alert's expiry.

The last try lands at least `engine.retry_base_s` before the horizon, so it never meets the
next step's messages; a failure after it gives up: dead-lettered (visible), and the policy's
fallback channel takes over (`flow.fallback`). `engine.max_attempts`, when set, also caps the
provider calls.

A delivery its provider's breaker refused was not sent: no attempt is recorded and nothing is
counted (`Store.unsent`); it waits on the durable timers for the breaker's next probe.
"""

from __future__ import annotations

import random

from warnbus.domain.models import Delivery, DeliveryKind, TargetKind
from warnbus.runtime.config import EngineSettings

#: How long an area command of an alert without an expiry waits for its broker: the
#: loudspeaker channel's default message expiry.
DEVICE_WAIT_S = 6 * 3600.0


def retry_horizon(d: Delivery, window_s: float) -> float:
    """Until when `d` is tried again after a transient failure or a refusal (see the module)."""
    if d.retry_until is not None:
        return d.retry_until
    expires = None if d.kind is DeliveryKind.CANCEL else d.expires_at  # 解除 always goes
    if d.target_kind is TargetKind.DEVICE:
        return expires if expires is not None else d.created_at + DEVICE_WAIT_S
    end = d.created_at + window_s
    return min(end, expires) if expires is not None else end


def next_try(cfg: EngineSettings, d: Delivery, at: float, delay: float) -> float | None:
    """When to try `d` again, `delay` after `at`, kept inside its horizon; None: give up."""
    room = retry_horizon(d, cfg.retry_window_s) - at - cfg.retry_base_s
    if room <= 0:
        return None
    return at + min(delay, room)


def backoff(cfg: EngineSettings, n: int) -> float:
    """The wait after the `n`-th failed attempt: exponential, capped, jittered (the retries of
    a failed chunk do not come back as one herd)."""
    grown: float = cfg.retry_base_s * 2.0 ** (max(n, 1) - 1)
    return min(cfg.retry_max_s, grown) * random.uniform(0.5, 1.0)


def spread(wait: float) -> float:
    """A breaker's wait until its next probe, plus up to 2 s of jitter."""
    return wait + random.uniform(0.0, min(wait, 2.0))


def out_of_attempts(cfg: EngineSettings, n: int) -> bool:
    """The optional cap on provider calls (`engine.max_attempts`; 0: none)."""
    return bool(cfg.max_attempts) and n >= cfg.max_attempts
