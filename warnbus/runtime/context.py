"""The collaborators every engine role shares, built once by the composition root."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from warnbus.domain.duty import DutyBook
from warnbus.domain.models import Alert, Person
from warnbus.flow.ports import Rules
from warnbus.plugin import ChannelInfo
from warnbus.registry import Registry
from warnbus.runtime.clock import Clock
from warnbus.runtime.config import Settings
from warnbus.state.duty import DutyDesk
from warnbus.state.queue import Lanes, Timers
from warnbus.state.store import Store


def _no_link(_campaign_id: str, _person_id: str) -> str | None:
    return None


@dataclass
class Context:
    redis: Any
    registry: Registry
    rules: Rules
    clock: Clock
    settings: Settings
    store: Store
    lanes: Lanes
    timers: Timers
    ack_url: Callable[[str, str], str | None] = _no_link
    #: What each configured channel is, by the name the deployment gave it (`load_channels`).
    channels: Mapping[str, ChannelInfo] = field(default_factory=dict)
    #: The console's duty changes and roster approvals (None: the registry's rosters only).
    duty: DutyDesk | None = None
    _alerts: dict[str, Alert] = field(default_factory=dict)

    async def duty_book(self) -> DutyBook:
        """Who is on duty: the registry's rosters with the console's approvals and changes."""
        if self.duty is None:
            return self.registry.duty
        return await self.duty.book(self.registry.duty)

    def person(self, person_id: str) -> Person | None:
        return self.registry.data.persons.get(person_id)

    async def alert(self, campaign_id: str, alert_id: str) -> Alert | None:
        """An alert of a campaign. Alerts never change once accepted, so caching is safe."""
        hit = self._alerts.get(alert_id)
        if hit is not None:
            return hit
        alert = await self.store.alert(campaign_id, alert_id)
        if alert is not None:
            if len(self._alerts) > 1024:
                self._alerts.clear()
            self._alerts[alert_id] = alert
        return alert
