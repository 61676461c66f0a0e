"""Duty rosters and sites of a synthetic county (the sample county's are bundled).

For each county `registry_gen` builds: duty pools (township and county duty officers taking
turns, leaders on watch 带班领导), roster versions (one a year from 2024 to 2030, approved, so
that whenever a demo runs someone is on duty; the July 2026 flood season as dated shifts, a
month of them; the 2027 flood season as a draft awaiting approval) and sites in the hills and
by the river: a hazard point (地质灾害隐患点) in each grid tagged `hazard_point`, two reservoirs,
ponds (山塘), danger zones (危险区) with households and residents, a shelter (避灾场所) per
township, each with its people. Added after the county's grids and officers, from a random
generator of its own, so those stay as they were. Names are synthetic; region codes real.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

from warnbus.domain.duty import Roster, RosterEntry, Shift
from warnbus.domain.models import (
    Grid,
    Person,
    Region,
    RegionLevel,
    Role,
    Site,
    SiteKind,
    SitePerson,
    SiteRole,
)

#: (code6, role, region) -> a new person's id
NewPerson = Callable[[str, Role, str], str]
Rect = tuple[float, float, float, float]  # lat0, lat1, lon0, lon1

YEARS = range(2024, 2031)  # yearly versions: whenever the demo runs, someone is on duty
FLOOD_MONTH = (date(2026, 7, 1), date(2026, 7, 31))  # dated shifts (the CAP samples' July)
DRAFT = (date(2027, 5, 1), date(2027, 9, 30))  # the next flood season, not yet approved
POOLS = {Role.TOWNSHIP_DUTY: 3, Role.TOWNSHIP_LEADER: 2, Role.COUNTY_DUTY: 4,
         Role.COUNTY_LEADER: 3}
_SLOPES = ("后山", "北坡", "老屋场", "大冲", "石门", "响水", "枫树", "茶园")
_KINDS = ("滑坡", "崩塌", "泥石流")
_ZONES = ("河边组", "低洼区", "山脚组", "沟口组", "老堤组")
_SHELTERS = ("中心学校", "镇政府礼堂", "文化站", "敬老院", "卫生院")
_RESERVOIRS = ("黄家冲", "龙泉", "白石岭", "青山", "桃花溪")


@dataclass
class Sites:
    """What `add` made for one county."""

    persons: dict[str, Person] = field(default_factory=dict)
    sites: dict[str, Site] = field(default_factory=dict)
    rosters: dict[str, Roster] = field(default_factory=dict)


def _inside(rng: random.Random, rect: Rect, margin: float = 0.2) -> tuple[float, float]:
    """A point well inside a grid's rectangle (not on an edge)."""
    lat0, lat1, lon0, lon1 = rect
    return (round(rng.uniform(lat0 + margin * (lat1 - lat0), lat1 - margin * (lat1 - lat0)), 5),
            round(rng.uniform(lon0 + margin * (lon1 - lon0), lon1 - margin * (lon1 - lon0)), 5))


def _patch(rect: Rect, share: float = 0.4) -> tuple[tuple[float, float], ...]:
    """A small polygon (a pentagon) in the middle of a grid's rectangle."""
    lat0, lat1, lon0, lon1 = rect
    h, w = (lat1 - lat0) * share / 2, (lon1 - lon0) * share / 2
    cy, cx = (lat0 + lat1) / 2, (lon0 + lon1) / 2
    pts = [(cy - h, cx - w), (cy - h, cx + w), (cy + h / 3, cx + w), (cy + h, cx),
           (cy + h / 3, cx - w)]
    ring = [(round(a, 5), round(b, 5)) for a, b in pts]
    return (*ring, ring[0])


def _rect(grid: Grid) -> Rect:
    lats = [p[0] for p in grid.polygon]
    lons = [p[1] for p in grid.polygon]
    return (min(lats), max(lats), min(lons), max(lons))


def _centre(grid: Grid) -> tuple[float, float]:
    r = _rect(grid)
    return ((r[0] + r[1]) / 2, (r[2] + r[3]) / 2)


