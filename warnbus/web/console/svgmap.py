"""An offline map: the registry's grid polygons drawn as SVG paths (no tiles, no network).

Geometry is projected once per registry (equirectangular, scaled by cos(latitude) so the
county keeps its shape) and cached; a map is then one string join with per-grid classes.
The projection is written on the map (`data-proj`), so the compose page's script turns a
point drawn on the map back into the latitude and longitude the server would draw there.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from warnbus.registry import Registry
from warnbus.web.console.html import esc

WIDTH = 1000.0
PAD = 8.0
MAX_SHAPE_POINTS = 1000  # a national feed's 800 KB polygon is thinned for the picture

Ring = Sequence[tuple[float, float]]  # (lat, lon), as in CAP


@dataclass(frozen=True)
class Projection:
    """(lat, lon) <-> map units: x grows east, y grows south, both from the padded corner."""

    lon0: float
    lat1: float
    kx: float  # cos(mid latitude): a degree of longitude is that much shorter
    scale: float  # map units per degree of latitude

    def xy(self, lat: float, lon: float) -> tuple[float, float]:
        return PAD + (lon - self.lon0) * self.kx * self.scale, PAD + (self.lat1 - lat) * self.scale

    def latlon(self, x: float, y: float) -> tuple[float, float]:
        return self.lat1 - (y - PAD) / self.scale, self.lon0 + (x - PAD) / (self.kx * self.scale)

    def attr(self) -> str:
        """`data-proj`: pad, lon0, lat1, units per degree of longitude, of latitude."""
        return f"{PAD!r} {self.lon0!r} {self.lat1!r} {self.kx * self.scale!r} {self.scale!r}"


@dataclass(frozen=True)
class MapGeometry:
    width: float
    height: float
    paths: dict[str, str]  # grid id -> path data
    names: dict[str, str]  # grid id -> name
    town_of: dict[str, str]  # grid id -> township code
    village_of: dict[str, str]
    boxes: dict[str, tuple[float, float, float, float]] = field(default_factory=dict)
    labels: dict[str, tuple[float, float]] = field(default_factory=dict)  # township -> centre
    proj: Projection = field(default_factory=lambda: Projection(0.0, 0.0, 1.0, 1.0))
    #: (lat0, lon0, lat1, lon1) of every grid: where a drawn area can plausibly be
    extent: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)


# By the registry itself, weakly: a registry applied while running replaces the old one, and
# an id() could be reused by the new object (a stale map of the old grids).
_cache: weakref.WeakKeyDictionary[Registry, MapGeometry] = weakref.WeakKeyDictionary()


def geometry(registry: Registry) -> MapGeometry:
    hit = _cache.get(registry)
    if hit is not None:
        return hit
    grids = registry.data.grids
    lats = [p[0] for g in grids.values() for p in g.polygon] or [0.0]
    lons = [p[1] for g in grids.values() for p in g.polygon] or [0.0]
    lat0, lat1, lon0, lon1 = min(lats), max(lats), min(lons), max(lons)
    kx = math.cos(math.radians((lat0 + lat1) / 2))
    span = max((lon1 - lon0) * kx, 1e-9)
    scale = (WIDTH - 2 * PAD) / span
    height = (lat1 - lat0) * scale + 2 * PAD
    proj = Projection(lon0, lat1, kx, scale)
    xy = proj.xy

    paths: dict[str, str] = {}
    boxes: dict[str, list[float]] = {}
    sums: dict[str, list[float]] = {}
    town_of: dict[str, str] = {}
    for gid, g in sorted(grids.items()):
        pts = [xy(lat, lon) for lat, lon in g.polygon[:-1]]
        paths[gid] = "M" + "L".join(f"{x:.1f} {y:.1f}" for x, y in pts) + "Z"
        town = registry.township_of(g.village) or ""
        town_of[gid] = town
        for code in (town, g.village):
            b = boxes.setdefault(code, [math.inf, math.inf, -math.inf, -math.inf])
            for x, y in pts:
                b[0], b[1], b[2], b[3] = min(b[0], x), min(b[1], y), max(b[2], x), max(b[3], y)
        cx = sum(x for x, _ in pts) / len(pts)
        cy = sum(y for _, y in pts) / len(pts)
        acc = sums.setdefault(town, [0.0, 0.0, 0.0])
        acc[0] += cx
        acc[1] += cy
        acc[2] += 1
    geom = MapGeometry(
        WIDTH, height, paths, {k: g.name for k, g in grids.items()}, town_of,
        {k: g.village for k, g in grids.items()},
        {k: (b[0], b[1], b[2], b[3]) for k, b in boxes.items()},
        {k: (a[0] / a[2], a[1] / a[2]) for k, a in sums.items() if a[2]},
        proj, (lat0, lon0, lat1, lon1),
    )
    _cache[registry] = geom
    return geom


def _thin(ring: Ring) -> Ring:
    step = max(1, math.ceil(len(ring) / MAX_SHAPE_POINTS))
    return ring if step == 1 else [*ring[::step], ring[-1]]


def shape_path(geom: MapGeometry, ring: Ring) -> str:
    """SVG path data of a (lat, lon) ring, in the map's projection."""
    pts = [geom.proj.xy(lat, lon) for lat, lon in _thin(ring)]
    return "M" + "L".join(f"{x:.1f} {y:.1f}" for x, y in pts) + "Z" if pts else ""


