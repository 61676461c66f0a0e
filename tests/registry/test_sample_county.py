"""The bundled sample county (DESIGN section 9): size, codes, officers, geometry."""

from __future__ import annotations

import re
import time
from datetime import date, timedelta
from pathlib import Path

import shapely

from warnbus.domain.duty import DutySource
from warnbus.domain.models import CHAIN_ORDER, Role, SiteKind
from warnbus.registry import FILE_NAMES, Registry, default_registry_path, validate_registry
from warnbus.tools.registry_gen import TOWNSHIPS, write_sample_county

COUNTY = "430623000000"
# The project's CAP samples name these townships by code.
CAP_TOWNSHIPS = {"430623103000": "三封寺镇", "430623104000": "治河渡镇",
                 "430623105000": "北景港镇", "430623106000": "东山镇", "430623107000": "插旗镇"}


def test_bundled_files_are_what_the_generator_writes(tmp_path: Path) -> None:
    write_sample_county(tmp_path)
    for name in FILE_NAMES:
        assert (tmp_path / name).read_bytes() == (default_registry_path() / name).read_bytes(), (
            f"config/county/{name} is stale: regenerate with write_sample_county")


def test_size_and_validity(sample: Registry) -> None:
    stats = sample.stats()
    assert (stats["counties"], stats["townships"], stats["grids"]) == (1, 13, 777)
    assert validate_registry(sample.data) == []
    assert sample.county_code == COUNTY
    assert sample.data.regions[COUNTY].name == "华容县"


def test_township_codes(sample: Registry) -> None:
    townships = sample.children_of(COUNTY)
    assert townships == tuple(f"430623{n}000" for n in range(101, 114))
    names = {code: sample.data.regions[code].name for code in townships}
    assert {k: names[k] for k in CAP_TOWNSHIPS} == CAP_TOWNSHIPS
    assert names["430623101000"] == "章华镇"
    assert len(set(names.values())) == 13


def test_village_codes(sample: Registry) -> None:
    for township in sample.children_of(COUNTY):
        villages = sample.children_of(township)
        assert villages, township
        for code in villages:
            name = sample.data.regions[code].name
            assert code[:9] == township[:9]
            # 统计用区划代码: 0xx/1xx are 居委会 (社区), 2xx are 村委会 (村).
            assert (code[9] == "2") == name.endswith("村"), (code, name)
            assert sample.grids_of_village(code), code
            assert 1 <= len(sample.devices_of_village(code)) <= 2


def test_every_grid_has_its_officers(sample: Registry) -> None:
    mobile = re.compile(r"\+861[3-9]\d{9}")
    for gid, grid in sample.data.grids.items():
        chain = sample.chain(gid, at=time.time())
        assert None not in chain, gid
        assert len(set(chain)) == len(CHAIN_ORDER)
        for pid, role in zip(chain, CHAIN_ORDER, strict=True):
            person = sample.data.persons[pid or ""]
            assert person.role is role
            assert person.phone and mobile.fullmatch(person.phone)
        assert grid.name.startswith(sample.data.regions[grid.village].name)
    phones = [p.phone for p in sample.data.persons.values()]
    assert len(set(phones)) == len(phones)
    assert sum(p.wecom is not None for p in sample.data.persons.values()) > 0.85 * len(phones)


def test_some_officers_cover_two_grids(sample: Registry) -> None:
    primaries = [g.primary for g in sample.data.grids.values()]
    assert len(set(primaries)) < len(primaries)


def test_geometry_tiles_the_box(sample: Registry) -> None:
    polys = [shapely.Polygon([(lon, lat) for lat, lon in g.polygon])
             for g in sample.data.grids.values()]
    for g in sample.data.grids.values():
        assert all(29.30 <= lat <= 29.80 and 112.30 <= lon <= 112.90 for lat, lon in g.polygon)
    total = sum(p.area for p in polys)
    union = shapely.union_all(polys).area
    assert abs(total - 0.30) < 1e-6 and abs(union - 0.30) < 1e-6  # covered, no overlaps


