"""Targets of the first wave: one per responsible person (with all their grids and sites), one
per device."""

from __future__ import annotations

from collections.abc import Iterable

from warnbus.domain.models import (
    CHAIN_ORDER,
    RegistryData,
    Role,
    SiteRole,
    Target,
    TargetKind,
)

#: A matched site and the roles of its people the warning calls (`rules.sites.SiteRules`).
SiteCall = tuple[str, frozenset[SiteRole]]


def build_targets(data: RegistryData, grid_ids: Iterable[str], device_ids: Iterable[str], *,
                  drill: bool, sites: Iterable[SiteCall] = ()) -> list[Target]:
    """Targets for matched grids, sites and devices: persons (sorted by id), then devices.

    A person who is the primary officer of several matched grids, or one of the called people
    of several matched sites, is one Target carrying all of those grids, then sites (role
    PRIMARY if they hold a grid, else SITE). For a drill (CAP Exercise/Test) only persons
    with `drill=True` are targets, and no devices: loudspeakers would broadcast the exercise
    to the public. Ids unknown to the registry are skipped (the matcher only yields known ones).
    """
    grids_of = _primaries(data, sorted(set(grid_ids)), drill)
    sites_of = _site_people(data, sites, drill)
    targets = [
        Target(id=pid, kind=TargetKind.PERSON, region=data.persons[pid].region,
               role=Role.PRIMARY if pid in grids_of else Role.SITE,
               grids=(*grids_of.get(pid, ()), *sites_of.get(pid, ())))
        for pid in sorted(grids_of.keys() | sites_of.keys())
    ]
    if drill:
        return targets
    for did in sorted(set(device_ids)):
        device = data.devices.get(did)
        if device is not None:
            grids = (device.grid,) if device.grid else ()
            targets.append(Target(id=did, kind=TargetKind.DEVICE, region=device.region,
                                  grids=grids))
    return targets


def count_targets(data: RegistryData, grid_ids: Iterable[str], device_ids: Iterable[str], *,
                  drill: bool, sites: Iterable[SiteCall] = ()) -> int:
    """`len(build_targets(...))` without building them: the 202 of a province-wide alert
    counts its targets, the planner builds them later."""
    n = len(_primaries(data, set(grid_ids), drill).keys() | _site_people(data, sites, drill).keys())
    if not drill:
        n += sum(1 for did in set(device_ids) if did in data.devices)
    return n


def _primaries(data: RegistryData, grid_ids: Iterable[str], drill: bool) -> dict[str, list[str]]:
    """Person id -> the grids (in the order given) of which the person is the primary."""
    grids_of: dict[str, list[str]] = {}
    for gid in grid_ids:
        grid = data.grids.get(gid)
        person = data.persons.get(grid.primary) if grid else None
        if person is None or (drill and not person.drill):
            continue
        grids_of.setdefault(person.id, []).append(gid)
    return grids_of


def _site_people(data: RegistryData, calls: Iterable[SiteCall], drill: bool
                 ) -> dict[str, list[str]]:
    """Person id -> the sites (sorted) at which the person has a called role."""
    sites_of: dict[str, list[str]] = {}
    for sid, roles in sorted(calls, key=lambda c: c[0]):
        site = data.sites.get(sid)
        if site is None:
            continue
        for pid in site.people_with(roles):
            person = data.persons.get(pid)
            if person is None or (drill and not person.drill):
                continue
            held = sites_of.setdefault(pid, [])
            if sid not in held:
                held.append(sid)
    return sites_of


def chain_for(data: RegistryData, grid_id: str) -> tuple[str | None, ...]:
    """Person ids of a grid's chain in CHAIN_ORDER, by scanning the registry's fixed persons
    (no rosters).

    For one-off use (tests, tools); the engine uses the indexed `Registry.chain`.
    """
    grid = data.grids[grid_id]
    village = data.regions.get(grid.village)
    township = village.parent if village else None
    county = data.regions[township].parent if township in data.regions else None
    region_of = {Role.VILLAGE_HEAD: grid.village, Role.TOWNSHIP_DUTY: township,
                 Role.COUNTY_DUTY: county, Role.TOWNSHIP_LEADER: township,
                 Role.COUNTY_LEADER: county}
    duty: dict[Role, str] = {}
    for pid in sorted(data.persons):
        person = data.persons[pid]
        if person.role in region_of and person.region == region_of[person.role]:
            duty.setdefault(person.role, pid)
    at = {Role.PRIMARY: grid.primary, Role.BACKUP: grid.backup, **duty}
    return tuple(at.get(role) for role in CHAIN_ORDER)
