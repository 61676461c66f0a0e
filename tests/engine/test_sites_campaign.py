"""Sites are targets like grids (issue 19, item 2), over the sample county on a real Redis:
a geological warning calls the monitors of the hazard points inside its polygon and nobody
else's; a flood warning calls the patrollers of the reservoir in its circle, not the other's;
a site closes when one of its people confirms and otherwise escalates along its own chain."""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgspec
import pytest_asyncio
import shapely

from tests.engine.helpers import T0, Harness, cap_alert, make_harness
from warnbus.domain.models import (
    AckVia,
    Alert,
    Area,
    Category,
    Circle,
    DeliveryKind,
    Level,
    Role,
    Severity,
    SiteKind,
    SiteRole,
)
from warnbus.domain.states import GridState
from warnbus.domain.steps import Step
from warnbus.flow.acks import record_ack
from warnbus.flow.credentials import ENGINE
from warnbus.flow.intake import accept

#: The geohazard sample's polygon (../shared/data/cap/cn/geohazard-orange.xml): 东山, 插旗.
HILLS = ((29.40, 112.70), (29.40, 112.85), (29.55, 112.85), (29.55, 112.70), (29.40, 112.70))
#: The flood sample's circle (flood-orange.xml): 20 km around the 治河渡 gauge.
GAUGE = Circle(29.52, 112.60, 20.0)
NEAR, FAR = "rs-430623106205-01", "rs-430623107201-04"  # the two reservoirs


@pytest_asyncio.fixture
async def h(redis_url: str) -> AsyncIterator[Harness]:
    harness = await make_harness(redis_url)
    yield harness
    await harness.app.close()


def warning(event: str, category: Category, area: Area, level_zh: str = "橙色") -> Alert:
    base = cap_alert(identifier=f"43062300000000_20260715053000_{event}", severity=Severity.SEVERE,
                     level_zh=level_zh)
    info = msgspec.structs.replace(base.infos[0], event=event, categories=(category,),
                                   areas=(area,), headline=f"华容县{event}{level_zh}预警")
    return msgspec.structs.replace(base, infos=(info,))


def first_wave(h: Harness) -> set[str]:
    return {d.target_id for d in h.sent() if d.kind is DeliveryKind.WARNING}


def people(h: Harness, site_id: str, role: SiteRole) -> set[str]:
    return {p.person for p in h.ctx.registry.data.sites[site_id].people if p.role is role}


async def test_geological_warning_calls_the_monitors_inside_the_polygon_only(h: Harness) -> None:
    alert = warning("地质灾害气象风险预警", Category.GEO,
                    Area("东山镇、插旗镇山区", polygons=(HILLS,)))
    res = await accept(h.ctx, alert, ENGINE)
    await h.drain()
    shape = shapely.Polygon([(lon, lat) for lat, lon in HILLS])
    points = [s for s in h.ctx.registry.data.sites.values() if s.kind is SiteKind.HAZARD_POINT]
    inside = {s.id for s in points if s.point and shape.contains(shapely.Point(s.point[::-1]))}
    assert 0 < len(inside) < len(points)  # some lie outside the polygon: they must stay quiet
    called = first_wave(h)
    for s in points:
        monitors = people(h, s.id, SiteRole.MONITOR)
        assert (monitors <= called) if s.id in inside else not (monitors & called), s.id
    # Only hazard points: no patroller of a reservoir or pond, though one lies in the polygon.
    water = [s for s in h.ctx.registry.data.sites.values()
             if s.kind in (SiteKind.RESERVOIR, SiteKind.POND)]
    assert not {p.person for s in water for p in s.people} & called
    assert set(await h.ctx.store.grids(res.campaign_id)) >= inside
    # The reply counts persons, grids and sites apart.
    assert res.counts["sites"] == len(inside)
    assert res.counts["persons"] + res.counts["loudspeakers"] == res.targets
    assert res.counts["persons"] == len({t for t in called if not t.startswith("area:")})


async def test_flood_warning_calls_the_patrollers_of_the_reservoir_in_its_circle(
        h: Harness) -> None:
    res = await accept(h.ctx, warning("洪水", Category.ENV, Area("治河渡站周边20公里",
                                                             circles=(GAUGE,))), ENGINE)
    await h.drain()
    called = first_wave(h)
    assert people(h, NEAR, SiteRole.PATROLLER) <= called
    assert not people(h, FAR, SiteRole.PATROLLER) & called
    # The reservoir's own responsible person is not a role a flood warning calls.
    assert not people(h, NEAR, SiteRole.RESPONSIBLE) & called
    # Danger zones on the river bank: their evacuation leads.
    assert people(h, "dz-430623104207-04", SiteRole.EVACUATION_LEAD) <= called
    sites = set(await h.ctx.store.grids(res.campaign_id)) & set(h.ctx.registry.data.sites)
    assert NEAR in sites and FAR not in sites
    assert res.counts["sites"] == len(sites) and res.counts["grids"] > 0


async def test_a_site_closes_on_its_confirmation_or_escalates_along_its_chain(
        h: Harness) -> None:
    alert = warning("地质灾害气象风险预警", Category.GEO,
                    Area("东山镇、插旗镇山区", polygons=(HILLS,)))
    res = await accept(h.ctx, alert, ENGINE)
    await h.drain()
    cid, reg = res.campaign_id, h.ctx.registry
    grids = await h.ctx.store.grids(cid)
    mine = sorted(k for k in grids if reg.is_site(k))
    answered, silent = mine[0], mine[1]
    monitor = next(iter(people(h, answered, SiteRole.MONITOR)))
    await record_ack(h.ctx, cid, monitor, AckVia.SMS)
    assert (await h.ctx.store.grids(cid))[answered].state is GridState.CONFIRMED
    # Nobody answers for the other: redials, then its own chain (rules/sites.toml, orange:
    # the officer of its grid, the village head, the township's duty officer).
    policy = h.ctx.rules.site_policy_for(Level.ORANGE)
    officer = reg.data.grids[reg.data.sites[silent].grid or ""].primary
    for offset in (*policy.redial_times(), *policy.escalation_times()):
        h.clock.set(T0.timestamp() + offset)
        await h.drain()
    to_officer = [d for d in h.sent() if d.kind is DeliveryKind.ESCALATION
                  and d.target_id == officer and d.step == int(Step.chain(7))]
    assert to_officer and reg.data.sites[silent].name in to_officer[0].text
    h.clock.set(T0.timestamp() + (policy.unreached_after() or 0) + 1)
    await h.drain()
    states = await h.ctx.store.grids(cid)
    assert states[silent].state is GridState.UNREACHED
    assert states[answered].state is GridState.CONFIRMED
    township = reg.township_of(reg.data.sites[silent].village) or ""
    duty = reg.duty.on_duty(township, Role.TOWNSHIP_DUTY, T0.timestamp() + 1500)
    assert any(d.target_id == duty and d.step == int(Step.chain(3)) for d in h.sent())
