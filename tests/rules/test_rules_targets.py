"""Targets of the first wave: one per person with all their grids, one per device; drills."""

from __future__ import annotations

import msgspec
import pytest

from rules.targets import build_targets, chain_for, count_targets
from warnbus.domain.models import RegistryData, Role, TargetKind
from warnbus.registry import Registry


def _shared_primary(data: RegistryData) -> tuple[str, list[str]]:
    by_primary: dict[str, list[str]] = {}
    for g in sorted(data.grids):
        by_primary.setdefault(data.grids[g].primary, []).append(g)
    return next((p, gs) for p, gs in sorted(by_primary.items()) if len(gs) > 1)


def test_one_target_per_person(sample_data: RegistryData) -> None:
    pid, grids = _shared_primary(sample_data)
    other = next(g for g in sorted(sample_data.grids) if g not in grids)
    targets = build_targets(sample_data, [*grids, other, grids[0]], [], drill=False)
    assert [t.id for t in targets] == sorted({pid, sample_data.grids[other].primary})
    mine = next(t for t in targets if t.id == pid)
    assert mine.kind is TargetKind.PERSON and mine.role is Role.PRIMARY
    assert mine.grids == tuple(sorted(grids))
    assert mine.region == sample_data.persons[pid].region


def test_devices_follow_persons(sample_data: RegistryData) -> None:
    grid = sorted(sample_data.grids)[0]
    devices = sorted(d for d in sample_data.devices if d.endswith("-1"))[:3]
    targets = build_targets(sample_data, [grid], list(reversed(devices)), drill=False)
    assert [t.kind for t in targets] == [TargetKind.PERSON] + [TargetKind.DEVICE] * 3
    assert [t.id for t in targets[1:]] == devices
    first = sample_data.devices[devices[0]]
    assert targets[1].region == first.region and targets[1].grids == (first.grid,)
    assert targets[1].role is None


def test_drill_goes_only_to_participants(sample_data: RegistryData) -> None:
    grids = sorted(sample_data.grids)
    targets = build_targets(sample_data, grids, sorted(sample_data.devices), drill=True)
    assert targets
    assert all(t.kind is TargetKind.PERSON and sample_data.persons[t.id].drill for t in targets)
    participants = {g.primary for g in sample_data.grids.values()
                    if sample_data.persons[g.primary].drill}
    assert {t.id for t in targets} == participants


def test_unknown_ids_are_skipped(sample_data: RegistryData) -> None:
    assert build_targets(sample_data, ["nope"], ["nada"], drill=False) == []


def test_no_targets_without_grids(sample_data: RegistryData) -> None:
    assert build_targets(sample_data, [], [], drill=False) == []


@pytest.mark.parametrize("drill", [False, True])
@pytest.mark.parametrize("part", ["all", "township", "shared", "repeats and unknown ids"])
def test_counting_targets_is_building_them(sample_data: RegistryData, drill: bool,
                                           part: str) -> None:
    grids, devices = sorted(sample_data.grids), sorted(sample_data.devices)
    if part == "township":
        grids = [g for g in grids if sample_data.grids[g].village.startswith("430623101")]
        devices = [d for d in devices if sample_data.devices[d].region.startswith("430623101")]
    elif part == "shared":
        grids = _shared_primary(sample_data)[1]
        devices = devices[:1]
    elif part == "repeats and unknown ids":
        grids = [*grids[:5], grids[0], "nope"]
        devices = [devices[0], devices[0], "nada"]
    want = len(build_targets(sample_data, grids, devices, drill=drill))
    assert want > 0 or drill  # a drill may have no participant there
    assert count_targets(sample_data, grids, devices, drill=drill) == want


@pytest.mark.parametrize("index", [0, 100, 776])
def test_chain_for_agrees_with_registry(sample_data: RegistryData, index: int) -> None:
    # chain_for knows the fixed duty persons only: the registry without its rosters.
    data = msgspec.structs.replace(sample_data, rosters={})
    grid = sorted(data.grids)[index]
    assert chain_for(data, grid) == Registry(data).chain(grid, at=0)


def test_chain_for_vacant_backup(sample_data: RegistryData) -> None:
    grid = sorted(sample_data.grids)[0]
    grids = dict(sample_data.grids)
    grids[grid] = msgspec.structs.replace(grids[grid], backup=None)
    data = RegistryData(sample_data.regions, grids, sample_data.persons, sample_data.devices)
    assert chain_for(data, grid)[1] is None and chain_for(data, grid)[0] is not None
