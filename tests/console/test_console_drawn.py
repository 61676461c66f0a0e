"""A target area drawn on the map: previewed with the real Matcher, checked, drafted, shown
on the approval page and the record, and published as a CAP <polygon>."""

from __future__ import annotations

import pytest
import shapely
from console_kit import red_form, sign_in

from rules.match import Matcher
from tests.engine.helpers import Harness
from warnbus.domain.models import Area, SiteKind, SiteRole
from warnbus.feeds.capxml import alert_to_cap
from warnbus.web.console.drafts import Drafts
from warnbus.web.console.drawn import cap_text

# A slanted quadrilateral in the middle of the sample county (29.30–29.80 N, 112.30–112.90 E).
RING = ((29.52, 112.52), (29.50, 112.63), (29.58, 112.66), (29.61, 112.55), (29.52, 112.52))
TOWN = "430623101000"
#: Whom a rainstorm calls at sites (rules/sites.toml).
RAINSTORM_CALLS = {SiteKind.RESERVOIR: SiteRole.PATROLLER, SiteKind.POND: SiteRole.PATROLLER,
                   SiteKind.DANGER_ZONE: SiteRole.FLOOD_WARDEN}


def drawn_form(csrf: str, ring: str = cap_text(RING), **extra: str) -> dict[str, str]:
    """A red warning whose area is the drawn polygon (no township ticked unless given)."""
    return red_form(csrf, **{"area": "", "polygon": ring, **extra})


def matched(h: Harness, *areas: Area) -> list[str]:
    """What the rules' Matcher finds for these areas, on the engine's registry."""
    return sorted(Matcher(h.ctx.registry.data).match_areas(areas).grids)


async def test_preview_of_a_drawn_area_is_what_the_matcher_finds(web) -> None:  # type: ignore[no-untyped-def]
    client, h = web
    s = await sign_in(client, "dora")
    want = matched(h, Area("drawn", polygons=(RING,)))
    assert 10 < len(want) < 200  # some grids, not the county
    r = await client.post("/console/compose/preview", data=drawn_form(s.csrf))
    assert r.status == 200, await r.text()
    got = await r.json()
    assert sorted(got["grids"]) == want and got["preview"]["grids"] == len(want)
    reg = h.ctx.registry
    # The people of the sites in the area that a rainstorm calls (rules/sites.toml) count too,
    # each person once.
    shape = shapely.Polygon([(lon, lat) for lat, lon in RING])
    inside = [x for x in reg.data.sites.values() if x.kind in RAINSTORM_CALLS and shape.intersects(
        shapely.Polygon([(b, a) for a, b in x.polygon]) if x.polygon else
        shapely.Point(x.point[::-1] if x.point else ()))]
    called = {p.person for x in inside for p in x.people if p.role is RAINSTORM_CALLS[x.kind]}
    assert inside and got["preview"]["sites"] == len(inside)
    assert got["preview"]["persons"] == len({reg.data.grids[g].primary for g in want} | called)
    # With a township ticked too, the alert reaches the union (two <area> blocks).
    r = await client.post("/console/compose/preview", data=drawn_form(s.csrf, area=TOWN))
    union = sorted(set(want) | set(matched(h, Area("town", geocodes=(("TOWNSHIP", TOWN),)))))
    assert sorted((await r.json())["grids"]) == union and len(union) > len(want)


BAD = [
    ("29.5,112.5 29.5,112.6 29.6,112.6", "未闭合"),
    ("29.5,112.5 29.5,112.6 29.5,112.6 29.5,112.5", "至少需要3个不同的顶点"),
    ("29.5,112.5 29.6,112.6 29.5,112.6 29.6,112.5 29.5,112.5", "自相交"),  # a bow tie
    ("95,112.5 29.5,112.6 29.6,112.6 95,112.5", "超出范围"),
    ("112.5,29.5 112.6,29.5 112.6,29.6 112.5,29.5", "超出范围"),  # lon,lat swapped
    ("39.9,116.3 39.9,116.5 40.0,116.5 39.9,116.3", "不在本县范围内"),  # Beijing
    ("29.5;112.5 29.5,abc", "格式错误"),
    (" ".join(f"29.5,{112.3 + i / 1000}" for i in range(250)), "最多200个顶点"),
    ("29.85,112.5 29.85,112.6 29.9,112.6 29.85,112.5", "没有需要通知的网格"),  # north of it
]


