"""Targets of the first wave: one per responsible person (with all their grids), one per device."""

from __future__ import annotations

from collections.abc import Iterable

from warnbus.domain.models import CHAIN_ORDER, RegistryData, Role, Target, TargetKind


def build_targets(data: RegistryData, grid_ids: Iterable[str], device_ids: Iterable[str], *,
                  drill: bool) -> list[Target]:
    """Targets for matched grids and devices: persons (sorted by id), then devices.

    A person who is the primary officer of several matched grids is one Target carrying all
    of those grids. For a drill (CAP Exercise/Test) only persons with `drill=True` are
    targets, and no devices: loudspeakers would broadcast the exercise to the public.
    Ids unknown to the registry are skipped (the matcher only yields known ones).
    """
    grids_of = _primaries(data, sorted(set(grid_ids)), drill)
    targets = [
        Target(id=pid, kind=TargetKind.PERSON, region=data.persons[pid].region,
               role=Role.PRIMARY, grids=tuple(gids))
        for pid, gids in sorted(grids_of.items())
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
                  drill: bool) -> int:
    """`len(build_targets(...))` without building them: the 202 of a province-wide alert
    counts its targets, the planner builds them later."""
    n = len(_primaries(data, set(grid_ids), drill))
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


def chain_for(data: RegistryData, grid_id: str) -> tuple[str | None, ...]:
    """Person ids of a grid's chain in CHAIN_ORDER, by scanning the registry.

    For one-off use (tests, tools); the engine uses the indexed `Registry.chain`.
    """
    grid = data.grids[grid_id]
    village = data.regions.get(grid.village)
    township = village.parent if village else None
    county = data.regions[township].parent if township in data.regions else None
    region_of = {Role.VILLAGE_HEAD: grid.village, Role.TOWNSHIP_DUTY: township,
                 Role.COUNTY_DUTY: county}
    duty: dict[Role, str] = {}
    for pid in sorted(data.persons):
        person = data.persons[pid]
        if person.role in region_of and person.region == region_of[person.role]:
            duty.setdefault(person.role, pid)
    at = {Role.PRIMARY: grid.primary, Role.BACKUP: grid.backup, **duty}
    return tuple(at.get(role) for role in CHAIN_ORDER)
