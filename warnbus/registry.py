"""The registry: regions, grids, people, devices, sites and duty rosters; load, validate, dump,
index.

On disk a registry is a directory of JSON arrays of the `warnbus.domain.models` records:
`regions.json`, `grids.json`, `persons.json`, `devices.json`, and optionally `sites.json`
(`domain.sites`) and `rosters.json` (`domain.duty`); polygons are `[[lat, lon], ...]`.
Decoding is strict: an unknown key is an error naming the file and key. The checks of sites
and rosters are in `registry_checks.py` (which this module re-exports).
"""

from __future__ import annotations

import gc
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from warnbus.domain.duty import DutyBook
from warnbus.domain.models import (
    CHAIN_ORDER,
    SITE_CHAIN_ORDER,
    Device,
    Grid,
    Person,
    Region,
    RegionLevel,
    RegistryData,
    Role,
    Roster,
    Site,
    SiteKind,
)
from warnbus.domain.roles import DUTY_ROLES
from warnbus.errors import NotFoundError, RegistryError
from warnbus.registry_checks import (
    device_problems,
    grid_problems,
    id_problems,
    person_problems,
    region_problems,
)
from warnbus.registry_checks import phone_problem as phone_problem
from warnbus.roster_checks import duty_problems, roster_problems
from warnbus.site_checks import site_problems

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


