"""What the console adds to a campaign: who drafted and approved each message, the
door-to-door orders of its grids and their results, and a stop of its calling
(`keys.console_campaign`, tagged like the campaign's keys). Owned by the store
(`Store.console`); the console asks it.

A door-to-door order, its result and a stop are audited in the campaign's stream too, in the
same step (a transaction, or a script beside this module), so the grid's history shows them in
time order with the calls.
"""

from __future__ import annotations

from typing import Any

import msgspec

from warnbus.domain.doors import DoorResult
from warnbus.domain.states import AuditEvent
from warnbus.state import keys, scripts
from warnbus.state.client import RedisClient
from warnbus.state.replies import text_of

_DOOR = "d2d:"  # field prefix of a grid's door-to-door order
_RESULT = "d2r:"  # field prefix of a grid's latest door-to-door result
STOP_FIELD = "calls-stopped"  # the field of a stop of the campaign's calling
_NOT_PROVENANCE = (_DOOR, _RESULT, STOP_FIELD)  # every other field is an alert id

STOP = scripts.load(__file__, "stop")
DOOR = scripts.load(__file__, "door")


class Provenance(msgspec.Struct, frozen=True):
    """Who drafted and who approved one published console message."""

    draft: str
    kind: str
    drafted_by: str
    approved_by: str
    at: float
    on_behalf_of: str = ""  # the sender of the thread the console continued on its behalf


class DoorOrder(msgspec.Struct, frozen=True):
    """A console user's order that someone go door to door for a grid."""

    by: str  # the console user
    at: float
    to: str  # the name of who was told
    person: str = ""  # their person id (orders before this field: "")


class StopOrder(msgspec.Struct, frozen=True):
    """A duty officer's stop of a campaign's calling (停止叫应)."""

    by: str  # the console user
    at: float
    reason: str


_prov = msgspec.json.Decoder(Provenance)
_door = msgspec.json.Decoder(DoorOrder)
_result = msgspec.json.Decoder(DoorResult)
_stop = msgspec.json.Decoder(StopOrder)


class ConsoleBook:
    def __init__(self, redis: RedisClient) -> None:
        self._redis: Any = redis  # replies decoded here
        self._stop = STOP.bind(redis)
        self._door = DOOR.bind(redis)

    async def record_provenance(self, campaign_id: str, alert_id: str, prov: Provenance) -> None:
        await self._redis.hset(keys.console_campaign(campaign_id), alert_id,
                               msgspec.json.encode(prov))

    async def provenance(self, campaign_id: str) -> dict[str, Provenance]:
        """Who drafted and approved each console message of the thread, by alert id."""
        raw = await self._redis.hgetall(keys.console_campaign(campaign_id))
        return {text_of(k): _prov.decode(v) for k, v in raw.items()
                if not text_of(k).startswith(_NOT_PROVENANCE)}

    async def order_door(self, campaign_id: str, grid_id: str, order: DoorOrder) -> None:
        """Keep a grid's door-to-door order (the latest) and audit it, in one transaction."""
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(keys.console_campaign(campaign_id), _DOOR + grid_id, msgspec.json.encode(order))
        pipe.xadd(keys.campaign(campaign_id).audit, {
            "ev": AuditEvent.DOOR_ORDER.value, "at": str(order.at), "g": grid_id,
            "tg": order.person, "to": order.to, "by": order.by})
        await pipe.execute()

    async def door_orders(self, campaign_id: str) -> dict[str, DoorOrder]:
        """The door-to-door order of each grid that has one, by grid id."""
        return {g: _door.decode(v) for g, v in (await self._prefixed(campaign_id, _DOOR)).items()}

    async def record_door(self, campaign_id: str, result: DoorResult) -> int:
        """Keep and audit a door-to-door result; the grid closes on it (`door.lua`): 1 it
        closed now, 2 it kept its state (confirmed by its officer, dropped, lifted), 0 the
        campaign has no such grid (nothing is written)."""
        ck = keys.campaign(campaign_id)
        names = {"meta": ck.meta, "grids": ck.grids, "audit": ck.audit,
                 "console": keys.console_campaign(campaign_id)}
        return int(await self._door(
            names, grid=result.grid, field=_RESULT + result.grid,
            result=msgspec.json.encode(result), now=result.at, outcome=result.outcome.value,
            note=result.note, by=result.by, via=result.via.value))

    async def door_results(self, campaign_id: str) -> dict[str, DoorResult]:
        """The latest door-to-door result of each grid that has one, by grid id."""
        return {g: _result.decode(v)
                for g, v in (await self._prefixed(campaign_id, _RESULT)).items()}

    async def stop_calls(self, campaign_id: str, order: StopOrder) -> int:
        """Stop the campaign's calling (`stop.lua`): its open grids close as stopped and
        nobody of it is called any more. How many grids closed; -1 stopped before, -2 the
        campaign is not active."""
        ck = keys.campaign(campaign_id)
        names = {"meta": ck.meta, "grids": ck.grids, "holds": ck.holds, "stopped": ck.stopped,
                 "audit": ck.audit, "console": keys.console_campaign(campaign_id)}
        return int(await self._stop(names, now=order.at, field=STOP_FIELD,
                                    order=msgspec.json.encode(order), by=order.by,
                                    reason=order.reason, everyone=keys.STOPPED_ALL))

    async def calls_stopped(self, campaign_id: str) -> StopOrder | None:
        """Who stopped the campaign's calling, when and why (None: nobody)."""
        raw = await self._redis.hget(keys.console_campaign(campaign_id), STOP_FIELD)
        return _stop.decode(raw) if raw else None

    async def _prefixed(self, campaign_id: str, prefix: str) -> dict[str, bytes]:
        raw = await self._redis.hgetall(keys.console_campaign(campaign_id))
        return {text_of(k)[len(prefix):]: v for k, v in raw.items()
                if text_of(k).startswith(prefix)}
