"""The engine side of `models.EventSink`: provider callbacks become statuses and acks."""

from __future__ import annotations

import structlog

from warnbus.acks import record_ack
from warnbus.context import Context
from warnbus.devices import DeviceStatusBook
from warnbus.fallback import plan_fallback_for
from warnbus.models import AckVia, ProviderStatus

log = structlog.get_logger("warnbus.events")

_DELIVERED = {ProviderStatus.DELIVERED, ProviderStatus.PLAYING, ProviderStatus.DONE}
_FAILED = {ProviderStatus.FAILED, ProviderStatus.UNDELIVERED}
_ADDRESS_FIELD = {"sms": "phone", "voice": "phone", "wecom": "wecom"}


class EngineSink:
    """Applies channel events to the campaign state (idempotent, like everything it calls)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._devices = DeviceStatusBook(ctx.redis)
        self._by_address: dict[tuple[str, str], list[str]] = {}
        for p in ctx.registry.data.persons.values():
            for field in ("phone", "wecom"):
                value = getattr(p, field)
                if value:
                    self._by_address.setdefault((field, value), []).append(p.id)

    async def delivery_status(
        self, campaign_id: str, delivery_id: str, target_id: str, status: ProviderStatus,
        detail: str = "",
    ) -> None:
        device = target_id.startswith("dev:")
        if status in _DELIVERED:
            state = "delivered"
        elif status in _FAILED:
            # One speaker failing does not fail the area's command: only that speaker is
            # recorded (and its officer is put on notice when the playout deadline passes).
            state = "device-failed" if device else "failed"
        else:
            return  # queued/sent/no-answer: nothing to change; deadlines drive redials
        res = await self.ctx.store.status(campaign_id, delivery_id, target_id, state, detail,
                                          self.ctx.clock.now())
        if res == 1 and state == "failed":
            # Accepted, then undeliverable (e.g. SMS 30003): the policy's next channel.
            await self.ctx.lanes.enqueue(await plan_fallback_for(self.ctx, campaign_id, delivery_id))
        log.info("provider status", campaign_id=campaign_id, delivery_id=delivery_id,
                 status=status.value, applied=res == 1)

    async def device_status(self, device_id: str, state: str | None, since: float,
                            seen: float, area: str | None) -> None:
        """A speaker's status or heartbeat, kept in Redis for every process (the console)."""
        await self._devices.device_status(device_id, state, since, seen, area)

    async def confirm(
        self, campaign_id: str, person_id: str, via: AckVia, delivery_id: str | None = None
    ) -> bool:
        res = await record_ack(self.ctx, campaign_id, person_id, via, delivery_id=delivery_id)
        return res.recorded

    async def confirm_from(self, channel: str, address: str, via: AckVia) -> list[str]:
        field = _ADDRESS_FIELD.get(channel, "phone")
        confirmed: list[str] = []
        persons = self._by_address.get((field, address), [])
        campaigns = await self.ctx.store.active_campaigns() if persons else []
        for pid in persons:
            for cid in campaigns:
                if (await record_ack(self.ctx, cid, pid, via, open_only=True)).recorded:
                    confirmed.append(cid)
        if not confirmed:
            log.info("reply without an open campaign", channel=channel, address=address)
        return sorted(confirmed)
