"""What the engine needs from `rules/`, as protocols.

The engine imports no rules module (DESIGN section 3): the composition root (`warnbus.runtime.app`)
hands it objects that fit these protocols, built from `rules/`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from warnbus.domain.models import (
    Alert,
    Area,
    Category,
    DeliveryKind,
    Info,
    Level,
    RegionLevel,
    RegistryData,
    Role,
    Target,
)


class MatchLike(Protocol):
    @property
    def grids(self) -> tuple[str, ...]: ...
    @property
    def devices(self) -> tuple[str, ...]: ...
    @property
    def villages(self) -> tuple[str, ...]: ...
    @property
    def sites(self) -> tuple[str, ...]:
        """Sites of the kinds the alert's hazards call (rules/sites.toml)."""
        ...
    @property
    def hazards(self) -> tuple[str, ...]:
        """Keys of the hazards recognised in the alert's infos."""
        ...
    @property
    def empty_areas(self) -> tuple[tuple[int, int], ...]:
        """(info, area) positions of the areas in which no grid lies, by geography alone."""
        ...


class LevelPolicyLike(Protocol):
    """One level of the 叫应 policy (rules.policy.LevelPolicy)."""

    @property
    def channels(self) -> Sequence[str]: ...
    @property
    def device_channels(self) -> Sequence[str]: ...
    @property
    def ack_deadline_s(self) -> float | None: ...
    @property
    def redials(self) -> int: ...
    @property
    def redial_window_s(self) -> float: ...
    @property
    def redial_channels(self) -> Sequence[str]: ...
    @property
    def chain(self) -> Sequence[Role]: ...
    @property
    def escalation_channels(self) -> Sequence[str]: ...
    @property
    def cancel_channels(self) -> Sequence[str]: ...
    @property
    def cancel_confirm(self) -> bool: ...
    @property
    def speaker_deadline_s(self) -> float | None: ...
    @property
    def step_s(self) -> float | None: ...
    def redial_times(self) -> tuple[float, ...]: ...
    @property
    def feedback_remind_s(self) -> float | None: ...
    @property
    def feedback_channels(self) -> Sequence[str]: ...
    def feedback_deadline_s(self, region_level: RegionLevel) -> float | None: ...


class Renderer(Protocol):
    """The text of a delivery: the template of the channel's name if there is one, else of
    its `medium` (`ChannelInfo.medium`; None: the name is the medium), else the default.

    `confirm`: whether the text asks for a confirmation (None: as its kind does);
    `max_length`: the characters the channel carries (`ChannelInfo.max_length`), within
    which the text keeps a part of each of the alert's description, instruction and area."""

    def render(
        self,
        kind: DeliveryKind,
        channel: str,
        alert: Alert,
        info: Info | None,
        level: Level,
        *,
        medium: str | None = None,
        area: str = "",
        ack_url: str | None = None,
        extra: Mapping[str, str] | None = None,
        confirm: bool | None = None,
        max_length: int | None = None,
    ) -> str: ...


class HazardLike(Protocol):
    """A hazard of the hazard table (rules.hazards.Hazard)."""

    @property
    def name(self) -> str: ...
    @property
    def category(self) -> Category: ...


class Rules(Protocol):
    """Who gets what, how and when."""

    @property
    def renderer(self) -> Renderer: ...

    def match(self, alert: Alert) -> MatchLike: ...
    def hazard_of(self, info: Info) -> HazardLike | None:
        """The hazard an info's event or event code names (what will be sent), if known."""
        ...
    def region_codes(self, area: Area) -> Sequence[str]:
        """The region-code prefixes an area's geocodes name, as matching reads them."""
        ...
    def level_of(self, alert: Alert) -> Level: ...
    def policy_for(self, level: Level) -> LevelPolicyLike: ...
    def site_policy_for(self, level: Level) -> LevelPolicyLike:
        """The sites' own policy row of a level (rules/sites.toml)."""
        ...
    def fallback_for(self, channel: str, tried: Sequence[str] = ()) -> str | None:
        """The next channel of the policy's fallback chain after `channel`, skipping
        `tried`; None when the chain ends."""
        ...
    def targets(
        self, data: RegistryData, grids: Sequence[str], devices: Sequence[str], *, drill: bool,
        sites: Sequence[str] = (), hazards: Sequence[str] = (),
    ) -> list[Target]:
        """Persons of the grids and of the sites (their people with the roles `hazards`
        call), then devices."""
        ...
    def count_targets(
        self, data: RegistryData, grids: Sequence[str], devices: Sequence[str], *, drill: bool,
        sites: Sequence[str] = (), hazards: Sequence[str] = (),
    ) -> int: ...
    def for_registry(self, data: RegistryData) -> Rules:
        """The same rules indexed on another registry (a change applied while running)."""
        ...