class _County:
    def __init__(self, code6: str, regions: dict[str, Region], grids: dict[str, Grid],
                 persons: dict[str, Person], new_person: NewPerson, seed: int) -> None:
        self.code6 = code6
        self.regions, self.grids, self.persons = regions, grids, persons
        self.new_person = new_person
        self.rng = random.Random(f"{seed}:{code6}:sites")
        self.out = Sites()
        self.county = code6 + "000000"
        self.towns = sorted(c for c, r in regions.items()
                            if r.level is RegionLevel.TOWNSHIP and c.startswith(code6))
        self.grids_of: dict[str, list[Grid]] = {}
        for g in sorted(grids.values(), key=lambda g: g.id):
            if g.village.startswith(code6):
                self.grids_of.setdefault(g.village[:9], []).append(g)
        self.village_head = {p.region: p.id for p in sorted(persons.values(), key=lambda p: p.id)
                             if p.role is Role.VILLAGE_HEAD}

    def person(self, role: Role, region: str) -> str:
        pid = self.new_person(self.code6, role, region)
        self.out.persons[pid] = self.persons[pid]
        return pid

    def site(self, site: Site) -> None:
        self.out.sites[site.id] = site

    # ------------------------------------------------------------------ duty

    def pools(self) -> dict[tuple[str, Role], list[str]]:
        """Who takes turns in each duty role: the fixed person first, then new colleagues."""
        out: dict[tuple[str, Role], list[str]] = {}
        for region in (self.county, *self.towns):
            level = self.regions[region].level
            for role, n in POOLS.items():
                if (level is RegionLevel.COUNTY) != role.value.startswith("county"):
                    continue
                have = sorted(p.id for p in self.persons.values()
                              if p.role is role and p.region == region)
                out[(region, role)] = have + [self.person(role, region)
                                              for _ in range(n - len(have))]
        return out

    def rosters(self, pools: dict[tuple[str, Role], list[str]], office: str) -> None:
        def entries(shift: int) -> tuple[RosterEntry, ...]:
            return tuple(RosterEntry(region, role, rotation=tuple(p[shift % len(p):] +
                                                                  p[:shift % len(p)]))
                         for (region, role), p in sorted(pools.items()))

        for year in YEARS:
            self.out.rosters[f"{self.code6}-{year}"] = Roster(
                f"{self.code6}-{year}", f"{year}年值班表", f"{year}-01-01", f"{year}-12-31",
                entries(year), approved_by=office, approved_at=f"{year - 1}-12-20T10:00:00+08:00")
        first, last = FLOOD_MONTH
        month = [first + timedelta(days=n) for n in range((last - first).days + 1)]
        dated = tuple(
            RosterEntry(region, role, shifts=tuple(
                Shift(d.isoformat(), p[(len(p) - 1 - n) % len(p)]) for n, d in enumerate(month)))
            for (region, role), p in sorted(pools.items()))
        rid = f"{self.code6}-2026-07"
        self.out.rosters[rid] = Roster(rid, "2026年7月主汛期值班表", first.isoformat(),
                                       last.isoformat(), dated, approved_by=office,
                                       approved_at="2026-06-25T16:00:00+08:00")
        rid = f"{self.code6}-2027-flood"
        self.out.rosters[rid] = Roster(rid, "2027年汛期值班表", DRAFT[0].isoformat(),
                                       DRAFT[1].isoformat(), entries(2027 + 1))

    # ------------------------------------------------------------------ sites

    def hazard_points(self) -> None:
        for grids in self.grids_of.values():
            for g in grids:
                if "hazard_point" not in g.tags:
                    continue
                name = self.regions[g.village].name + self.rng.choice(_SLOPES) + self.rng.choice(
                    _KINDS) + "隐患点"
                people = [SitePerson(self.person(Role.SITE, g.village), SiteRole.MONITOR)]
                head = self.village_head.get(g.village)
                if head:
                    people.append(SitePerson(head, SiteRole.RESPONSIBLE))
                self.site(Site(f"hp-{g.id}", name, SiteKind.HAZARD_POINT, g.village, g.id,
                               point=_inside(self.rng, _rect(g)), people=tuple(people)))

    def water(self, hilly: Sequence[str], toward: tuple[float, float]) -> None:
        """Two reservoirs (the first near `toward`, the other as far from it as can be) and
        ponds in the hilly townships."""
        grids = [g for t in hilly for g in self.grids_of.get(t, [])]
        if not grids:
            return

        def dist(g: Grid) -> float:
            c = _centre(g)
            return (c[0] - toward[0]) ** 2 + (c[1] - toward[1]) ** 2

        ordered = sorted(grids, key=dist)
        for n, g in enumerate((ordered[0], ordered[-1])):
            name = _RESERVOIRS[n % len(_RESERVOIRS)] + "水库"
            people = [SitePerson(self.person(Role.SITE, g.village), SiteRole.PATROLLER)
                      for _ in range(2)]
            people.append(SitePerson(self.person(Role.SITE, g.village), SiteRole.RESPONSIBLE))
            self.site(Site(f"rs-{g.id}", name, SiteKind.RESERVOIR, g.village, g.id,
                           polygon=_patch(_rect(g)), people=tuple(people)))
        for g in self.rng.sample(ordered[1:-1], min(5, max(0, len(ordered) - 2))):
            name = self.regions[g.village].name[:2] + self.rng.choice("大新老上下") + "塘"
            patroller = SitePerson(self.person(Role.SITE, g.village), SiteRole.PATROLLER)
            self.site(Site(f"pd-{g.id}", name, SiteKind.POND, g.village, g.id,
                           point=_inside(self.rng, _rect(g)), people=(patroller,)))

    def danger_zones(self, towns: Sequence[str], per_town: int) -> None:
        for t in towns:
            grids = self.grids_of.get(t, [])
            for g in self.rng.sample(grids, min(per_town, len(grids))):
                households = self.rng.randint(8, 60)
                people = (SitePerson(self.person(Role.SITE, g.village), SiteRole.EVACUATION_LEAD),
                          SitePerson(self.person(Role.SITE, g.village), SiteRole.FLOOD_WARDEN))
                self.site(Site(f"dz-{g.id}", self.regions[g.village].name + self.rng.choice(
                    _ZONES) + "危险区", SiteKind.DANGER_ZONE, g.village, g.id,
                    polygon=_patch(_rect(g), 0.6), people=people, households=households,
                    residents=households * self.rng.randint(2, 4)))

    def shelters(self) -> None:
        for t in self.towns:
            grids = self.grids_of.get(t[:9], [])
            if not grids:
                continue
            g = grids[0]  # the township's first village, where its seat usually is
            people = (SitePerson(self.person(Role.SITE, g.village), SiteRole.SHELTER_MANAGER),)
            self.site(Site(f"sh-{g.id}", self.regions[t].name + self.rng.choice(_SHELTERS)
                           + "避灾安置点", SiteKind.SHELTER, g.village, g.id,
                           point=_inside(self.rng, _rect(g)), people=people,
                           capacity=self.rng.choice((200, 300, 500, 800))))


def add(code6: str, regions: dict[str, Region], grids: dict[str, Grid],
        persons: dict[str, Person], new_person: NewPerson, *, seed: int,
        hilly: Sequence[int], river: Sequence[int], toward: tuple[float, float]) -> Sites:
    """Add a county's duty pools, roster versions and sites (see the module)."""
    c = _County(code6, regions, grids, persons, new_person, seed)
    county = regions[c.county]
    c.rosters(c.pools(), f"{county.name}应急管理局")
    c.hazard_points()
    hills = [f"{code6}{n:03d}" for n in hilly]
    c.water(hills, toward)
    c.danger_zones(hills, 3)
    c.danger_zones([f"{code6}{n:03d}" for n in river], 2)
    c.shelters()
    return c.out
