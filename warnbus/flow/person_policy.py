"""The policy row a person is held to in a campaign: the sites' for the people called only
for sites (rules/sites.toml), the grids' for everyone else (rules/policy.toml).

Whatever reads a policy for one person (the ack page's 解除 confirmation, the feedback
deadline and its reminder, the board's reports due) asks here, as the escalation does
(`Chains.policy_of`), so a site's people are never held to the grids' row.
"""

from __future__ import annotations

from collections.abc import Sequence

from warnbus.domain.models import Level
from warnbus.flow.chains import policy_for_keys
from warnbus.flow.ports import LevelPolicyLike
from warnbus.runtime.context import Context


def policy_of_held(ctx: Context, level: Level, keys: Sequence[str]) -> LevelPolicyLike:
    """The policy of a person who answers for `keys` (grid and site ids) at `level`."""
    return policy_for_keys(ctx.rules.policy_for(level), ctx.rules.site_policy_for(level), keys,
                           ctx.registry.is_site)


async def person_policy(ctx: Context, campaign_id: str, person_id: str, level: Level
                        ) -> LevelPolicyLike:
    """The policy of `person_id` in the campaign, by the grids and sites they answer for."""
    held = await ctx.store.held(campaign_id, person_id)
    return policy_of_held(ctx, level, [g.grid_id for g in held])
