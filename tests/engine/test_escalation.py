"""escalation.decide: table-driven, no Redis, injected policy."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from warnbus.domain.models import Role
from warnbus.domain.states import GridState, GridView
from warnbus.domain.steps import Step
from warnbus.flow.escalation import (
    Advance,
    Deadline,
    Expiry,
    Retry,
    deadline_for,
    decide,
    decode_timer,
    encode_timer,
    redial_offsets,
)


@dataclass(frozen=True)
class P:
    ack_deadline_s: float | None = 180
    redials: int = 3
    redial_window_s: float = 300
    chain: tuple[Role, ...] = (Role.BACKUP, Role.VILLAGE_HEAD, Role.TOWNSHIP_DUTY,
                               Role.COUNTY_DUTY)
    step_s: float | None = 180

    def redial_times(self) -> tuple[float, ...]:
        if not self.redials:
            return ()
        gap = self.redial_window_s / self.redials
        return tuple((self.ack_deadline_s or 0) + k * gap for k in range(self.redials))


CHAIN = {"g1": ("p1", "b1", "v1", "t1", "c1"), "g2": ("p1", None, "v1", "t1", "c1"),
         "g3": ("p1", "b3", "v1", None, None)}


def chain(g: str) -> tuple[str | None, ...]:
    return CHAIN[g]


def held(*items: tuple[str, int, GridState, str]) -> list[GridView]:
    return [GridView(grid, state, level, holder) for grid, level, state, holder in items]


CALLING = GridState.CALLING
ESC = GridState.ESCALATED


@pytest.mark.parametrize(
    ("step", "person", "grids", "acked", "active", "want_redial", "want"),
    [
        (0, "p1", held(("g1", 0, CALLING, "p1")), False, True, 1, ()),
        (2, "p1", held(("g1", 0, CALLING, "p1")), False, True, 3, ()),
        (0, "p1", held(("g1", 0, CALLING, "p1")), True, True, None, ()),
        (0, "p1", held(("g1", 0, CALLING, "p1")), False, False, None, ()),
        # after the last redial: each grid moves to its next person; a missing backup is skipped
        (3, "p1", held(("g1", 0, CALLING, "p1"), ("g2", 0, CALLING, "p1")), False, True, None,
         (Advance("g1", 0, 1, "b1"), Advance("g2", 0, 2, "v1"))),
        # a grid already confirmed, or moved further up by someone else, is left alone
        (3, "p1", held(("g1", 0, GridState.CONFIRMED, "p1"), ("g2", 3, ESC, "t1")), False, True,
         None, ()),
        # replay of an interrupted run: the grid already sits with the next person, so the
        # same move is emitted again and its follow-up (messages, deadline) is redone
        (3, "p1", held(("g2", 2, ESC, "v1")), False, True, None, (Advance("g2", 0, 2, "v1"),)),
        (20, "v1", held(("g2", 2, ESC, "v1")), False, True, None, (Advance("g2", 2, 3, "t1"),)),
        # chain exhausted: unreached (未叫醒)
        (20, "v1", held(("g3", 2, ESC, "v1")), False, True, None, (Advance("g3", 2, 2, None),)),
        (40, "c1", held(("g1", 4, ESC, "c1")), False, True, None, (Advance("g1", 4, 4, None),)),
    ],
)
def test_decide(step: int, person: str, grids: list[GridView], acked: bool, active: bool,
                want_redial: int | None, want: tuple[Advance, ...]) -> None:
    d = decide(Deadline("c", person, step), acked=acked, active=active, policy=P(), held=grids,
               chain=chain)
    assert d.redial == want_redial
    assert d.advances == want


def test_a_shorter_chain_stops_earlier() -> None:
    p = P(chain=(Role.BACKUP,))
    d = decide(Deadline("c", "b1", 10), acked=False, active=True, policy=p,
               held=held(("g1", 1, ESC, "b1")), chain=chain)
    assert d.advances == (Advance("g1", 1, 1, None),)


def test_timeline() -> None:
    p = P()
    times, chain_at = redial_offsets(p)
    assert times == (180, 280, 380) and chain_at == 480
    assert deadline_for(p, Step.first_wave(), 1000, 1000) == 1180
    assert deadline_for(p, Step.redial(2), 1000, 1100) == 1380
    assert deadline_for(p, Step.redial(3), 1000, 1400) == 1480
    assert deadline_for(p, Step.chain(2), 1000, 2000) == 2180
    no_redial = P(redials=0)
    assert deadline_for(no_redial, Step.first_wave(), 0, 0) == 180


def test_timer_members_are_deterministic_and_round_trip() -> None:
    for item in (Deadline("c", "p", 3), Expiry("c")):
        assert decode_timer(encode_timer(item)) == item
        assert encode_timer(item) == encode_timer(item)
    assert isinstance(decode_timer(encode_timer(Expiry("x"))), Expiry)
    assert Retry.__struct_config__.tag == "r"
