"""The sweeper's check of open grids: none is left without something that will move it.

A grid that is calling or escalated moves on when its holder confirms or when its holder's
ack deadline fires (a `Deadline` timer at the grid's level). The paths that could leave one
with neither are closed where they start (advance.lua and init_grids.lua close a grid handed
to someone who has already confirmed). This check finds a grid left open anyway (written by an
older version, a timer lost with the last second of an AOF, a path nobody has seen yet),
repairs it and counts it (`warnbus_grids_repaired_total`, by why):

- `confirmed`: its holder has confirmed: it is closed as their confirmation closes a grid
  (audit `repair`);
- `overdue`: it has stayed at its level longer than the policy gives that level (the
  primary's redial window from the first wave, a chain person's step deadline) plus a grace
  of two leases (a due timer's handler that died is taken over after one lease): the holder's
  deadline at the grid's level is set for now, so the next tick moves it on exactly as that
  deadline would have (`escalation.decide`).

A check reads each active campaign's grids once; it runs every `engine.grid_check_s` in each
process with the timer role (a repair is idempotent, so two processes doing it is harmless).
"""

from __future__ import annotations

from collections import Counter

import structlog

from warnbus.domain.states import GridState, GridView
from warnbus.domain.steps import Step
from warnbus.flow.escalation import Deadline, EscalationPolicy, encode_timer, redial_offsets
from warnbus.runtime import metrics
from warnbus.runtime.context import Context

log = structlog.get_logger("warnbus.flow.repair")


def level_window(policy: EscalationPolicy, level: int) -> float:
    """How long a grid may stay at `level` before its holder's deadline moves it on."""
    if level == 0:
        return redial_offsets(policy)[1]
    return policy.step_s or policy.ack_deadline_s or 0.0


def deadline_step(policy: EscalationPolicy, level: int) -> Step:
    """The step whose deadline moves a grid on from `level`: the last redial of the primary
    (its deadline starts the chain), else the chain step of that level."""
    if level == 0:
        return Step.redial(policy.redials) if policy.redials else Step.first_wave()
    return Step.chain(level)


async def check_grids(ctx: Context) -> Counter[str]:
    """Find the open grids of the active campaigns that nothing will move, repair them and
    count them (see the module); return the counts by why."""
    done: Counter[str] = Counter()
    grace = 2 * ctx.settings.engine.lease_s
    for cid in await ctx.store.active_campaigns():
        now = ctx.clock.now()
        meta = await ctx.store.meta(cid)
        if meta is None or meta.over(now) or meta.level is None:
            continue
        reg = ctx.registry
        # A site (tracked like a grid) moves on by the sites' policy row (rules/sites.toml).
        policies = (ctx.rules.policy_for(meta.level), ctx.rules.site_policy_for(meta.level))
        if all(p.ack_deadline_s is None for p in policies):
            continue  # no confirmation asked: nothing moves a grid but a confirmation
        open_grids = [g for g in (await ctx.store.grids(cid)).values()
                      if g.state in GridState.OPEN]
        if not open_grids:
            continue
        closed = set(await ctx.store.settle_grids(cid, [g.grid_id for g in open_grids], now))
        since_default = meta.t0 or now
        overdue: dict[tuple[str, int], list[GridView]] = {}
        for g in open_grids:
            policy = policies[reg.is_site(g.grid_id)]
            if g.grid_id in closed or policy.ack_deadline_s is None:
                continue
            since = g.since if g.since is not None else since_default
            if now > since + level_window(policy, g.level) + grace:
                overdue.setdefault((g.holder, g.level), []).append(g)
        if overdue:
            # The deadline step by the policy of what the holder answers for at that level
            # (the grids' when a grid is among it, as the ticker times it).
            await ctx.timers.schedule([
                (encode_timer(Deadline.at(cid, holder, deadline_step(policies[all(
                    reg.is_site(g.grid_id) for g in gs)], level))), now)
                for (holder, level), gs in overdue.items()])
        n_over = sum(len(gs) for gs in overdue.values())
        if closed or n_over:
            log.warning("grids left open with nothing to move them, repaired", campaign_id=cid,
                        confirmed=sorted(closed)[:20], overdue=[
                            g.grid_id for gs in overdue.values() for g in gs][:20])
        done["confirmed"] += len(closed)
        done["overdue"] += n_over
    for why, n in done.items():
        if n:
            metrics.GRIDS_REPAIRED.labels(why).inc(n)
    return done
