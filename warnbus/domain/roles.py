"""Regions and roles: who a person is, and the order in which a 叫应 chain calls them.

Pure data, no I/O; `warnbus.domain.models` re-exports every name here. A chain's level is the
index of its role in the chain's order: the step integers of deliveries are
`10 × level + redial` (`warnbus.domain.steps`), so the order only ever grows at its end.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum


class RegionLevel(StrEnum):
    COUNTY = "county"
    TOWNSHIP = "township"
    VILLAGE = "village"


class Role(StrEnum):
    """Who a person is in the 叫应 chain of a grid or site."""

    PRIMARY = "primary"  # 网格员
    BACKUP = "backup"  # 备岗网格员
    VILLAGE_HEAD = "village_head"  # 村(社区)负责人
    TOWNSHIP_DUTY = "township_duty"  # 乡镇值班员
    COUNTY_DUTY = "county_duty"  # 县值班员
    TOWNSHIP_LEADER = "township_leader"  # 乡镇带班领导
    COUNTY_LEADER = "county_leader"  # 县带班领导
    #: Responsible for sites only (监测员, 巡查员 ...: the role at each site is the site's,
    #: `sites.SiteRole`). Anyone may be a site's person; this role is for those who are
    #: nothing else.
    SITE = "site"


#: A grid's chain: the index of a role is its chain level. Policies name the roles after the
#: primary in the order they are called (`rules/policy.toml`).
CHAIN_ORDER: tuple[Role, ...] = (
    Role.PRIMARY,
    Role.BACKUP,
    Role.VILLAGE_HEAD,
    Role.TOWNSHIP_DUTY,
    Role.COUNTY_DUTY,
    Role.TOWNSHIP_LEADER,
    Role.COUNTY_LEADER,
)

#: A site's chain: level 0 is the site's people the warning calls (`Role.SITE` stands for
#: them), then the duty roles at the levels they have in a grid's chain (one message and
#: one deadline per person and step, whatever they answer for), and the officer of the grid
#: the site lies in at a level of its own (`Role.PRIMARY` in a site policy's chain), so that
#: it neither meets that officer's own first wave nor counts as the site's confirmation.
SITE_CHAIN_ORDER: tuple[Role | None, ...] = (
    Role.SITE,
    None,
    Role.VILLAGE_HEAD,
    Role.TOWNSHIP_DUTY,
    Role.COUNTY_DUTY,
    Role.TOWNSHIP_LEADER,
    Role.COUNTY_LEADER,
    Role.PRIMARY,
)

#: Roles held in shifts (duty rosters, `warnbus.domain.duty`), by the level they serve.
DUTY_ROLES: Mapping[Role, RegionLevel] = {
    Role.TOWNSHIP_DUTY: RegionLevel.TOWNSHIP,
    Role.TOWNSHIP_LEADER: RegionLevel.TOWNSHIP,
    Role.COUNTY_DUTY: RegionLevel.COUNTY,
    Role.COUNTY_LEADER: RegionLevel.COUNTY,
}

#: The kind of region a person of each role serves (a site's person: its village or township).
ROLE_LEVELS: Mapping[Role, frozenset[RegionLevel]] = {
    Role.PRIMARY: frozenset({RegionLevel.VILLAGE}),
    Role.BACKUP: frozenset({RegionLevel.VILLAGE}),
    Role.VILLAGE_HEAD: frozenset({RegionLevel.VILLAGE}),
    **{role: frozenset({level}) for role, level in DUTY_ROLES.items()},
    Role.SITE: frozenset({RegionLevel.VILLAGE, RegionLevel.TOWNSHIP}),
}

ROLE_ZH: Mapping[Role, str] = {
    Role.PRIMARY: "网格员",
    Role.BACKUP: "备岗网格员",
    Role.VILLAGE_HEAD: "村负责人",
    Role.TOWNSHIP_DUTY: "乡镇值班员",
    Role.COUNTY_DUTY: "县值班员",
    Role.TOWNSHIP_LEADER: "乡镇带班领导",
    Role.COUNTY_LEADER: "县带班领导",
    Role.SITE: "场所责任人",
}

REGION_LEVEL_ZH: Mapping[RegionLevel, str] = {
    RegionLevel.COUNTY: "县",
    RegionLevel.TOWNSHIP: "乡镇",
    RegionLevel.VILLAGE: "村(社区)",
}
