"""One person's deadline over the grids and sites they answer for: which policy and which
chain each follows.

A grid escalates along `CHAIN_ORDER` by the level policy (rules/policy.toml), a site along
`SITE_CHAIN_ORDER` by the sites' policy (rules/sites.toml). A person has one deadline per
step, so one policy times it (`Chains.policy_of`: the grids' when they answer for a grid at
that step, else the sites'), while each grid and site moves along its own chain. Pure: the
chains are asked at the moment of the step (who is on duty then) by the caller's functions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from warnbus.domain.models import CHAIN_ORDER, SITE_CHAIN_ORDER, Role
from warnbus.domain.states import GridView
from warnbus.domain.steps import Step
from warnbus.flow.escalation import (
    Advance,
    Deadline,
    Decision,
    EscalationPolicy,
    decide,
)
from warnbus.flow.ports import LevelPolicyLike


def policy_for_keys(grid_policy: LevelPolicyLike, site_policy: LevelPolicyLike,
                    keys: Sequence[str], is_site: Callable[[str], bool]) -> LevelPolicyLike:
    """The policy row of a person called for `keys` (the grids and sites they answer for):
    the sites' when they answer only for sites, else the grids'."""
    if keys and all(is_site(k) for k in keys):
        return site_policy
    return grid_policy


@dataclass(frozen=True)
class Chains:
    """The policies and chains of a campaign's grids and sites at one moment."""

    grid_policy: LevelPolicyLike
    site_policy: LevelPolicyLike
    grid_chain: Callable[[str], Sequence[str | None]]
    site_chain: Callable[[str], Sequence[str | None]]
    is_site: Callable[[str], bool]

    def policy_of(self, keys: Sequence[str]) -> LevelPolicyLike:
        """The policy of a person's deadline for `keys` (what they answer for at a step)."""
        return policy_for_keys(self.grid_policy, self.site_policy, keys, self.is_site)

    def role_at(self, key: str, level: int) -> Role | None:
        """The role of the person at `level` of the chain of a grid or site."""
        order = SITE_CHAIN_ORDER if self.is_site(key) else CHAIN_ORDER
        return order[level] if level < len(order) else None


@dataclass(frozen=True)
class _NoRedials:
    """A policy seen by a grid or site of a deadline another policy times: it moves on."""

    policy: EscalationPolicy

    @property
    def ack_deadline_s(self) -> float | None:
        return self.policy.ack_deadline_s

    @property
    def redials(self) -> int:
        return 0

    @property
    def redial_window_s(self) -> float:
        return self.policy.redial_window_s

    @property
    def chain(self) -> Sequence[Role]:
        return self.policy.chain

    @property
    def step_s(self) -> float | None:
        return self.policy.step_s

    def redial_times(self) -> tuple[float, ...]:
        return ()


def decide_held(timer: Deadline, *, acked: bool, active: bool, held: Sequence[GridView],
                chains: Chains) -> Decision:
    """`escalation.decide` for a person's grids and sites: a redial by the policy of the
    person's deadline, else each grid and site along its own chain by its own policy."""
    level = Step.of(timer.step).level
    mine = [g.grid_id for g in held if g.level == level and g.holder == timer.person_id]
    own = chains.policy_of(mine)
    first = decide(timer, acked=acked, active=active, policy=own, held=(),
                   chain=chains.grid_chain)
    if first.redial is not None or not active or acked:
        return first
    grids = [g for g in held if not chains.is_site(g.grid_id)]
    sites = [g for g in held if chains.is_site(g.grid_id)]
    advances: list[Advance] = []
    if grids:
        advances += decide(timer, acked=acked, active=active, held=grids,
                           policy=_NoRedials(chains.grid_policy),
                           chain=chains.grid_chain).advances
    if sites:
        advances += decide(timer, acked=acked, active=active, held=sites,
                           policy=_NoRedials(chains.site_policy), chain=chains.site_chain,
                           order=SITE_CHAIN_ORDER).advances
    return replace(first, advances=tuple(advances))
