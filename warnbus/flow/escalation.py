"""Escalation is data plus a tick: a due ack deadline -> redial, next person, or 未叫醒.

`decide` is pure (injected time, no Redis) and unit-tested on its own; the engine applies a
Decision through the same planner and queue as the first wave (never a side path).

Timing rule: the level policy's (rules/policy.toml explains it). The first wave goes out at
t0; a grid's primary officer is redialled at the policy's redial times; when the redial window
ends without a confirmation, each grid still held by that officer moves to the next person of
the policy's chain (backup, village head, township duty, county duty), who gets one message
per channel and the policy's step deadline to confirm before the grid moves on again. After
the last person of the chain the grid goes on the 未叫醒 list (unreached).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol

import msgspec

from warnbus.domain.models import CHAIN_ORDER, Delivery, DeliveryKind, Role, TargetKind
from warnbus.domain.states import GridState, GridView
from warnbus.domain.steps import Step

# --------------------------------------------------------------------------- timers


class Deadline(msgspec.Struct, frozen=True, array_like=True, tag="d"):
    """Ack deadline of one person at one step of a campaign (`int` of a `Step`)."""

    campaign_id: str
    person_id: str
    step: int

    @classmethod
    def at(cls, campaign_id: str, person_id: str, step: Step) -> Deadline:
        return cls(campaign_id, person_id, int(step))


class Retry(msgspec.Struct, frozen=True, array_like=True, tag="r"):
    """A delivery to put back on its lane after its `attempt`-th try failed transiently."""

    delivery: Delivery
    attempt: int


class Expiry(msgspec.Struct, frozen=True, array_like=True, tag="x"):
    campaign_id: str


class SpeakerCheck(msgspec.Struct, frozen=True, array_like=True, tag="s"):
    """Playout deadline of the loudspeakers of one area for one command."""

    campaign_id: str
    alert_id: str
    village: str


class FeedbackDue(msgspec.Struct, frozen=True, array_like=True, tag="f"):
    """A person's report after the ack: its reminder (`REMIND`) or its deadline (`OVERDUE`),
    flow/feedback.py."""

    campaign_id: str
    person_id: str
    stage: int

    REMIND: ClassVar[int] = 0
    OVERDUE: ClassVar[int] = 1


TimerItem = Deadline | Retry | Expiry | SpeakerCheck | FeedbackDue

_timer_enc = msgspec.msgpack.Encoder()
_timer_dec: msgspec.msgpack.Decoder[TimerItem] = msgspec.msgpack.Decoder(TimerItem)


def encode_timer(item: TimerItem) -> bytes:
    return _timer_enc.encode(item)


def decode_timer(blob: bytes) -> TimerItem:
    return _timer_dec.decode(blob)


def playout_checks(deliveries: Sequence[Delivery], wait_s: float | None, now: float
                   ) -> list[tuple[bytes, float]]:
    """The playout deadlines of the area commands among `deliveries` (Warnings and Updates),
    `wait_s` after they are queued.

    Scheduled when a command is queued, not when it was sent: a command that cannot reach
    its speakers in time (the broker is down, its breaker open) puts the grid officers of
    its village on notice at the deadline as a silent speaker does (`Ticker.speakers`),
    while the command itself keeps waiting for the broker as long as its alert is valid."""
    if not wait_s:
        return []
    return [(encode_timer(SpeakerCheck(d.campaign_id, d.alert_id, d.address)), now + wait_s)
            for d in deliveries
            if d.target_kind is TargetKind.DEVICE
            and d.kind in (DeliveryKind.WARNING, DeliveryKind.UPDATE)]


# --------------------------------------------------------------------------- policy view


class EscalationPolicy(Protocol):
    """The part of a level policy escalation reads (rules.policy.LevelPolicy has it)."""

    @property
    def ack_deadline_s(self) -> float | None: ...
    @property
    def redials(self) -> int: ...
    @property
    def redial_window_s(self) -> float: ...
    @property
    def chain(self) -> Sequence[Role]: ...
    @property
    def step_s(self) -> float | None: ...
    def redial_times(self) -> tuple[float, ...]: ...


def redial_offsets(policy: EscalationPolicy) -> tuple[tuple[float, ...], float]:
    """Offsets after the first wave: (redial times, when the chain starts)."""
    deadline = policy.ack_deadline_s or 0.0
    times = policy.redial_times()
    return times, deadline + (policy.redial_window_s if times else 0.0)


def deadline_for(policy: EscalationPolicy, step: Step, t0: float, now: float) -> float:
    """When the ack deadline of `step` falls (t0: the person's first wave)."""
    if step.level > 0:
        return now + (policy.step_s or policy.ack_deadline_s or 0.0)
    times, escalate = redial_offsets(policy)
    return t0 + (times[step.redials] if step.redials < len(times) else escalate)


# --------------------------------------------------------------------------- decision


@dataclass(frozen=True)
class Advance:
    grid_id: str
    from_level: int
    to_level: int
    new_holder: str | None  # None: chain exhausted, the grid is unreached (未叫醒)


@dataclass(frozen=True)
class Decision:
    redial: int | None = None  # the redial number to send now (1..R)
    advances: tuple[Advance, ...] = ()
    reason: str = ""


def decide(
    timer: Deadline,
    *,
    acked: bool,
    active: bool,
    policy: EscalationPolicy,
    held: Sequence[GridView],
    chain: Callable[[str], Sequence[str | None]],
    order: Sequence[Role | None] = CHAIN_ORDER,
) -> Decision:
    """What to do when `timer` is due. `chain(grid)` gives person ids in `order` (a grid's
    CHAIN_ORDER; a site's SITE_CHAIN_ORDER), each role's index being its chain level."""
    if not active:
        return Decision(reason="campaign over")
    if acked:
        return Decision(reason="confirmed")
    step = Step.of(timer.step)
    level = step.level
    if level == 0 and step.redials < policy.redials:
        return Decision(redial=step.redials + 1, reason="no answer: redial")
    levels = [order.index(role) for role in policy.chain if role in order]
    advances: list[Advance] = []
    for g in held:
        if g.state in GridState.CLOSED:
            continue
        nxt = _next_in_chain(chain(g.grid_id), levels, level, timer.person_id)
        if g.level == level and g.holder == timer.person_id:
            advances.append(Advance(g.grid_id, level, *nxt) if nxt else
                            Advance(g.grid_id, level, level, None))
        elif nxt and g.state is GridState.ESCALATED and (g.level, g.holder) == nxt:
            # An earlier run of this very timer moved the grid but died before calling the
            # next person: do the same move again so its follow-up (messages, deadline) is
            # redone. Both are idempotent (deterministic ids, timers added only if absent).
            advances.append(Advance(g.grid_id, level, *nxt))
    return Decision(advances=tuple(advances), reason="no answer: escalate")


def _next_in_chain(
    people: Sequence[str | None], levels: Sequence[int], level: int, current: str
) -> tuple[int, str] | None:
    """The next (level, person) after `level` in the policy's order (`levels`), skipping
    vacancies. Levels need not grow along a chain (a site's grid officer has a level of its
    own); from the first wave, or a level the policy does not name (an Update changed the
    level), the chain goes on with the levels above it."""
    after = levels[levels.index(level) + 1:] if level in levels else [
        lv for lv in levels if lv > level]
    for lv in after:
        if lv < len(people):
            pid = people[lv]
            if pid and pid != current:
                return lv, pid
    return None