def test_grids_lie_in_their_township(sample: Registry) -> None:
    for suffix, _name, n_grids, la0, la1, lo0, lo1 in TOWNSHIPS:
        box = shapely.box(112.30 + lo0, 29.30 + la0, 112.30 + lo1, 29.30 + la1).buffer(1e-9)
        grids = [g for g in sample.data.grids.values() if g.village[6:9] == f"{suffix:03d}"]
        assert len(grids) == n_grids
        for g in grids:
            assert box.contains(shapely.Polygon([(lon, lat) for lat, lon in g.polygon])), g.id


def test_hazard_points_in_the_hills(sample: Registry) -> None:
    tagged = {g.village[:9] for g in sample.data.grids.values() if "hazard_point" in g.tags}
    assert tagged == {"430623106", "430623107"}  # 东山镇, 插旗镇


def test_drill_participants(sample: Registry) -> None:
    drill = [p for p in sample.data.persons.values() if p.drill]
    assert 5 <= len(drill) <= 40
    roles = {p.role for p in drill}
    assert {Role.PRIMARY, Role.BACKUP, Role.COUNTY_DUTY} <= roles
    # Each drill grid's chain takes part, so a drill can escalate.
    for g in sample.data.grids.values():
        if sample.data.persons[g.primary].drill and g.backup:
            assert sample.data.persons[g.backup].drill


def test_rosters_for_a_month_and_for_whenever_the_demo_runs(sample: Registry) -> None:
    desks = [(COUNTY, Role.COUNTY_DUTY), (COUNTY, Role.COUNTY_LEADER)] + [
        (t, role) for t in sample.children_of(COUNTY)
        for role in (Role.TOWNSHIP_DUTY, Role.TOWNSHIP_LEADER)]
    book = sample.duty
    # July 2026 (the CAP samples' month) as dated shifts, approved: a month of them.
    july = sample.data.rosters["430623-2026-07"]
    assert book.approved(july.id)
    first = date(2026, 7, 1)
    for region, role in desks:
        holders = [book.shift(region, role, first + timedelta(days=n)) for n in range(31)]
        assert all(h.source is DutySource.ROSTER and h.roster == july.id for h in holders)
        assert len({h.person for h in holders}) > 1  # people take turns
    # Whenever the demo runs (today, and the next years): someone is on duty by a roster.
    for at in (time.time(), time.time() + 400 * 86400):
        for region, role in desks:
            on = book.holder(region, role, at)
            assert on.person and on.source is DutySource.ROSTER, (region, role)
    # The next flood season waits for an approver.
    assert not book.approved("430623-2027-flood")


def test_sites_of_every_kind(sample: Registry) -> None:
    sites = sample.data.sites.values()
    by_kind = {kind: [s for s in sites if s.kind is kind] for kind in SiteKind}
    assert len(by_kind[SiteKind.RESERVOIR]) == 2
    assert by_kind[SiteKind.POND] and by_kind[SiteKind.DANGER_ZONE]
    # A hazard point in every grid tagged as holding one, and none elsewhere.
    tagged = {g.id for g in sample.data.grids.values() if "hazard_point" in g.tags}
    assert {s.grid for s in by_kind[SiteKind.HAZARD_POINT]} == tagged
    assert all(s.households and s.residents and s.residents >= s.households
               for s in by_kind[SiteKind.DANGER_ZONE])
    # A shelter in every township, with its capacity.
    towns = {s.village[:9] for s in by_kind[SiteKind.SHELTER] if s.capacity}
    assert towns == {t[:9] for t in sample.children_of(COUNTY)}
    for s in sites:
        lat, lon = s.point or s.polygon[0]
        assert 29.30 <= lat <= 29.80 and 112.30 <= lon <= 112.90, s.id
        assert s.people
