"""Match an alert to grids: geocodes by region-code prefix, polygons and circles by geometry.

Per CAP area: when the area has polygons or circles, they define it (its geocodes are then
context, typically the issuing county); otherwise its administrative geocodes do, and of codes
that are prefixes of one another only the most specific count (county 430623 listed with its
townships means those townships). The result is the union over all areas and infos; an info
whose hazard has `required_tags` (地质灾害 -> hazard_point) keeps only grids with such a tag.
Sites (`domain.sites`) of the kinds an info's hazard calls (`rules/sites.toml`) are matched
the same way: a site lies in an area when its point is inside it or its polygon overlaps it
beyond a shared edge, or by its village's code.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain

import msgspec
import numpy as np
import numpy.typing as npt
import shapely
from shapely import STRtree

from rules.hazards import HazardTable, default_hazards
from rules.sites import SiteRules, default_site_rules
from warnbus.domain.models import Alert, Area, Circle, RegistryData, SiteKind
from warnbus.errors import ConfigError

ADMIN, IGNORE = "admin", "ignore"

#: valueName -> how to read it. Names compare without spaces and case ("gb/t2260" is GB/T 2260).
DEFAULT_GEOCODE_NAMES: Mapping[str, str] = {
    "GB/T 2260": ADMIN,  # 2/4/6-digit province/prefecture/county code
    "GB/T 10114": ADMIN,  # 9/12-digit township/village code
    "统计用区划代码": ADMIN,
    "TOWNSHIP": ADMIN,
    "VILLAGE": ADMIN,
}

_KM_PER_DEG = 6371.0088 * math.pi / 180  # mean Earth radius; one degree of latitude in km
_CIRCLE_SEGMENTS = 72
_LEVEL_LENGTHS = (2, 4, 6, 9)  # province, prefecture, county, township parts of a code
_EXACT_MAX = 2000  # up to this many candidate grids, test each one exactly
RING_PIECE = 16_384  # polygon points converted per C call (each holds the GIL ~1 ms)

BoolArray = npt.NDArray[np.bool_]


class MatchResult(msgspec.Struct, frozen=True):
    """Matched grid ids, device ids, village codes and site ids (each sorted)."""

    grids: tuple[str, ...] = ()
    devices: tuple[str, ...] = ()
    villages: tuple[str, ...] = ()
    hazards: tuple[str, ...] = ()  # keys of the hazards recognised in the infos
    #: geocodes not used: unknown valueName, or not a region code (the caller logs them)
    ignored_geocodes: tuple[tuple[str, str], ...] = ()
    #: (info, area) positions of the areas in which no grid lies, judged by geography
    #: alone (before a hazard's tags keep only some grids), in document order
    empty_areas: tuple[tuple[int, int], ...] = ()
    sites: tuple[str, ...] = ()  # sites of the kinds the hazards call (rules/sites.toml)


def _norm_name(name: str) -> str:
    return re.sub(r"\s+", "", name).upper()


def admin_prefix(value: str) -> str | None:
    """The region-code prefix a code stands for: 430623000000 -> 430623, 430600 -> 4306.

    Accepts 2/4/6 (GB/T 2260) and 9/12-digit (统计用区划代码) codes; None for anything else.
    """
    code = value.strip()
    if not (code.isascii() and code.isdigit()) or len(code) not in (2, 4, 6, 9, 12):
        return None
    for n in _LEVEL_LENGTHS:
        if n < len(code) and code[n:].count("0") == len(code) - n:
            return code[:n]
    return code


def most_specific(prefixes: Iterable[str]) -> list[str]:
    """Drop every prefix that is a prefix of another one (the county of listed townships)."""
    ordered = sorted(set(prefixes))
    # In sorted order, the codes under a prefix come right after it.
    return [p for i, p in enumerate(ordered)
            if i + 1 == len(ordered) or not ordered[i + 1].startswith(p)]


def circle_geometry(circle: Circle) -> shapely.Geometry:
    """A CAP circle as a (lon, lat) polygon: a km buffer in a local equirectangular projection."""
    if circle.radius_km <= 0:
        return shapely.Point(circle.lon, circle.lat)
    dlat = circle.radius_km / _KM_PER_DEG
    dlon = dlat / max(math.cos(math.radians(circle.lat)), 1e-6)
    angles = np.linspace(0.0, 2 * math.pi, _CIRCLE_SEGMENTS, endpoint=False)
    return shapely.Polygon(np.column_stack((circle.lon + dlon * np.sin(angles),
                                            circle.lat + dlat * np.cos(angles))))


def polygon_geometry(ring: Sequence[tuple[float, float]]) -> shapely.Geometry | None:
    """A CAP polygon of (lat, lon) as a valid (lon, lat) geometry; None if degenerate.

    Built from one array (a point at a time in Python, a 160,000-point ring took 0.2 s of
    a thread that held the GIL, and the event loop of its process waited in turns), filled
    RING_PIECE points per C call (the largest ring in one call held the GIL ~15 ms).
    """
    if len(ring) < 3:
        return None
    lonlat = np.empty((len(ring), 2))
    for start in range(0, len(ring), RING_PIECE):
        part = ring[start : start + RING_PIECE]
        flat = np.fromiter(chain.from_iterable(part), dtype=float, count=2 * len(part))
        lonlat[start : start + len(part)] = flat.reshape(-1, 2)[:, ::-1]
    geom = shapely.polygons(lonlat)
    if geom.is_valid:
        return geom
    # A self-intersecting ring (a bow-tie) becomes the polygons it encloses.
    parts = [p for p in shapely.get_parts(shapely.make_valid(geom))
             if p.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.union_all(parts) if parts else None


def _boundary_pieces(geom: shapely.Geometry, length: float) -> npt.NDArray[np.object_]:
    """The boundary of an areal geometry cut into straight pieces of at most `length`."""
    lines = shapely.segmentize(shapely.get_parts(shapely.boundary(geom)), length)
    segments = []
    for line in lines:
        coords = shapely.get_coordinates(line)
        segments.append(np.stack((coords[:-1], coords[1:]), axis=1))
    return shapely.linestrings(np.concatenate(segments))  # type: ignore[no-any-return]


@dataclass(frozen=True)
class _AreasMask:
    mask: BoolArray  # the grids of the areas, a hazard's tags applied
    empty: list[int]  # positions of the areas in which no grid lies (geography alone)


class Matcher:
    """Indexes built once per registry; `match` is then cheap (bisect and STRtree)."""

    def __init__(self, data: RegistryData, geocode_names: Mapping[str, str] | None = None,
                 hazards: HazardTable | None = None, sites: SiteRules | None = None) -> None:
        names = {**DEFAULT_GEOCODE_NAMES, **(geocode_names or {})}
        bad = {k: v for k, v in names.items() if v not in (ADMIN, IGNORE)}
        if bad:
            raise ConfigError(f"geocode names: {bad} must map to '{ADMIN}' or '{IGNORE}'")
        self._names = {_norm_name(k): v for k, v in names.items()}
        self._hazards = hazards if hazards is not None else default_hazards()
        ids = sorted(data.grids)
        grids = [data.grids[i] for i in ids]
        self._ids = np.array(ids, dtype=object)
        # Village of each grid as an index into the sorted village codes.
        self._village_codes = sorted({g.village for g in grids})
        position = {code: i for i, code in enumerate(self._village_codes)}
        self._village = np.array([position[g.village] for g in grids], dtype=np.intp)
        self._tags = [frozenset(g.tags) for g in grids]
        # Grid positions ordered by village code, so a code prefix is one contiguous run.
        self._by_village = np.array(sorted(range(len(ids)), key=lambda i: grids[i].village),
                                    dtype=np.intp)
        self._village_sorted = [grids[i].village for i in self._by_village]
        self._polys = _grid_polygons([g.polygon for g in grids])
        self._tree = STRtree(self._polys)
        points = shapely.point_on_surface(self._polys)  # one point inside each grid
        self._px, self._py = shapely.get_x(points), shapely.get_y(points)
        bounds = shapely.bounds(self._polys)
        sizes = np.fmax(bounds[:, 2] - bounds[:, 0], bounds[:, 3] - bounds[:, 1])
        # Boundary pieces about one grid long meet only a few grids each.
        piece = float(np.nanmedian(sizes)) if np.isfinite(sizes).any() else 0.0
        self._piece_len = piece if piece > 0 else 0.01
        devices: dict[str, list[str]] = {}
        for d in data.devices.values():
            devices.setdefault(d.region, []).append(d.id)
        self._devices = devices
        self._tag_masks: dict[frozenset[str], BoolArray] = {}
        self._site_rules = sites if sites is not None else default_site_rules()
        self._sites = _SiteIndex(data)

    def match(self, alert: Alert) -> MatchResult:
        """The grids, devices and villages an alert reaches (union over infos and areas).

        An area repeated in several infos (the same warning in two languages) is matched
        once.
        """
        mask = self._empty()
        sites = self._sites.empty()
        ignored: list[tuple[str, str]] = []
        found: list[str] = []
        empty: list[tuple[int, int]] = []
        seen: dict[Area, npt.NDArray[np.intp]] = {}
        shapes: dict[Area, list[shapely.Geometry]] = {}  # built once for grids and sites
        for i, info in enumerate(alert.infos):
            hazard = self._hazards.hazard_of(info)
            tags = hazard.required_tags if hazard else ()
            if hazard and hazard.key not in found:
                found.append(hazard.key)
            part = self._areas_mask(info.areas, tags, ignored, seen, shapes)
            mask |= part.mask
            empty += [(i, j) for j in part.empty]
            kinds = self._site_rules.kinds_for(hazard.key if hazard else None)
            if kinds:
                sites |= self._sites.mask(info.areas, kinds, self._prefixes,
                                          lambda a: _area_shapes(a, shapes))
        return msgspec.structs.replace(self._result(mask, tuple(found), ignored, tuple(empty)),
                                       sites=self._sites.ids_of(sites))

    def match_areas(self, areas: Iterable[Area], required_tags: Iterable[str] = ()) -> MatchResult:
        """Match bare areas (e.g. a console preview), optionally keeping only tagged grids."""
        ignored: list[tuple[str, str]] = []
        part = self._areas_mask(areas, tuple(required_tags), ignored, {}, {})
        return self._result(part.mask, (), ignored, tuple((0, j) for j in part.empty))

    def region_codes(self, area: Area) -> list[str]:
        """The region-code prefixes an area's geocodes name (the most specific ones), as
        `match` reads them; geocodes of other kinds are left out. Cheap: no geometry."""
        return most_specific(self._prefixes(area.geocodes, []))

    # ------------------------------------------------------------------ internals

    def _empty(self) -> BoolArray:
        return np.zeros(len(self._ids), dtype=bool)

    def _areas_mask(self, areas: Iterable[Area], tags: tuple[str, ...],
                    ignored: list[tuple[str, str]], seen: dict[Area, npt.NDArray[np.intp]],
                    shapes: dict[Area, list[shapely.Geometry]]) -> _AreasMask:
        mask = self._empty()
        empty: list[int] = []
        for j, area in enumerate(areas):
            grids = seen.get(area)
            if grids is None:
                grids = seen[area] = self._area_grids(area, ignored, shapes)
            if len(grids) == 0:
                empty.append(j)
            mask[grids] = True
        if tags:
            mask &= self._tag_mask(frozenset(tags))
        return _AreasMask(mask, empty)

    def _area_grids(self, area: Area, ignored: list[tuple[str, str]],
                    memo: dict[Area, list[shapely.Geometry]]) -> npt.NDArray[np.intp]:
        """Positions of the grids in one area (repeats possible), by geography alone."""
        shapes = _area_shapes(area, memo)
        if shapes:  # a degenerate polygon falls back to the area's geocodes
            return np.concatenate([self._query(geom) for geom in shapes])
        runs = []
        for prefix in most_specific(self._prefixes(area.geocodes, ignored)):
            lo = bisect_left(self._village_sorted, prefix)
            hi = bisect_left(self._village_sorted, prefix + ":", lo)  # ':' follows '9'
            runs.append(self._by_village[lo:hi])
        return np.concatenate(runs) if runs else np.empty(0, dtype=np.intp)

    def _prefixes(self, geocodes: Iterable[tuple[str, str]],
                  ignored: list[tuple[str, str]]) -> list[str]:
        out = []
        for name, value in geocodes:
            kind = self._names.get(_norm_name(name))
            prefix = admin_prefix(value) if kind == ADMIN else None
            if prefix is not None:
                out.append(prefix)
            elif kind != IGNORE:
                ignored.append((name, value))
        return out

    def _query(self, geom: shapely.Geometry) -> npt.NDArray[np.intp]:
        """Grids inside `geom`: intersecting it beyond a shared edge or corner."""
        cand: npt.NDArray[np.intp] = self._tree.query(geom)  # bounding boxes only
        if len(cand) == 0:
            return cand
        shapely.prepare(geom)
        if shapely.area(geom) <= 0:  # a point (circle of radius 0) or a line
            hit: BoolArray = shapely.intersects(geom, self._polys[cand])
            return cand[hit]
        if len(cand) <= _EXACT_MAX:
            return cand[self._overlaps(geom, cand)]
        # Many candidates (a big area): test exactly only the grids on the area's boundary,
        # found through short boundary pieces; every other candidate lies wholly inside or
        # wholly outside, which one point of it tells. Keeps 78k grids well under 50 ms.
        pieces = _boundary_pieces(geom, self._piece_len)
        edge = np.unique(self._tree.query(pieces, predicate="intersects")[1])
        inner = np.setdiff1d(cand, edge, assume_unique=True)
        inner = inner[shapely.contains_xy(geom, self._px[inner], self._py[inner])]
        return np.union1d(inner, edge[self._overlaps(geom, edge)])

    def _overlaps(self, geom: shapely.Geometry, idx: npt.NDArray[np.intp]) -> BoolArray:
        polys = self._polys[idx]
        hit: BoolArray = shapely.intersects(geom, polys)
        hit[hit] = ~shapely.touches(geom, polys[hit])  # only sharing an edge is not being in
        return hit

    def _tag_mask(self, tags: frozenset[str]) -> BoolArray:
        mask = self._tag_masks.get(tags)
        if mask is None:
            mask = np.fromiter((not tags.isdisjoint(t) for t in self._tags), dtype=bool,
                               count=len(self._tags))
            self._tag_masks[tags] = mask
        return mask

    def _result(self, mask: BoolArray, hazards: tuple[str, ...],
                ignored: list[tuple[str, str]], empty: tuple[tuple[int, int], ...]
                ) -> MatchResult:
        idx = np.flatnonzero(mask)
        villages = tuple(self._village_codes[i] for i in np.unique(self._village[idx]).tolist())
        devices = sorted(chain.from_iterable(self._devices.get(v, ()) for v in villages))
        return MatchResult(
            grids=tuple(self._ids[idx].tolist()),
            devices=tuple(devices),
            villages=villages,
            hazards=hazards,
            ignored_geocodes=tuple(ignored),
            empty_areas=empty,
        )


class _SiteIndex:
    """Where the registry's sites are: their shapes in an STRtree, their villages sorted."""

    def __init__(self, data: RegistryData) -> None:
        ids = sorted(data.sites)
        sites = [data.sites[i] for i in ids]
        self._ids = np.array(ids, dtype=object)
        self._kind = np.array([s.kind.value for s in sites], dtype=object)
        self._areal = np.array([len(s.polygon) >= 4 for s in sites], dtype=bool)
        shapes = [polygon_geometry(s.polygon) if len(s.polygon) >= 4 else
                  shapely.Point(s.point[1], s.point[0]) if s.point else None for s in sites]
        self._shapes = np.array([g if g is not None else shapely.Point() for g in shapes],
                                dtype=object)
        self._tree = STRtree(self._shapes)
        self._by_village = np.array(sorted(range(len(ids)), key=lambda i: sites[i].village),
                                    dtype=np.intp)
        self._village_sorted = [sites[i].village for i in self._by_village]

    def empty(self) -> BoolArray:
        return np.zeros(len(self._ids), dtype=bool)

    def ids_of(self, mask: BoolArray) -> tuple[str, ...]:
        return tuple(self._ids[np.flatnonzero(mask)].tolist())

    def mask(self, areas: Iterable[Area], kinds: frozenset[SiteKind],
             prefixes: Callable[[Iterable[tuple[str, str]], list[tuple[str, str]]], list[str]],
             shapes_of: Callable[[Area], list[shapely.Geometry]]) -> BoolArray:
        """Sites of `kinds` in any of `areas` (shapes first, else the areas' geocodes)."""
        mask = self.empty()
        if not len(self._ids):
            return mask
        for area in areas:
            shapes = shapes_of(area)
            if shapes:
                for geom in shapes:
                    hit = self._tree.query(geom, predicate="intersects")
                    areal = hit[self._areal[hit]]
                    # A polygon that only shares an edge with the area is not in it.
                    mask[hit[~self._areal[hit]]] = True
                    mask[areal[~shapely.touches(geom, self._shapes[areal])]] = True
            else:
                for prefix in most_specific(prefixes(area.geocodes, [])):
                    lo = bisect_left(self._village_sorted, prefix)
                    hi = bisect_left(self._village_sorted, prefix + ":", lo)  # ':' follows '9'
                    mask[self._by_village[lo:hi]] = True
        mask &= np.isin(self._kind, [k.value for k in kinds])
        return mask


