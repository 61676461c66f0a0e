"""Where each person of a campaign stands, and the grids still waiting for somebody.

One vocabulary (docs/console.md): persons (叫应对象, everyone the campaign calls to confirm:
grid officers and whoever a grid was escalated to), grids, loudspeakers: each counted on its
own, never summed together. A person is

- 叫应中 (pending): being called now for a grid that is still open;
- 已确认 (confirmed): confirmed, however (key press, reply, card, link, by hand);
- 已升级 (escalated): not confirmed, and a grid of theirs moved on to someone else;
- 未叫醒 (unreached): not confirmed, and a grid of theirs ran out of chain;
- 未确认·已结束 (closed): not confirmed, their grids closed otherwise (another person
  confirmed, a door-to-door result, calling stopped, dropped by an Update, lifted), or the
  campaign is over (lifted, expired) while a grid of theirs was still open;
- 尚未呼叫 (not called): shown beside a grid's people (its backup officer, say) whom the
  campaign has not called; never counted as a person of the campaign.

What happens next to a pending person (the next redial, or the move up the chain) follows the
level's policy from their own first wave (`escalation.deadline_for`): an area added by an
Update is timed from when it was added, not from the original alert.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from warnbus.domain.duty import DutyBook
from warnbus.domain.models import CHAIN_ORDER, SITE_CHAIN_ORDER, Ack
from warnbus.domain.states import GridState, TargetState
from warnbus.domain.steps import Step
from warnbus.flow.escalation import deadline_for
from warnbus.flow.ports import LevelPolicyLike
from warnbus.registry import Registry
from warnbus.state.boardreads import Held, Live
from warnbus.web.console.history import Call, Digest
from warnbus.web.console.html import PERSON_ROLE_ZH


class PersonState(StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    ESCALATED = "escalated"
    UNREACHED = "unreached"
    CLOSED = "closed"
    NOT_CALLED = "not_called"  # listed with a grid, not called (yet): not a person counted


def person_state(pid: str, held: Held, live: Live, over: bool = False) -> PersonState:
    """Where a person stands (the module says what each state means); `over`: the campaign
    is over (`board.ended_as`), so an open grid calls nobody any more."""
    if pid in live.acked:
        return PersonState.CONFIRMED
    unreached = escalated = False
    for grid_id, _level in held:
        g = live.grids.get(grid_id)
        if g is None:
            continue
        if g.state in GridState.OPEN and not over:
            if g.holder == pid:
                return PersonState.PENDING
            escalated = True  # a grid only moves up: another holder is a later one
        elif g.state is GridState.UNREACHED:
            unreached = True
    if unreached:
        return PersonState.UNREACHED
    return PersonState.ESCALATED if escalated else PersonState.CLOSED


def person_counts(live: Live, over: bool = False) -> dict[str, int]:
    """Persons by state (`over`: the campaign is over), with their total, those reached (a
    message got to them) and those the chain added (not a grid officer of the first wave)."""
    counts: Counter[str] = Counter()
    for pid, held in live.holds.items():
        counts[person_state(pid, held, live, over)] += 1
        if live.tstate.get(pid) in TargetState.REACHED:
            counts["reached"] += 1
        if held and min(level for _g, level in held) > 0:
            counts["added"] += 1
    counts["total"] = len(live.holds)
    return dict(counts)


@dataclass(frozen=True)
class NextStep:
    at: float
    what: str  # 第2次重拨, 升级至 王五（村负责人）, 列入未叫醒


@dataclass
class PersonLine:
    """One person of a grid as the pending list and the grid page show them."""

    pid: str
    name: str
    role: str  # the chain role they answer for the grid at (primary, backup, ...)
    phone: str
    state: PersonState
    ack: Ack | None = None
    calls: list[Call] = field(default_factory=list)
    rounds: int = 0  # first wave and redials (or the one message of a chain step) sent
    next: NextStep | None = None
    moved_to: str = ""  # who the grid moved on to (escalated), as "name（role）"


@dataclass(frozen=True)
class Planner:
    """What the next step of a pending person depends on: the policy (a site's: the sites'
    row), the registry and who is on duty, the campaign's history and first-wave times."""

    policy: LevelPolicyLike | None
    registry: Registry
    digest: Digest
    first: Mapping[str, float]
    t0: float
    site_policy: LevelPolicyLike | None = None
    duty: DutyBook | None = None  # the rosters with the console's changes (None: the registry's)

    def policy_of(self, key: str) -> LevelPolicyLike | None:
        """The policy a campaign's grid key follows: a site's is the sites' row."""
        return self.site_policy if self.registry.is_site(key) else self.policy

    def next_step(self, grid_id: str, level: int, pid: str, calls: Iterable[Call],
                  now: float) -> NextStep | None:
        """When the engine acts next for a pending person, and what it will do: the next
        redial of a grid officer, then the move up the chain (the ticker's own deadlines)."""
        policy = self.policy_of(grid_id)
        if policy is None or policy.ack_deadline_s is None:
            return None  # the level needs no confirmation: nothing follows
        if level == 0:
            done = max((c.step for c in calls if 0 <= c.step < Step.chain(1).code), default=0)
            at = deadline_for(policy, Step.of(done), self.first.get(pid, self.t0), now)
            if done < policy.redials:
                return NextStep(at, f"第{done + 1}次重拨")
        else:
            since = self.digest.escalated_at(grid_id, pid) or now
            at = deadline_for(policy, Step.chain(level), since, since)
        return NextStep(at, self._up(grid_id, level, pid, policy, at))

    def _up(self, grid_id: str, level: int, pid: str, policy: LevelPolicyLike, at: float
            ) -> str:
        """Who the grid or site moves to at `at` (who is on duty then)."""
        reg = self.registry
        site = reg.is_site(grid_id)
        if not site and grid_id not in reg.data.grids:  # removed from the registry meanwhile
            return "列入未叫醒"
        people = reg.chain_of(grid_id, at=at, duty=self.duty)
        order: tuple[object, ...] = SITE_CHAIN_ORDER if site else CHAIN_ORDER
        for role in policy.chain:
            lv = order.index(role)
            nxt = people[lv] if lv < len(people) else None
            if level < lv and nxt and nxt != pid:
                p = self.registry.data.persons.get(nxt)
                return f"升级至 {p.name if p else nxt}（{PERSON_ROLE_ZH[role.value]}）"
        return "列入未叫醒"


def rounds_of(calls: Iterable[Call]) -> int:
    return len({c.step for c in calls})