class _SiteIn(Site, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    pass


class _RosterIn(Roster, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    pass


_T = TypeVar("_T", bound=msgspec.Struct)

#: file name, strict type, model type, what an id is called in messages, whether optional
_FILES: tuple[tuple[str, type[msgspec.Struct], type[msgspec.Struct], str, bool], ...] = (
    ("regions.json", _RegionIn, Region, "code", False),
    ("grids.json", _GridIn, Grid, "id", False),
    ("persons.json", _PersonIn, Person, "id", False),
    ("devices.json", _DeviceIn, Device, "id", False),
    ("sites.json", _SiteIn, Site, "id", True),
    ("rosters.json", _RosterIn, Roster, "id", True),
)
#: The files of a registry directory, in the order `RegistryData` holds them.
FILE_NAMES: tuple[str, ...] = tuple(f[0] for f in _FILES)




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


def _decode(path: Path, name: str, strict: type[_T], model: type[msgspec.Struct],
            optional: bool = False) -> list[Any]:
    try:
        raw = (path / name).read_bytes()
    except FileNotFoundError:
        if optional:
            return []
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
            _index(_decode(root, name, strict, model, optional), attr, name, problems)
            for name, strict, model, attr, optional in _FILES
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
    """Write `data` as a registry directory: one record per line, sorted, defaults omitted.
    The optional files are written only when they hold something."""
    root = Path(path)
    root.mkdir(parents=True, exist_ok=True)
    tables: tuple[Mapping[str, Any], ...] = (data.regions, data.grids, data.persons, data.devices,
                                             data.sites, data.rosters)
    enc = msgspec.json.Encoder()
    for (name, strict, _model, _attr, optional), table in zip(_FILES, tables, strict=True):
        if optional and not table:
            (root / name).unlink(missing_ok=True)
            continue
        lines = [enc.encode(strict(*msgspec.structs.astuple(table[k]))) for k in sorted(table)]
        body = b",\n".join(lines)
        (root / name).write_bytes(b"[\n" + body + b"\n]\n" if lines else b"[]\n")


def validate_registry(data: RegistryData) -> list[str]:
    """Return every problem of `data`, one human-readable line per problem naming the record."""
    return [
        *id_problems(data),
        *region_problems(data.regions),
        *grid_problems(data),
        *person_problems(data),
        *device_problems(data),
        *site_problems(data),
        *roster_problems(data),
        *duty_problems(data),
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
        self._sites_held = _group((p.person, s.id) for s in data.sites.values() for p in s.people)
        #: Who is on duty by the registry's own rosters (approved in their files), with the
        #: fixed duty persons as the fallback; the console's changes come on top of it
        #: (`warnbus.state.duty.DutyDesk.book`).
        self.duty = DutyBook(data.rosters, {k: pid for k, pid in self._duty.items()
                                            if k[1] in DUTY_ROLES}, persons=data.persons.keys())

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

    def is_site(self, key: str) -> bool:
        """Whether a campaign's grid key is a site (site and grid ids never clash)."""
        return key in self.data.sites

    def sites_held_by(self, person_id: str) -> tuple[str, ...]:
        """The sites a person answers for, in any role."""
        return self._sites_held.get(person_id, ())

    def _on_duty(self, village: str, at: float, duty: DutyBook | None) -> dict[Role, str | None]:
        """The village head of `village`, and who holds each duty role above it at `at`."""
        township = self.township_of(village)
        county = self.data.regions[township].parent if township in self.data.regions else None
        book = duty or self.duty
        out: dict[Role, str | None] = {
            Role.VILLAGE_HEAD: self._duty.get((village, Role.VILLAGE_HEAD))}
        for role, level in DUTY_ROLES.items():
            region = township if level is RegionLevel.TOWNSHIP else county
            out[role] = book.on_duty(region, role, at) if region else None
        return out

    def chain(self, grid_id: str, *, at: float, duty: DutyBook | None = None
              ) -> tuple[str | None, ...]:
        """Person ids of a grid's 叫应 chain in `CHAIN_ORDER`; None where a role is vacant.

        The duty roles are whoever is on duty at `at` (the engine's time of the step), by
        `duty` (the book with the console's approvals and changes) or the registry's own."""
        grid = self.data.grids.get(grid_id)
        if grid is None:
            raise NotFoundError(f"unknown grid {grid_id!r}")
        at_role = {Role.PRIMARY: grid.primary, Role.BACKUP: grid.backup,
                   **self._on_duty(grid.village, at, duty)}
        return tuple(at_role.get(role) for role in CHAIN_ORDER)

    def site_chain(self, site_id: str, *, at: float, duty: DutyBook | None = None
                   ) -> tuple[str | None, ...]:
        """Person ids of a site's 叫应 chain in `SITE_CHAIN_ORDER`: its first person, the
        village head and whoever is on duty above it at `at`, the officer of its grid."""
        site = self.data.sites.get(site_id)
        if site is None:
            raise NotFoundError(f"unknown site {site_id!r}")
        grid = self.data.grids.get(site.grid) if site.grid else None
        at_role = {Role.SITE: site.people[0].person if site.people else None,
                   Role.PRIMARY: grid.primary if grid else None,
                   **self._on_duty(site.village, at, duty)}
        return tuple(at_role.get(role) if role else None for role in SITE_CHAIN_ORDER)

    def name_of(self, key: str) -> str:
        """The name of a campaign's grid key: a grid's, or a site's with its kind."""
        site = self.data.sites.get(key)
        if site is not None:
            return site.name
        grid = self.data.grids.get(key)
        return grid.name if grid else key

    def chain_of(self, key: str, *, at: float, duty: DutyBook | None = None
                 ) -> tuple[str | None, ...]:
        """The chain of a campaign's grid key: a site's or a grid's."""
        if key in self.data.sites:
            return self.site_chain(key, at=at, duty=duty)
        return self.chain(key, at=at, duty=duty)

    def person_at(self, grid_id: str, role: Role, *, at: float,
                  duty: DutyBook | None = None) -> str | None:
        """The person id at `role` in a grid's chain at `at`, or None."""
        return self.chain(grid_id, at=at, duty=duty)[CHAIN_ORDER.index(role)]

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
            "sites": len(self.data.sites),
            "rosters": len(self.data.rosters),
        }
        out.update({f"role.{role}": roles[role] for role in Role})
        kinds = Counter(s.kind for s in self.data.sites.values())
        out.update({f"site.{kind}": kinds[kind] for kind in SiteKind})
        return out
