"""What the console's board reads of a campaign, beside the store (`Store.board`): who answers
for which grids, each person's first wave, and the live state of grids, targets and
confirmations in one round trip. Reads only; the store's scripts write these keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from warnbus.domain.states import GridState, GridView, TargetState
from warnbus.state import keys
from warnbus.state.client import RedisClient
from warnbus.state.replies import text_of


def grid_view(grid_id: str, raw: str) -> GridView:
    """A grid's stored "state|level|holder|since"."""
    state, level, holder, since = [*raw.split("|"), "", "0", "", ""][:4]
    return GridView(grid_id, GridState(state), int(level or 0), holder,
                    float(since) if since else None)


#: A person's grids in a campaign: (grid id, the chain level they answer for it at).
Held = tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class Live:
    """A campaign's grids, target states, who answers for what and who confirmed, read at
    once (`BoardReads.live`)."""

    grids: dict[str, GridView]
    tstate: dict[str, TargetState]
    holds: dict[str, Held]
    acked: frozenset[str]


def _held(raw: str) -> Held:
    out = []
    for item in raw.split(","):
        grid, _, level = item.partition(":")
        if grid:
            out.append((grid, int(level or 0)))
    return tuple(out)


class BoardReads:
    def __init__(self, redis: RedisClient) -> None:
        self._redis: Any = redis  # replies decoded here

    async def live(self, campaign_id: str) -> Live:
        """Grids, target states, holds and who confirmed, in one round trip."""
        ck = keys.campaign(campaign_id)
        pipe = self._redis.pipeline(transaction=False)
        pipe.hgetall(ck.grids)
        pipe.hgetall(ck.tstate)
        pipe.hgetall(ck.holds)
        pipe.hkeys(ck.acks)
        grids, tstate, holds, acked = await pipe.execute()
        return Live(
            grids={text_of(k): grid_view(text_of(k), text_of(v)) for k, v in grids.items()},
            tstate={text_of(k): TargetState(text_of(v)) for k, v in tstate.items()},
            holds={text_of(k): _held(text_of(v)) for k, v in holds.items()},
            acked=frozenset(text_of(p) for p in acked))

    async def holds(self, campaign_id: str) -> dict[str, Held]:
        """Who answers for what: person id -> their grids and sites, with their levels."""
        raw = await self._redis.hgetall(keys.campaign(campaign_id).holds)
        return {text_of(k): _held(text_of(v)) for k, v in raw.items()}

    async def first_waves(self, campaign_id: str) -> dict[str, float]:
        """When each target's first wave went out (an area added by an Update: when it was
        added), by target id."""
        raw = await self._redis.hgetall(keys.campaign(campaign_id).first)
        return {text_of(k): float(v) for k, v in raw.items()}

    async def persons(self, campaign_ids: list[str]) -> list[int]:
        """How many persons answer for a grid of each campaign (grid officers and everyone
        escalated to), in one round trip."""
        pipe = self._redis.pipeline(transaction=False)
        for cid in campaign_ids:
            pipe.hlen(keys.campaign(cid).holds)
        return [int(n) for n in await pipe.execute()]
