"""Sites: hazard points, reservoirs and ponds, danger zones, shelters, with their people.

A site is a target like a grid: matched by where it lies, its people (`SitePerson`) called
with the roles a hazard's rule names (`rules/sites.toml`), its 叫应 tracked and escalated like
a grid's (its chain: `roles.SITE_CHAIN_ORDER`). Pure data, no I/O; `warnbus.domain.models`
re-exports every name here. Coordinates are (lat, lon), as everywhere in warnbus.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

import msgspec


class SiteKind(StrEnum):
    HAZARD_POINT = "hazard_point"  # 地质灾害隐患点
    RESERVOIR = "reservoir"  # 水库
    POND = "pond"  # 山塘
    DANGER_ZONE = "danger_zone"  # 山洪危险区
    SHELTER = "shelter"  # 避灾场所


class SiteRole(StrEnum):
    """What a person answers for at one site."""

    MONITOR = "monitor"  # 群测群防员 (监测员)
    RESPONSIBLE = "responsible"  # 监测责任人 / 防灾责任人
    PATROLLER = "patroller"  # 巡查员
    FLOOD_WARDEN = "flood_warden"  # 山洪预警员
    SHELTER_MANAGER = "shelter_manager"  # 避灾场所管理员
    EVACUATION_LEAD = "evacuation_lead"  # 危险区转移责任人


SITE_KIND_ZH: Mapping[SiteKind, str] = {
    SiteKind.HAZARD_POINT: "地质灾害隐患点",
    SiteKind.RESERVOIR: "水库",
    SiteKind.POND: "山塘",
    SiteKind.DANGER_ZONE: "危险区",
    SiteKind.SHELTER: "避灾场所",
}

SITE_ROLE_ZH: Mapping[SiteRole, str] = {
    SiteRole.MONITOR: "群测群防员",
    SiteRole.RESPONSIBLE: "监测责任人",
    SiteRole.PATROLLER: "巡查员",
    SiteRole.FLOOD_WARDEN: "山洪预警员",
    SiteRole.SHELTER_MANAGER: "避灾场所管理员",
    SiteRole.EVACUATION_LEAD: "危险区转移责任人",
}


#: The roles a person may have at a site of each kind.
SITE_ROLES: Mapping[SiteKind, frozenset[SiteRole]] = {
    SiteKind.HAZARD_POINT: frozenset({SiteRole.MONITOR, SiteRole.RESPONSIBLE}),
    SiteKind.RESERVOIR: frozenset({SiteRole.PATROLLER, SiteRole.RESPONSIBLE}),
    SiteKind.POND: frozenset({SiteRole.PATROLLER, SiteRole.RESPONSIBLE}),
    SiteKind.DANGER_ZONE: frozenset({SiteRole.EVACUATION_LEAD, SiteRole.FLOOD_WARDEN,
                                     SiteRole.RESPONSIBLE}),
    SiteKind.SHELTER: frozenset({SiteRole.SHELTER_MANAGER, SiteRole.RESPONSIBLE}),
}


# Strict (unknown keys are errors) also where nested in a site read from a registry file.
class SitePerson(msgspec.Struct, frozen=True, gc=False, forbid_unknown_fields=True):
    """A registry person (`Person.id`) and what they answer for at a site."""

    person: str
    role: SiteRole


class Site(msgspec.Struct, frozen=True, gc=False):
    """A site: where it is (a point, a polygon or both), where it lies, who answers for it.

    `village` is the 12-digit code of the village it lies in; `grid`, when known, the grid
    (whose officer is next in its chain). Danger zones count households and residents (户数,
    人数); shelters their capacity (容纳人数). `code` is the office's own number for it (e.g.
    a hazard point's 统一编号), shown and exported, never used as an id.
    """

    id: str
    name: str
    kind: SiteKind
    village: str
    grid: str | None = None
    point: tuple[float, float] | None = None  # (lat, lon)
    polygon: tuple[tuple[float, float], ...] = ()  # closed ring of (lat, lon)
    people: tuple[SitePerson, ...] = ()
    households: int | None = None
    residents: int | None = None
    capacity: int | None = None
    code: str | None = None

    def people_with(self, roles: frozenset[SiteRole] | None = None) -> tuple[str, ...]:
        """Person ids of the site with one of `roles` (all when None), in the site's order."""
        return tuple(dict.fromkeys(p.person for p in self.people
                                   if roles is None or p.role in roles))