def _shape_box(geom: MapGeometry, ring: Ring) -> tuple[float, float, float, float]:
    pts = [geom.proj.xy(lat, lon) for lat, lon in _thin(ring)]
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    return min(xs), min(ys), max(xs), max(ys)


def svg(registry: Registry, states: Mapping[str, str] | None = None, *,
        focus: str | None = None, selected: Collection[str] = (), region_names: bool = True,
        only: Collection[str] | None = None, shapes: Sequence[Ring] = (),
        fit_shapes: bool = False, map_id: str = "") -> str:
    """The map; `states` colours grids (class `s-<state>`), `focus` zooms to regions.

    `focus` is one region code or several, comma-separated (the map shows all of them).
    `shapes` are drawn areas ((lat, lon) rings) laid over the grids (class `drawn`);
    `fit_shapes` zooms so that they show whole (together with `focus`).

    Grids not in `states` are drawn as outside the alert (class `s-none`).
    """
    geom = geometry(registry)
    x0, y0, x1, y1 = 0.0, 0.0, geom.width, geom.height
    boxes = [geom.boxes[c] for c in (focus or "").split(",") if c in geom.boxes]
    rings = [r for r in shapes if len(r) >= 2]
    if fit_shapes:
        boxes += [_shape_box(geom, r) for r in rings]
    if boxes:
        bx0, by0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
        bx1, by1 = max(b[2] for b in boxes), max(b[3] for b in boxes)
        m = max(bx1 - bx0, by1 - by0) * 0.04 + 2
        x0, y0, x1, y1 = bx0 - m, by0 - m, bx1 + m, by1 + m
    ident = f' id="{esc(map_id)}"' if map_id else ""
    parts = [f'<svg class="map"{ident} viewBox="{x0:.0f} {y0:.0f} {x1 - x0:.0f} {y1 - y0:.0f}" '
             f'data-proj="{geom.proj.attr()}" '
             'xmlns="http://www.w3.org/2000/svg" role="img" aria-label="网格地图">']
    sel = set(selected)
    states = states or {}
    for gid, d in geom.paths.items():
        if only is not None and gid not in only:
            continue
        cls = f"s-{states.get(gid, 'none')}" + (" sel" if gid in sel else "")
        parts.append(f'<path d="{d}" data-g="{esc(gid)}" data-t="{geom.town_of[gid]}" '
                     f'class="{cls}"><title>{esc(geom.names[gid])}</title></path>')
    if region_names and len(boxes) != 1:
        regions = registry.data.regions
        for code, (cx, cy) in geom.labels.items():
            name = regions[code].name if code in regions else ""
            parts.append(f'<text x="{cx:.0f}" y="{cy:.0f}" class="lbl">{esc(name)}</text>')
    for r in rings:
        parts.append(f'<path d="{shape_path(geom, r)}" class="drawn">'
                     '<title>手绘区域</title></path>')
    parts.append("</svg>")
    return "".join(parts)
