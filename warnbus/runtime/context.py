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
from warnbus.runtime.journal import Journal
from warnbus.state.duty import DutyDesk
from warnbus.state.queue import Lanes, Timers
from warnbus.state.store import Store


def _no_link(_campaign_id: str, _person_id: str) -> str | None:
    return None


#: The decoded alerts a process keeps: at most this many, and at most this much weight (an
#: area and a polygon point weigh one each; the largest accepted alert weighs ~150,000).
ALERTS_KEPT = 1024
ALERT_WEIGHT_KEPT = 2_000_000


def _weight(alert: Alert) -> int:
    return sum(1 + sum(map(len, a.polygons)) for info in alert.infos for a in info.areas)


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
    #: Where confirmations go while Redis is unavailable (`flow.durable`); None: nowhere.
    journal: Journal | None = None
    #: The registry version served (0: the configured files; N: applied, `live_registry`)
    #: and the sha of the configured files it was made on top of.
    registry_version: int = 0
    registry_base: str = ""
    _alerts: dict[str, Alert] = field(default_factory=dict)
    _alerts_weight: int = 0

    def use_registry(self, registry: Registry, rules: Rules, version: int) -> None:
        """Serve another registry (and the rules indexed on it) from now on, in one step."""
        self.registry, self.rules, self.registry_version = registry, rules, version

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
            self.keep_alert(alert)
        return alert

    def keep_alert(self, alert: Alert) -> None:
        """Keep an alert as accepted (decoded) for the roles of this process that read it.

        The API keeps what it accepts, so the planner of the same process does not decode
        it again: decoding the largest accepted alert from Redis held the event loop ~40 ms.
        """
        weight = _weight(alert)
        if len(self._alerts) >= ALERTS_KEPT or self._alerts_weight + weight > ALERT_WEIGHT_KEPT:
            self._alerts.clear()
            self._alerts_weight = 0
        if alert.alert_id not in self._alerts:
            self._alerts[alert.alert_id] = alert
            self._alerts_weight += weight

    def forget_alert(self, alert: Alert) -> None:
        """Drop `alert` if it is the one kept under its id (its store lost a race)."""
        if self._alerts.get(alert.alert_id) is alert:
            del self._alerts[alert.alert_id]
            self._alerts_weight -= _weight(alert)
