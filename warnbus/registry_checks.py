"""The checks of a registry's regions, grids, people and devices, one line per problem.

`site_checks` and `roster_checks` check sites and duty rosters (in Chinese: offices read those
at import); `warnbus.registry.validate_registry` runs them all.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from itertools import chain

import numpy as np
import shapely

from warnbus.domain.models import Grid, Region, RegionLevel, RegistryData, Role, mask_phone
from warnbus.domain.roles import ROLE_LEVELS

_CODE12 = re.compile(r"\d{12}")
_E164 = re.compile(r"\+[1-9]\d{6,14}")
_CN_MOBILE = re.compile(r"\+861[3-9]\d{9}")
#: What an id must not hold (see `_id_problems`).
ID_BAD = re.compile(r"[|,:\s]")


def phone_problem(phone: str) -> str | None:
    """Say what is wrong with a phone number, or None if it is a valid E.164 number."""
    if not _E164.fullmatch(phone):
        return f"phone {mask_phone(phone)!r} is not E.164 (+, country code, number; no spaces)"
    if phone.startswith("+861") and not _CN_MOBILE.fullmatch(phone):
        return f"phone {mask_phone(phone)!r} is not a Chinese mobile number (+861[3-9] + 9 digits)"
    return None


def region_problems(regions: Mapping[str, Region]) -> Iterable[str]:
    for key, r in regions.items():
        where = f"region {key}"
        if key != r.code:
            yield f"{where}: indexed under a different code than its own ({r.code})"
        if not _CODE12.fullmatch(r.code):
            yield f"{where}: code must be 12 digits (统计用区划代码)"
            continue
        if r.level is RegionLevel.COUNTY:
            if r.code[6:] != "000000" or r.code[4:6] == "00":
                yield f"{where}: a county code is 6 digits + 000000, e.g. 430623000000"
            continue
        want = RegionLevel.COUNTY if r.level is RegionLevel.TOWNSHIP else RegionLevel.TOWNSHIP
        parent = regions.get(r.parent) if r.parent else None
        if parent is None:
            yield f"{where}: parent {r.parent!r} does not exist"
            continue
        if parent.level is not want:
            yield f"{where}: parent {parent.code} is a {parent.level}, expected a {want}"
        if r.level is RegionLevel.TOWNSHIP:
            if r.code[:6] != parent.code[:6] or r.code[6:9] == "000" or r.code[9:] != "000":
                yield (f"{where}: a township code is its county's 6 digits + 3 digits + 000 "
                       f"(e.g. 430623101000 under 430623000000), parent is {parent.code}")
        elif r.code[:9] != parent.code[:9] or r.code[9:] == "000":
            yield (f"{where}: a village code is its township's 9 digits + 3 digits "
                   f"(e.g. 430623101201 under 430623101000), parent is {parent.code}")


def grid_problems(data: RegistryData) -> Iterable[str]:
    regions, persons = data.regions, data.persons
    for key, g in data.grids.items():
        if key != g.id:
            yield f"grid {key}: indexed under a different id than its own ({g.id})"
        village = regions.get(g.village)
        if village is None or village.level is not RegionLevel.VILLAGE:
            yield f"grid {key}: village {g.village!r} is not a village of the registry"
        for role, pid in ((Role.PRIMARY, g.primary), (Role.BACKUP, g.backup)):
            if pid is None:
                continue
            person = persons.get(pid)
            if person is not None and person.role is role:
                continue
            if not pid:
                yield f"grid {key}: has no {role} officer"
            elif person is None:
                yield f"grid {key}: {role} {pid} does not exist"
            else:
                yield f"grid {key}: {role} {pid} has role {person.role}, expected {role}"
        if g.backup is not None and g.backup == g.primary:
            yield f"grid {key}: backup is the primary officer ({g.primary})"
    yield from _polygon_problems(data.grids)


#: A polygon (a closed ring of (lat, lon)) of a record, by the record's id.
Rings = Mapping[str, tuple[tuple[float, float], ...]]


def ring_faults(rings: Rings) -> Iterator[tuple[str, str, str]]:
    """(id, fault, detail) of every bad ring: fault "open" (not a closed ring of at least
    4 points), "range" (a point beyond lat ±90 / lon ±180) or "invalid" (detail: why)."""
    keys: list[str] = []
    for key, ring in rings.items():
        if len(ring) < 4 or ring[0] != ring[-1]:
            yield key, "open", ""
        else:
            keys.append(key)
    if not keys:
        return
    # Vectorised: building and checking 78k polygons one by one would take seconds.
    rs = [rings[k] for k in keys]
    counts = np.fromiter(map(len, rs), dtype=np.intp, count=len(rs))
    flat = chain.from_iterable(chain.from_iterable(rs))
    latlon = np.fromiter(flat, dtype=float, count=2 * int(counts.sum())).reshape(-1, 2)
    owner = np.repeat(np.arange(len(keys)), counts)
    out_of_range = np.zeros(len(keys), dtype=bool)
    out_of_range[owner[(np.abs(latlon[:, 0]) > 90) | (np.abs(latlon[:, 1]) > 180)]] = True
    polys = shapely.polygons(shapely.linearrings(latlon[:, ::-1], indices=owner))
    bad = ~shapely.is_valid(polys) | (shapely.area(polys) <= 0)
    for i in np.flatnonzero(out_of_range | bad):
        if out_of_range[i]:
            yield keys[i], "range", ""
            continue
        reason = shapely.is_valid_reason(polys[i])
        yield keys[i], "invalid", reason if reason != "Valid Geometry" else "zero area"


def _polygon_problems(grids: Mapping[str, Grid]) -> Iterable[str]:
    for key, fault, detail in ring_faults({k: g.polygon for k, g in grids.items()}):
        if fault == "open":
            yield f"grid {key}: polygon must be a closed ring of at least 4 [lat, lon] points"
        elif fault == "range":
            yield f"grid {key}: polygon has a point outside lat -90..90 / lon -180..180"
        else:
            yield f"grid {key}: polygon is invalid ({detail})"


def person_problems(data: RegistryData) -> Iterable[str]:
    for key, p in data.persons.items():
        where = f"person {key}"
        if key != p.id:
            yield f"{where}: indexed under a different id than its own ({p.id})"
        if not p.phone and not p.wecom:
            yield f"{where}: has no contact point (phone or wecom)"
        if p.phone:
            problem = phone_problem(p.phone)
            if problem:
                yield f"{where}: {problem}"
        region = data.regions.get(p.region)
        levels = ROLE_LEVELS[p.role]
        if region is None:
            yield f"{where}: region {p.region!r} does not exist"
        elif region.level not in levels:
            yield (f"{where}: a {p.role} serves a {' or '.join(sorted(levels))}, {p.region} is "
                   f"a {region.level}")
        if key in data.devices:
            yield f"{where}: id is also a device id (target ids must be unique)"


def device_problems(data: RegistryData) -> Iterable[str]:
    for key, d in data.devices.items():
        where = f"device {key}"
        if key != d.id:
            yield f"{where}: indexed under a different id than its own ({d.id})"
        region = data.regions.get(d.region)
        if region is None:
            yield f"{where}: region {d.region!r} does not exist"
        if d.grid is not None:
            grid = data.grids.get(d.grid)
            if grid is None:
                yield f"{where}: grid {d.grid!r} does not exist"
            elif grid.village != d.region:
                yield f"{where}: grid {d.grid} lies in {grid.village}, not in {d.region}"


def id_problems(data: RegistryData) -> Iterable[str]:
    """Ids are fields of the campaign state's strings ("state|attempts|lease", a person's
    "grid:level,grid:level", an attempt's audit entry): a separator or a space in one would
    split it."""
    for kind, ids in (("grid", data.grids), ("person", data.persons), ("device", data.devices)):
        for key in ids:
            if not key or ID_BAD.search(key):
                yield f"{kind} {key!r}: an id must not be empty or hold '|', ',', ':' or spaces"
