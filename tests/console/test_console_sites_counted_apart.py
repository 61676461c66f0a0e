"""Persons, grids, sites and loudspeakers are four counts, everywhere (issue 17 item 2, issue
19 item 2): a geological warning over the whole sample county reaches the grids that hold a
hazard point and the hazard points' monitors. The sites are tracked like grids; on main the
board's 网格, the home page's 网格 x/N, the API view's `grids` and the printed record's totals
counted them among the grids (the print put them in a township called 未知), and the record
named a site's person's place by its id and their role "site".
"""

from __future__ import annotations

import re

import msgspec
from console_kit import sign_in

from tests.engine.helpers import cap_alert
from warnbus.domain.models import Alert, Area, Category, Severity
from warnbus.domain.sites import SITE_ROLE_ZH
from warnbus.domain.steps import Step
from warnbus.flow.credentials import ENGINE
from warnbus.flow.filed import filed_rows, step_zh
from warnbus.flow.intake import accept
from warnbus.flow.record import alert_view, record_rows, summary
from warnbus.web.console.board import snapshot
from warnbus.web.console.record_print import TOTALS_HEAD

#: The sample county's box (DESIGN section 9), as a CAP polygon (lat, lon).
COUNTY = ((29.30, 112.30), (29.30, 112.90), (29.80, 112.90), (29.80, 112.30), (29.30, 112.30))


def geological() -> Alert:
    base = cap_alert(identifier="43062300000000_20260715053000_geo", severity=Severity.SEVERE,
                     level_zh="橙色")
    info = msgspec.structs.replace(
        base.infos[0], event="地质灾害气象风险预警", categories=(Category.GEO,),
        areas=(Area("华容县全境", polygons=(COUNTY,)),), headline="华容县地质灾害气象风险橙色预警")
    return msgspec.structs.replace(base, infos=(info,))


def _cells(page: str, table: str) -> list[list[str]]:
    """The rows of the table with class `table` on a page, as text cells."""
    body = page.split(f'class="{table}"')[1].split("</table>")[0]
    return [re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", tr) for tr in body.split("<tr")[1:]]


async def test_sites_are_counted_apart_from_grids_everywhere(web) -> None:  # type: ignore[no-untyped-def]
    client, h = web
    ctx = h.ctx
    res = await accept(ctx, geological(), ENGINE)
    await h.drain()
    cid = res.campaign_id
    keys = await ctx.store.grids(cid)
    sites = {k for k in keys if ctx.registry.is_site(k)}
    grids = set(keys) - sites
    assert sites and grids, "the warning reaches both"
    assert all(ctx.registry.data.sites[s].kind.value == "hazard_point" for s in sites)

    # The board: 网格 counts grids, the sites have their own group; each adds up.
    snap = await snapshot(ctx, cid)
    counts = snap["counts"]
    assert counts["g_total"] == len(grids) and counts["site_total"] == len(sites)
    assert counts["g_calling"] == len(grids) and counts["site_calling"] == len(sites)
    assert sum(snap["grid_counts"].values()) == len(grids)
    assert sum(snap["site_counts"].values()) == len(sites)
    await sign_in(client, "dora")
    page = await (await client.get(f"/console/campaigns/{cid}")).text()
    assert f'<b data-c="site_total">{len(sites)}</b>隐患点/水库/危险区等（处）' in page
    assert f'<b data-c="g_total">{len(grids)}</b>网格' in page
    # The home page's live card.
    home = await (await client.get("/console/")).text()
    assert f"网格 0/{len(grids)} 已结束" in home and f"隐患点等 0/{len(sites)} 处已结束" in home
    # The API's view: `grids` and `sites` apart (its counts are both's, as documented).
    view = await alert_view(ctx, res.alert_id)
    assert sum(view["grids"].values()) == len(grids)
    assert sum(view["sites"].values()) == len(sites)
    assert view["counts"]["pending"] == len(keys)
    # The API's summary: per township are grids; the sites apart.
    summ = await summary(ctx, res.alert_id)
    assert sum(t["grids"] for t in summ["per_township"].values()) == len(grids)
    assert summ["sites"]["sites"] == len(sites)

    # The printed record's totals: a column group each, no township "未知".
    for _ in range(8):  # to the end of the orange chain (未叫醒 at 1,800 s)
        h.clock.advance(300)
        await h.drain()
    page = await (await client.get(f"/console/campaigns/{cid}/print")).text()
    rows = _cells(page, "small totals")
    head, total = rows[0], next(r for r in rows if r[0] == "合计")
    assert tuple(head) == TOTALS_HEAD
    col = dict(zip(head, total, strict=True))
    assert int(col["网格（个）"]) == len(grids)
    assert int(col["隐患点/水库/危险区等（处）"]) == len(sites)
    assert not any(r[0] == "未知" for r in rows)
    towns = [r for r in rows[1:] if r[0] != "合计"]
    assert sum(int(r[6]) for r in towns) == len(sites)
    # Every site ended its chain one way or another: confirmed or 未叫醒, counted as sites.
    assert int(col["已确认（处）"]) + int(col["未叫醒（处）"]) == len(sites)

    # The record names a site's person's place and role in words.
    filed = filed_rows(ctx, await record_rows(ctx, res.alert_id), await ctx.store.audit(cid), {})
    site_names = {ctx.registry.data.sites[s].name for s in sites}
    at_sites = [r for r in filed.rows if r["网格"] in site_names]
    assert at_sites
    words = set(SITE_ROLE_ZH.values())
    assert all(r["角色"] and set(r["角色"].split("、")) <= words for r in at_sites), at_sites[:3]
    assert all(r["乡镇"] and r["村/社区"] for r in at_sites)
    assert not any(r["角色"] == "site" for r in filed.rows)
    assert any(e["网格"] in site_names for e in filed.escalations)


def test_a_sites_last_step_calls_its_grid_officer() -> None:
    """A site's chain goes past a grid's: its last level calls the officer of the site's grid
    (`SITE_CHAIN_ORDER`); a grid's chain has no such level to name it by."""
    assert step_zh(str(int(Step.chain(7)))) == "升级至网格员"
    assert step_zh(str(int(Step.chain(5)))) == "升级至乡镇带班领导"
