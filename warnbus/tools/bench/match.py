"""`match`: polygon, circle and geocode matching against a generated registry.

Times `rules.match.Matcher.match(alert)`, the call the engine makes, per kind of area. The
shapes are placed from the registry's own extent, so the same cases work on one county
(`--quick`) and on the 100-county province.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from rules.match import Matcher
from warnbus.domain.models import Alert, RegistryData
from warnbus.registry import load_registry
from warnbus.tools.bench.alerts import (
    circle_area,
    geocode_area,
    irregular_ring,
    polygon_area,
    red_alert,
)
from warnbus.tools.bench.env import BenchEnv
from warnbus.tools.bench.fanout import PROVINCE_CODE, SAMPLE_COUNTY_CODE

STORM_RADIUS_DEG = 0.35  # a storm cell's polygon: about 80 km across, one to three counties
CIRCLE_KM = 30.0


def cases(data: RegistryData) -> dict[str, Alert]:
    """The areas timed, by kind: the headline kinds first, then the extremes."""
    lats = [p[0] for g in data.grids.values() for p in g.polygon]
    lons = [p[1] for g in data.grids.values() for p in g.polygon]
    lat, lon = (min(lats) + max(lats)) / 2, (min(lons) + max(lons)) / 2
    extent = min(max(lats) - min(lats), max(lons) - min(lons))
    areas = {
        "polygon": polygon_area(irregular_ring(lat, lon, STORM_RADIUS_DEG), "storm polygon"),
        "circle": circle_area(lat, lon, CIRCLE_KM),
        "geocode": geocode_area(SAMPLE_COUNTY_CODE, "one county"),
        # Most of the registry inside one polygon: the many-candidates path of the matcher.
        "polygon_wide": polygon_area(irregular_ring(lat, lon, 0.45 * extent), "wide polygon"),
        "geocode_township": geocode_area(SAMPLE_COUNTY_CODE + "101000", "one township"),
        "geocode_province": geocode_area(PROVINCE_CODE, "the whole registry"),
    }
    return {kind: red_alert(f"bench-match-{kind}", area) for kind, area in areas.items()}


async def run_match(counties: int, runs: int, reps: int, env: BenchEnv
                    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    data = load_registry(env.registry(counties)).data
    t0 = time.perf_counter()
    matcher = Matcher(data)
    index_s = time.perf_counter() - t0
    alerts = cases(data)
    grids = {kind: len(matcher.match(alert).grids) for kind, alert in alerts.items()}  # warm-up
    samples = []
    for _ in range(runs):
        ms: dict[str, float] = {}
        for kind, alert in alerts.items():
            times = []
            for _ in range(reps):
                t = time.perf_counter()
                matcher.match(alert)
                times.append(time.perf_counter() - t)
            ms[kind] = round(1000 * statistics.median(times), 3)
        samples.append({"grids": len(data.grids), "match_ms": ms})
    fixed = {"title": f"Matcher.match per kind of area, median of {reps} calls per run",
             "match_grids": grids, "index_build_s": round(index_s, 3), "reps": reps}
    return samples, fixed
