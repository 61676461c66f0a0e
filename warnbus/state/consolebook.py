"""What the console adds to a campaign: who drafted and approved each message, and the
door-to-door orders of its grids (`keys.console_campaign`, tagged like the campaign's keys).
Owned by the store (`Store.console`); the console asks it.
"""

from __future__ import annotations

from typing import Any

import msgspec

from warnbus.state import keys
from warnbus.state.client import RedisClient
from warnbus.state.replies import s

_DOOR = "d2d:"  # field prefix of a grid's door-to-door order; other fields are alert ids


class Provenance(msgspec.Struct, frozen=True):
    """Who drafted and who approved one published console message."""

    draft: str
    kind: str
    drafted_by: str
    approved_by: str
    at: float


class DoorOrder(msgspec.Struct, frozen=True):
    """A console user's order that someone go door to door for a grid."""

    by: str  # the console user
    at: float
    to: str  # the name of who was told


_prov = msgspec.json.Decoder(Provenance)
_door = msgspec.json.Decoder(DoorOrder)


class ConsoleBook:
    def __init__(self, redis: RedisClient) -> None:
        self._redis: Any = redis  # replies decoded here

    async def record_provenance(self, campaign_id: str, alert_id: str, prov: Provenance) -> None:
        await self._redis.hset(keys.console_campaign(campaign_id), alert_id,
                               msgspec.json.encode(prov))

    async def provenance(self, campaign_id: str) -> dict[str, Provenance]:
        """Who drafted and approved each console message of the thread, by alert id."""
        raw = await self._redis.hgetall(keys.console_campaign(campaign_id))
        return {s(k): _prov.decode(v) for k, v in raw.items() if not s(k).startswith(_DOOR)}

    async def order_door(self, campaign_id: str, grid_id: str, order: DoorOrder) -> None:
        await self._redis.hset(keys.console_campaign(campaign_id), _DOOR + grid_id,
                               msgspec.json.encode(order))

    async def door_orders(self, campaign_id: str) -> dict[str, DoorOrder]:
        """The door-to-door order of each grid that has one, by grid id."""
        raw = await self._redis.hgetall(keys.console_campaign(campaign_id))
        return {s(k)[len(_DOOR):]: _door.decode(v) for k, v in raw.items()
                if s(k).startswith(_DOOR)}
