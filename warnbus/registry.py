"""The grid registry: regions, grids, people and devices; load, validate, dump, index.

On disk a registry is a directory of four JSON arrays (`regions.json`, `grids.json`,
`persons.json`, `devices.json`) of the `warnbus.domain.models` records; polygons are
`[[lat, lon], ...]`. Decoding is strict: an unknown key is an error naming the file and key.
"""

from __future__ import annotations

import gc
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from itertools import chain
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import numpy as np
import shapely

from warnbus.domain.models import (
    CHAIN_ORDER,
    Device,
    Grid,
    Person,
    Region,
    RegionLevel,
    RegistryData,
    Role,
    mask_phone,
)
from warnbus.errors import NotFoundError, RegistryError

# Strict twins of the model records: decoding rejects unknown keys, encoding omits defaults.
# Decoded records are converted back to the model types (msgspec equality is per type).


class _RegionIn(Region, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    pass


class _GridIn(Grid, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    pass


class _PersonIn(Person, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    pass


class _DeviceIn(Device, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    pass


_T = TypeVar("_T", bound=msgspec.Struct)

#: file name, strict type, model type, what an id is called in messages
_FILES: tuple[tuple[str, type[msgspec.Struct], type[msgspec.Struct], str], ...] = (
    ("regions.json", _RegionIn, Region, "code"),
    ("grids.json", _GridIn, Grid, "id"),
    ("persons.json", _PersonIn, Person, "id"),
    ("devices.json", _DeviceIn, Device, "id"),
)

_CODE12 = re.compile(r"\d{12}")
_E164 = re.compile(r"\+[1-9]\d{6,14}")
_CN_MOBILE = re.compile(r"\+861[3-9]\d{9}")
_ID_BAD = re.compile(r"[|,:\s]")

#: The kind of region each role serves.
ROLE_LEVEL: Mapping[Role, RegionLevel] = {
    Role.PRIMARY: RegionLevel.VILLAGE,
    Role.BACKUP: RegionLevel.VILLAGE,
    Role.VILLAGE_HEAD: RegionLevel.VILLAGE,
    Role.TOWNSHIP_DUTY: RegionLevel.TOWNSHIP,
    Role.COUNTY_DUTY: RegionLevel.COUNTY,
}


def default_registry_path() -> Path:
    """Return the bundled sample county: `config/county` in a checkout, else in the wheel."""
    here = Path(__file__).resolve().parent
    checkout = here.parent / "config" / "county"
    if checkout.is_dir():
        return checkout
    return here / "_config" / "county"


# --------------------------------------------------------------------------- load / dump


@contextmanager
def _gc_paused() -> Iterator[None]:
    # Creating ~250k small records triggers the cyclic GC over and over; records hold no
    # cycles, so pausing it while loading cuts a 100-county load several times over.
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _decode(path: Path, name: str, strict: type[_T], model: type[msgspec.Struct]) -> list[Any]:
    try:
        raw = (path / name).read_bytes()
    except FileNotFoundError:
        raise RegistryError([f"{name}: file missing in {path}"]) from None
    try:
        records = msgspec.json.decode(raw, type=list[strict])  # type: ignore[valid-type]
    except msgspec.DecodeError as e:  # ValidationError included: names the key and index
        raise RegistryError([f"{name}: {e}"]) from e
    return [model(*msgspec.structs.astuple(r)) for r in records]


def _index(records: list[Any], attr: str, name: str, problems: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for rec in records:
        key = getattr(rec, attr)
        if key in out:
            problems.append(f"{name}: duplicate {attr} {key}")
        else:
            out[key] = rec
    return out


def read_registry(path: str | Path) -> tuple[RegistryData, list[str]]:
    """Decode a registry directory; return the data and the duplicate-id problems."""
    root = Path(path)
    problems: list[str] = []
    with _gc_paused():
        tables = [
            _index(_decode(root, name, strict, model), attr, name, problems)
            for name, strict, model, attr in _FILES
        ]
    return RegistryData(*tables), problems


def load_registry(path: str | Path) -> Registry:
    """Load, validate and index a registry directory; raise RegistryError listing problems."""
    data, problems = read_registry(path)
    problems += validate_registry(data)
    if problems:
        raise RegistryError(problems)
    return Registry(data)


def dump_registry(data: RegistryData, path: str | Path) -> None:
    """Write `data` as a registry directory: one record per line, sorted, defaults omitted."""
    root = Path(path)
    root.mkdir(parents=True, exist_ok=True)
    tables: tuple[Mapping[str, Any], ...] = (data.regions, data.grids, data.persons, data.devices)
    enc = msgspec.json.Encoder()
    for (name, strict, _model, _attr), table in zip(_FILES, tables, strict=True):
        lines = [enc.encode(strict(*msgspec.structs.astuple(table[k]))) for k in sorted(table)]
        body = b",\n".join(lines)
        (root / name).write_bytes(b"[\n" + body + b"\n]\n" if lines else b"[]\n")


# --------------------------------------------------------------------------- validation


def phone_problem(phone: str) -> str | None:
    """Say what is wrong with a phone number, or None if it is a valid E.164 number."""
    if not _E164.fullmatch(phone):
        return f"phone {mask_phone(phone)!r} is not E.164 (+, country code, number; no spaces)"
    if phone.startswith("+861") and not _CN_MOBILE.fullmatch(phone):
        return f"phone {mask_phone(phone)!r} is not a Chinese mobile number (+861[3-9] + 9 digits)"
    return None


def _region_problems(regions: Mapping[str, Region]) -> Iterable[str]:
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


def _grid_problems(data: RegistryData) -> Iterable[str]:
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


def _polygon_problems(grids: Mapping[str, Grid]) -> Iterable[str]:
    keys: list[str] = []
    for key, g in grids.items():
        if len(g.polygon) < 4 or g.polygon[0] != g.polygon[-1]:
            yield f"grid {key}: polygon must be a closed ring of at least 4 [lat, lon] points"
        else:
            keys.append(key)
    if not keys:
        return
    # Vectorised: building and checking 78k polygons one by one would take seconds.
    rings = [grids[k].polygon for k in keys]
    counts = np.fromiter(map(len, rings), dtype=np.intp, count=len(rings))
    flat = chain.from_iterable(chain.from_iterable(rings))
    latlon = np.fromiter(flat, dtype=float, count=2 * int(counts.sum())).reshape(-1, 2)
    owner = np.repeat(np.arange(len(keys)), counts)
    out_of_range = np.zeros(len(keys), dtype=bool)
    out_of_range[owner[(np.abs(latlon[:, 0]) > 90) | (np.abs(latlon[:, 1]) > 180)]] = True
    polys = shapely.polygons(shapely.linearrings(latlon[:, ::-1], indices=owner))
    bad = ~shapely.is_valid(polys) | (shapely.area(polys) <= 0)
    for i in np.flatnonzero(out_of_range | bad):
        if out_of_range[i]:
            yield f"grid {keys[i]}: polygon has a point outside lat -90..90 / lon -180..180"
            continue
        reason = shapely.is_valid_reason(polys[i])
        yield f"grid {keys[i]}: polygon is invalid ({reason if reason != 'Valid Geometry' else 'zero area'})"


def _person_problems(data: RegistryData) -> Iterable[str]:
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
        if region is None:
            yield f"{where}: region {p.region!r} does not exist"
        elif region.level is not ROLE_LEVEL[p.role]:
            yield f"{where}: a {p.role} serves a {ROLE_LEVEL[p.role]}, {p.region} is a {region.level}"
        if key in data.devices:
            yield f"{where}: id is also a device id (target ids must be unique)"


def _device_problems(data: RegistryData) -> Iterable[str]:
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


def _id_problems(data: RegistryData) -> Iterable[str]:
    """Ids are fields of the campaign state's strings ("state|attempts|lease", a person's
    "grid:level,grid:level", an attempt's audit entry): a separator or a space in one would
    split it."""
    for kind, ids in (("grid", data.grids), ("person", data.persons), ("device", data.devices)):
        for key in ids:
            if not key or _ID_BAD.search(key):
                yield f"{kind} {key!r}: an id must not be empty or hold '|', ',', ':' or spaces"


def validate_registry(data: RegistryData) -> list[str]:
    """Return every problem of `data`, one human-readable line per problem naming the record."""
    return [
        *_id_problems(data),
        *_region_problems(data.regions),
        *_grid_problems(data),
        *_person_problems(data),
        *_device_problems(data),
    ]


# --------------------------------------------------------------------------- index


def _group(pairs: Iterable[tuple[str, str]]) -> dict[str, tuple[str, ...]]:
    out: dict[str, list[str]] = defaultdict(list)
    for key, value in sorted(pairs):
        out[key].append(value)
    return {k: tuple(v) for k, v in out.items()}


class Registry:
    """A validated registry and the indexes the engine needs. Read-only."""

    def __init__(self, data: RegistryData) -> None:
        self.data = data
        regions = data.regions
        self.county_codes: tuple[str, ...] = tuple(
            sorted(c for c, r in regions.items() if r.level is RegionLevel.COUNTY)
        )
        self._grids_of = _group((g.village, g.id) for g in data.grids.values())
        self._held = _group((pid, g.id) for g in data.grids.values()
                            for pid in (g.primary, g.backup) if pid)
        self._devices_of = _group((d.region, d.id) for d in data.devices.values())
        self._children = _group((r.parent, r.code) for r in regions.values() if r.parent)
        # One duty person per (region, role): the lowest id when a region has several.
        self._duty: dict[tuple[str, Role], str] = {}
        by_role: dict[Role, list[Person]] = defaultdict(list)
        for pid in sorted(data.persons):
            person = data.persons[pid]
            by_role[person.role].append(person)
            self._duty.setdefault((person.region, person.role), pid)
        self._by_role = {role: tuple(ps) for role, ps in by_role.items()}

    @property
    def county_code(self) -> str:
        """The county's region code (the first one when the registry holds several)."""
        if not self.county_codes:
            raise NotFoundError("the registry has no county")
        return self.county_codes[0]

    def township_of(self, village_code: str) -> str | None:
        region = self.data.regions.get(village_code)
        return region.parent if region else None

    def children_of(self, code: str) -> tuple[str, ...]:
        """Region codes directly under `code` (townships of a county, villages of a township)."""
        return self._children.get(code, ())

    def grids_of_village(self, code: str) -> tuple[str, ...]:
        return self._grids_of.get(code, ())

    def grids_held_by(self, person_id: str) -> tuple[str, ...]:
        """The grids a person answers for, as primary or backup officer."""
        return self._held.get(person_id, ())

    def devices_of_village(self, code: str) -> tuple[str, ...]:
        return self._devices_of.get(code, ())

    def persons_by_role(self, role: Role) -> tuple[Person, ...]:
        return self._by_role.get(role, ())

    def chain(self, grid_id: str) -> tuple[str | None, ...]:
        """Person ids of a grid's 叫应 chain in `CHAIN_ORDER`; None where a role is vacant."""
        grid = self.data.grids.get(grid_id)
        if grid is None:
            raise NotFoundError(f"unknown grid {grid_id!r}")
        township = self.township_of(grid.village)
        county = self.data.regions[township].parent if township in self.data.regions else None
        at: dict[Role, str | None] = {
            Role.PRIMARY: grid.primary,
            Role.BACKUP: grid.backup,
            Role.VILLAGE_HEAD: self._duty.get((grid.village, Role.VILLAGE_HEAD)),
            Role.TOWNSHIP_DUTY: self._duty.get((township or "", Role.TOWNSHIP_DUTY)),
            Role.COUNTY_DUTY: self._duty.get((county or "", Role.COUNTY_DUTY)),
        }
        return tuple(at[role] for role in CHAIN_ORDER)

    def person_at(self, grid_id: str, role: Role) -> str | None:
        """The person id at `role` in a grid's chain, or None."""
        return self.chain(grid_id)[CHAIN_ORDER.index(role)]

    def stats(self) -> dict[str, int]:
        levels = Counter(r.level for r in self.data.regions.values())
        roles = Counter(p.role for p in self.data.persons.values())
        out = {
            "counties": levels[RegionLevel.COUNTY],
            "townships": levels[RegionLevel.TOWNSHIP],
            "villages": levels[RegionLevel.VILLAGE],
            "grids": len(self.data.grids),
            "persons": len(self.data.persons),
            "devices": len(self.data.devices),
            "hazard_points": sum("hazard_point" in g.tags for g in self.data.grids.values()),
            "drill_persons": sum(p.drill for p in self.data.persons.values()),
        }
        out.update({f"role.{role}": roles[role] for role in Role})
        return out