@pytest.mark.parametrize(("ring", "message"), BAD, ids=[m for _r, m in BAD])
async def test_bad_polygons_are_refused_with_a_message(web, ring: str, message: str) -> None:  # type: ignore[no-untyped-def]
    client, h = web
    s = await sign_in(client, "dora")
    r = await client.post("/console/compose/preview", data=drawn_form(s.csrf, ring))
    assert r.status == 422
    assert message in (await r.json())["errors"]["polygon"]
    r = await client.post("/console/compose", data=drawn_form(s.csrf, ring, level="blue"),
                          headers={"Accept": "text/html"}, allow_redirects=False)
    page = await r.text()
    assert r.status == 422 and message in page and 'id="compose"' in page
    assert await Drafts(h.ctx.redis).recent() == []  # nothing drafted, nothing published


async def test_no_area_at_all_names_both_ways(web) -> None:  # type: ignore[no-untyped-def]
    client, _h = web
    s = await sign_in(client, "dora")
    r = await client.post("/console/compose/preview", data=drawn_form(s.csrf, ""))
    assert r.status == 422 and "在地图上绘制" in (await r.json())["errors"]["areas"]


async def test_drawn_area_is_drafted_approved_shown_and_published(web) -> None:  # type: ignore[no-untyped-def]
    client, h = web
    s = await sign_in(client, "dora")
    r = await client.post("/console/compose", data=drawn_form(
        s.csrf, area=TOWN, polygon_desc="  沿河 低洼区 "), allow_redirects=False)
    assert r.status == 303 and "/drafts/" in r.headers["Location"]
    draft_id = r.headers["Location"].split("/drafts/")[1].split("?")[0]
    draft = await Drafts(h.ctx.redis).get(draft_id)
    assert draft is not None and draft.form.polygon == RING
    assert draft.form.polygon_desc == "沿河 低洼区" and draft.form.areas == (TOWN,)
    # The approval page: the drawn area on the small map, its name and CAP coordinates.
    s = await sign_in(client, "alan")
    r = await client.get(f"/console/drafts/{draft_id}", headers={"Accept": "text/html"})
    page = await r.text()
    assert 'id="draft-map"' in page and 'class="drawn"' in page
    assert "沿河 低洼区（地图绘制，4个顶点）" in page and cap_text(RING) in page
    r = await client.post(f"/console/drafts/{draft_id}/approve", data={"_csrf": s.csrf},
                          allow_redirects=False)
    cid = r.headers["Location"].split("/campaigns/")[1].split("?")[0]
    # Published: the alert has the township and the polygon as two areas; CAP carries it.
    published = await Drafts(h.ctx.redis).get(draft_id)
    assert published is not None and published.state == "published"
    alert = await h.ctx.alert(cid, published.alert_id)
    assert alert is not None
    (info,) = alert.infos
    assert [a.desc for a in info.areas] == ["章华镇", "沿河 低洼区"]
    assert info.areas[1].polygons == (RING,) and not info.areas[1].geocodes
    cap = alert_to_cap(alert).decode()
    assert f"<polygon>{' '.join(f'{la},{lo}' for la, lo in RING)}</polygon>" in cap
    assert "<areaDesc>沿河 低洼区</areaDesc>" in cap
    await h.drain()
    want = sorted(set(matched(h, *info.areas)))
    reached = await h.ctx.store.grids(cid)  # with the sites in it, tracked beside the grids
    assert sorted(g for g in reached if not h.ctx.registry.is_site(g)) == want  # the union
    # The board and the printed record show the polygon; an update starts from it.
    r = await client.get(f"/console/campaigns/{cid}", headers={"Accept": "text/html"})
    assert 'class="drawn"' in await r.text()
    r = await client.get(f"/console/campaigns/{cid}/print")
    page = await r.text()
    assert "沿河 低洼区（4个顶点）" in page and "29.52,112.52 29.5,112.63" in page
    s = await sign_in(client, "dora")
    r = await client.get(f"/console/compose?campaign={cid}", headers={"Accept": "text/html"})
    page = await r.text()
    assert f'name="polygon" id="polygon" value="{cap_text(RING)}"' in page
    assert 'value="沿河 低洼区"' in page
