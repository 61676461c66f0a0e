"""An offline map: the registry's grid polygons drawn as SVG paths (no tiles, no network).

Geometry is projected once per registry (equirectangular, scaled by cos(latitude) so the
county keeps its shape) and cached; a map is then one string join with per-grid classes.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from warnbus.registry import Registry
from warnbus.web.console.html import esc

WIDTH = 1000.0
PAD = 8.0


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


_cache: dict[int, MapGeometry] = {}


def geometry(registry: Registry) -> MapGeometry:
    hit = _cache.get(id(registry))
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

    def xy(lat: float, lon: float) -> tuple[float, float]:
        return PAD + (lon - lon0) * kx * scale, PAD + (lat1 - lat) * scale

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
    )
    _cache[id(registry)] = geom
    return geom


def svg(registry: Registry, states: Mapping[str, str] | None = None, *,
        focus: str | None = None, selected: Collection[str] = (), region_names: bool = True,
        only: Collection[str] | None = None) -> str:
    """The map; `states` colours grids (class `s-<state>`), `focus` zooms to regions.

    `focus` is one region code or several, comma-separated (the map shows all of them).

    Grids not in `states` are drawn as outside the alert (class `s-none`).
    """
    geom = geometry(registry)
    x0, y0, x1, y1 = 0.0, 0.0, geom.width, geom.height
    boxes = [geom.boxes[c] for c in (focus or "").split(",") if c in geom.boxes]
    if boxes:
        bx0, by0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
        bx1, by1 = max(b[2] for b in boxes), max(b[3] for b in boxes)
        m = max(bx1 - bx0, by1 - by0) * 0.04 + 2
        x0, y0, x1, y1 = bx0 - m, by0 - m, bx1 + m, by1 + m
    parts = [f'<svg class="map" viewBox="{x0:.0f} {y0:.0f} {x1 - x0:.0f} {y1 - y0:.0f}" '
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
    parts.append("</svg>")
    return "".join(parts)