def _area_shapes(area: Area, memo: dict[Area, list[shapely.Geometry]]
                 ) -> list[shapely.Geometry]:
    """An area's polygons and circles as geometries (degenerate ones left out), built once
    per match: the largest polygon accepted takes ~0.1 s to build."""
    got = memo.get(area)
    if got is None:
        geoms = [polygon_geometry(p) for p in area.polygons]
        geoms += [circle_geometry(c) for c in area.circles]
        got = memo[area] = [g for g in geoms if g is not None and not g.is_empty]
    return got


def _grid_polygons(rings: list[tuple[tuple[float, float], ...]]) -> npt.NDArray[np.object_]:
    """(lon, lat) polygons of grid rings, built vectorised; degenerate rings become empty."""
    out = np.array([shapely.Polygon()] * len(rings), dtype=object)
    ok = [i for i, r in enumerate(rings) if len(r) >= 4]
    if ok:
        counts = np.fromiter((len(rings[i]) for i in ok), dtype=np.intp, count=len(ok))
        flat = chain.from_iterable(chain.from_iterable(rings[i] for i in ok))
        latlon = np.fromiter(flat, dtype=float, count=2 * int(counts.sum())).reshape(-1, 2)
        owner = np.repeat(np.arange(len(ok)), counts)
        out[ok] = shapely.polygons(shapely.linearrings(latlon[:, ::-1], indices=owner))
    return out
