"""Match an alert at acceptance: off the event loop when it is large, then check what it reaches.

Measured in the sample county (best of five): one area costs 0.08 ms (a small polygon) to 0.5
ms (a county-wide one), and about 0.45 ms per 1,000 polygon vertices (44 ms for the 100,000 of
a national feed's polygon, most of it in GEOS, which lets go of the GIL); the match also says
which areas hold no grid, so the registry check below matches nothing again. A 1,000-area
alert held the event loop for a second, stalling every webhook and ack of that process. Such
alerts are matched in a worker thread; a small one stays on the loop, where it costs about
what the thread hop would (0.03 to 0.1 ms).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

import structlog

from warnbus.domain.models import Alert, Area, MsgType
from warnbus.flow.credentials import Credential, check_villages
from warnbus.flow.ports import MatchLike
from warnbus.ingest.checks import OutsideRegistryError
from warnbus.runtime import metrics
from warnbus.runtime.context import Context

log = structlog.get_logger("warnbus.flow.matching")
T = TypeVar("T")

# An alert past any of these is matched in a worker thread (see the module docstring).
OFF_LOOP_AREAS = 4
OFF_LOOP_POINTS = 1000  # polygon vertices, geocodes, and 72 per circle
OFF_LOOP_GRIDS = 20_000  # in a registry this large, one wide area costs tens of ms


@dataclass(frozen=True)
class AcceptWarning:
    """Something the sender of an accepted alert should fix (the 202 body's `warnings`)."""

    code: str  # area_outside_registry
    field: str  # the CAP path, e.g. info[0].area[2]
    message: str


def costly(ctx: Context, alert: Alert) -> bool:
    """Whether matching `alert` could hold the event loop long enough to matter."""
    if len(ctx.registry.data.grids) > OFF_LOOP_GRIDS:
        return True
    areas = points = 0
    for info in alert.infos:
        for a in info.areas:
            areas += 1
            points += sum(map(len, a.polygons)) + len(a.geocodes) + 72 * len(a.circles)
    return areas > OFF_LOOP_AREAS or points > OFF_LOOP_POINTS


async def off_loop(ctx: Context, alert: Alert, work: Callable[[], T]) -> T:
    """Run `work` (matching `alert`, and what goes with it) in a worker thread when the alert
    is large, else here. The registry and the rules are read-only (the matcher's cache of tag
    masks is filled with the same value by whoever comes first), so threads may share them."""
    if costly(ctx, alert):
        return await asyncio.to_thread(work)
    return work()


async def match_alert(ctx: Context, alert: Alert) -> MatchLike:
    """`ctx.rules.match(alert)`, off the event loop when the alert is large."""
    return await off_loop(ctx, alert, lambda: ctx.rules.match(alert))


@dataclass(frozen=True)
class Reached:
    match: MatchLike
    warnings: tuple[AcceptWarning, ...]
    targets: int
    #: What the targets are: persons, grids, sites and loudspeakers, counted separately.
    counts: Mapping[str, int] = field(default_factory=dict)


def reach_counts(ctx: Context, m: MatchLike, *, drill: bool) -> dict[str, int]:
    """Persons (grid officers and sites' people, each once), grids, sites and loudspeakers
    the first wave calls (no loudspeakers in a drill). Cheap: targets are counted, not built."""
    if not (m.grids or m.sites):
        return {"persons": 0, "grids": 0, "sites": 0, "loudspeakers": 0}
    data = ctx.registry.data
    persons = ctx.rules.count_targets(data, m.grids, (), drill=drill, sites=m.sites,
                                      hazards=m.hazards)
    speakers = 0 if drill else sum(1 for d in set(m.devices) if d in data.devices)
    return {"persons": persons, "grids": len(m.grids), "sites": len(m.sites),
            "loudspeakers": speakers}


async def reach(ctx: Context, alert: Alert, cred: Credential) -> Reached:
    """Match an Alert or Update (off the loop when large); refuse it when it reaches a village
    outside the credential's regions (403) or no grid of the registry (422); count targets."""

    def work() -> Reached:
        m = ctx.rules.match(alert)
        check_villages(cred, m.villages)
        warnings = check_registry(ctx, alert, m)
        counts = reach_counts(ctx, m, drill=alert.is_drill)
        return Reached(m, warnings, counts["persons"] + counts["loudspeakers"], counts)

    return await off_loop(ctx, alert, work)


LISTED = 10  # areas named in one message; the rest are counted


def check_registry(ctx: Context, alert: Alert, match: MatchLike) -> tuple[AcceptWarning, ...]:
    """Refuse an Alert or Update none of whose areas holds a grid of the registry; warn of
    the areas that hold none when others do.

    An alert for other regions (a province feed's alert for another county) would reach
    nobody: accepting it with 0 targets hides the mistake of a wrong code. Refused (422
    `outside_registry`), the sender learns at once, and a feed poller records it as not ours.
    One mistyped area among good ones must not delay the warning to the others: accepted,
    with a warning naming it. "Holds a grid" is geography only: an area whose grids the
    hazard's tags exclude (地质灾害 → hazard points) is inside the registry.
    """
    areas = sum(len(info.areas) for info in alert.infos)
    if not areas:
        metrics.ALERTS.labels(alert.msg_type.value, "outside_registry").inc()
        raise OutsideRegistryError(
            "the alert names no area (no <area> in any <info>), so no grid of the registry "
            "lies in it; list the areas it warns", "info")
    # Judged in the same pass as the match (each area once), not by matching each again.
    outside = [(f"info[{i}].area[{j}]", alert.infos[i].areas[j]) for i, j in match.empty_areas]
    if not outside:
        return ()
    if len(outside) == areas and not match.grids and not match.devices:
        listed = "; ".join(f"{path} {_describe(area)}" for path, area in outside[:LISTED])
        more = len(outside) - LISTED
        tail = ""
        if alert.msg_type is MsgType.UPDATE:
            tail = ("; the campaign it updates carries on with its earlier areas (send a "
                    "Cancel to end it)")
        metrics.ALERTS.labels(alert.msg_type.value, "outside_registry").inc()
        log.info("alert outside the registry", alert_id=alert.alert_id,
                 msg_type=alert.msg_type.value, areas=len(outside))
        raise OutsideRegistryError(
            f"no grid of the registry lies in any area of this alert: {listed}"
            + (f"; and {more} more area(s)" if more > 0 else "")
            + f". This engine serves {_coverage(ctx)}{tail}", "info.area")
    return tuple(
        AcceptWarning("area_outside_registry", path,
                      f"{path}: no grid of the registry lies in this area: {_describe(area)}; "
                      "the alert goes to the grids of its other areas")
        for path, area in outside)


def _describe(area: Area) -> str:
    """An area as a sender would recognise it: its codes or shapes, then its areaDesc."""
    parts = []
    if area.geocodes:
        values = [v for _, v in area.geocodes[:5]]
        more = ", …" if len(area.geocodes) > 5 else ""
        parts.append(f"geocode{'s' if len(area.geocodes) > 1 else ''} {', '.join(values)}{more}")
    for ring in area.polygons[:2]:
        lats, lons = [p[0] for p in ring], [p[1] for p in ring]
        parts.append(f"polygon lat {min(lats):g}..{max(lats):g}, lon {min(lons):g}..{max(lons):g}")
    for c in area.circles[:2]:
        parts.append(f"circle {c.lat:g},{c.lon:g} {c.radius_km:g} km")
    if not parts:
        parts.append("no polygon, circle or geocode")
    desc = " ".join(area.desc.split())
    desc = desc if len(desc) <= 40 else desc[:39] + "…"
    return f"{', '.join(parts)} ({desc})" if desc else ", ".join(parts)


def _coverage(ctx: Context) -> str:
    regions = ctx.registry.data.regions
    tops = sorted((r for r in regions.values() if r.parent is None or r.parent not in regions),
                  key=lambda r: r.code)
    if not tops:
        return "no region (the registry is empty)"
    named = ", ".join(f"{r.code} {r.name}" for r in tops[:3])
    return named + (f" and {len(tops) - 3} more regions" if len(tops) > 3 else "")
