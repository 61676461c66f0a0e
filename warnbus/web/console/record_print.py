"""The printed 叫应 record a county office files: in Chinese, every time in Beijing time (said
at the top), outcomes in words, with signature lines.

Issuing unit, the alert's own text, its level, who drafted and approved each message; totals
per township with persons, grids, sites and loudspeakers each counted apart (never summed); the
未叫醒 list; escalations; door-to-door orders; manual confirmations with reason and user; then
each person's calls (`flow.filed`).
"""

from __future__ import annotations

from collections import Counter, defaultdict

from aiohttp import web

from warnbus.domain.doors import DoorResult
from warnbus.domain.meta import CampaignMeta
from warnbus.domain.models import AckVia, TargetKind
from warnbus.domain.states import GridState
from warnbus.flow.feedback_view import feedback_rows
from warnbus.flow.filed import COLUMNS, ZONE_ZH, bj, filed_rows
from warnbus.flow.record import record_rows, unreached
from warnbus.runtime.context import Context
from warnbus.web.console import html, svgmap
from warnbus.web.console.base import console, page, requires
from warnbus.web.console.board import campaign_meta, drawn_areas, ended_as, state_zh
from warnbus.web.console.feedback import rows_html as feedback_rows_html
from warnbus.web.console.html import esc
from warnbus.web.console.records import stats_table, tallies

#: The printed table leaves out what the headings above it already say.
PRINT_COLUMNS = tuple(c for c in COLUMNS if c not in ("乡镇", "是否确认"))


#: The totals' columns: persons, grids, sites and loudspeakers, each counted on its own.
TOTALS_HEAD = ("乡镇", "叫应对象（人）", "已确认（人）", "网格（个）", "已确认网格", "未叫醒网格",
               "隐患点/水库/危险区等（处）", "已确认（处）", "未叫醒（处）", "应急广播（个）")


async def township_totals(ctx: Context, cid: str) -> list[list[str]]:
    """Per township: persons (confirmed), grids (confirmed, 未叫醒), sites (confirmed,
    未叫醒), loudspeakers: apart, never summed."""
    reg = ctx.registry
    persons: Counter[str] = Counter()
    speakers: Counter[str] = Counter()
    acked: Counter[str] = Counter()
    acks = await ctx.store.acks(cid)
    for t in (await ctx.store.targets(cid)).values():
        town = reg.township_of(t.region) or "?"
        if t.kind is TargetKind.PERSON:
            persons[town] += 1
            acked[town] += t.id in acks
        elif t.kind is TargetKind.DEVICE:
            speakers[town] += 1
    grids: dict[str, Counter[GridState]] = defaultdict(Counter)
    sites: dict[str, Counter[GridState]] = defaultdict(Counter)
    for g in (await ctx.store.grids(cid)).values():
        place = reg.data.grids.get(g.grid_id) or reg.data.sites.get(g.grid_id)
        town = (reg.township_of(place.village) if place else None) or "?"
        (sites if reg.is_site(g.grid_id) else grids)[town][g.state] += 1
    towns = sorted(set(persons) | set(grids) | set(sites) | set(speakers))
    rows = []
    for code in [*towns, ""]:
        keep = [code] if code else towns
        gs: Counter[GridState] = sum((grids[c] for c in keep), Counter())
        ss: Counter[GridState] = sum((sites[c] for c in keep), Counter())
        rows.append([
            esc(reg.data.regions[code].name if code in reg.data.regions else ("合计" if not code
                                                                             else "未知")),
            str(sum(persons[c] for c in keep)), str(sum(acked[c] for c in keep)),
            *_closed(gs), *_closed(ss), str(sum(speakers[c] for c in keep))])
    return rows


def _closed(states: Counter[GridState]) -> tuple[str, str, str]:
    """(in all, confirmed by someone of the chain, 未叫醒) of grids or of sites."""
    return (str(sum(states.values())),
            str(states[GridState.CONFIRMED] + states[GridState.TAKEN_OVER]),
            str(states[GridState.UNREACHED]))


def drawn_html(shapes: list[tuple[str, tuple[tuple[float, float], ...]]]) -> str:
    """The drawn areas of the alert: name, corners and CAP coordinates (up to 200)."""
    return "".join(
        f'<dt>多边形</dt><dd>{esc(desc)}（{len(ring) - 1}个顶点）<p class="msg">'
        + (esc(" ".join(f"{lat},{lon}" for lat, lon in ring)) if len(ring) <= 201
           else "坐标过多，略") + "</p></dd>" for desc, ring in shapes)


async def _header(ctx: Context, cid: str, meta: CampaignMeta, users: dict[str, str],
                  drawn: str = "") -> str:
    alert = await ctx.alert(cid, meta.latest_alert_id) if meta.latest_alert_id else None
    info = alert.primary_info() if alert else None
    prov = await ctx.store.console.provenance(cid)
    who = "；".join(
        f"{html.KIND_ZH.get(p.kind, p.kind)}：起草 {esc(users.get(p.drafted_by, p.drafted_by))}"
        + (f"，审批 {esc(users.get(p.approved_by, p.approved_by))}" if p.approved_by else "")
        + f"（{bj(p.at)}）" for p in sorted(prov.values(), key=lambda p: p.at))
    text = "\n".join(x for x in ((info.description or "") if info else "",
                                 (info.instruction or "") if info else "") if x)
    drill = '（演练）' if alert is not None and alert.is_drill else ""
    return (
        f'<p class="zone" id="zone">本记录中的时间均为{ZONE_ZH}。</p>'
        f'<dl class="kv"><dt>发布单位</dt><dd>{esc(info.sender_name if info else "")}</dd>'
        f'<dt>预警</dt><dd>{esc(meta.headline)}{drill} {html.level_badge(meta.level)}</dd>'
        f'<dt>灾种</dt><dd>{esc(meta.event)}</dd>'
        f'<dt>级别</dt><dd>{esc(html.LEVEL_ZH.get(meta.level or "", ""))}</dd>'
        f'<dt>预警内容</dt><dd><p class="msg">{esc(text) or "—"}</p></dd>'
        f'<dt>区域</dt><dd>{esc(meta.area)}</dd>{drawn}'
        f'<dt>开始</dt><dd>{bj(meta.created_at)}</dd>'
        f'<dt>状态</dt><dd>{state_zh(meta, ctx.clock.now())} '
        f'{bj(meta.ended_at or (meta.expires_at if ended_as(meta, ctx.clock.now()) else None))}'
        '</dd>'
        f'<dt>发布</dt><dd>{who or "外部预警源"}</dd></dl>')


def _table(head: tuple[str, ...] | list[str], rows: list[dict[str, str]] | list[list[str]],
           cls: str = "small") -> str:
    body = [[esc(r[c]) for c in head] if isinstance(r, dict) else r for r in rows]
    return html.table(list(head), body, cls)


def _door_result(r: DoorResult | None) -> str:
    """A door-to-door result as the board says it (已当面告知：note（time）), "" for none."""
    if r is None:
        return ""
    note = f"：{r.note}" if r.note else ""
    return esc(f"{html.DOOR_OUTCOME_ZH[r.outcome.value]}{note}（{bj(r.at)}）")


def _person_name(ctx: Context, pid: str) -> str:
    p = ctx.person(pid)
    return p.name if p else pid


@requires()
async def print_page(request: web.Request) -> web.Response:
    con = console(request)
    ctx = con.app.ctx
    cid = request.match_info["cid"]
    meta = await campaign_meta(ctx, cid)
    users = await con.users.displays()
    names = {c: r.name for c, r in ctx.registry.data.regions.items()}
    lost = await unreached(ctx, cid)
    lost_rows = [[esc(x["grid"]), esc(names.get(x["village"], x["village"])),
                  esc(x["officer_name"]), esc(x["officer_phone"]), esc(x["last_called_name"])]
                 for x in lost]
    audit = await ctx.store.audit(cid)
    filed = filed_rows(ctx, await record_rows(ctx, meta.root), audit, users)
    fb = await feedback_rows(ctx, cid)
    acks = await ctx.store.acks(cid)
    manual = [[esc(_person_name(ctx, a.person_id)), bj(a.at),
               esc(users.get(a.by or "", a.by or "")), esc(a.reason or "")]
              for a in sorted(acks.values(), key=lambda a: a.at) if a.via is AckVia.CONSOLE]
    results = await ctx.store.console.door_results(cid)
    # An order without a result waits for one while the warning runs; after, none will come.
    waiting = "未反馈（预警已结束）" if ended_as(meta, ctx.clock.now()) else "待反馈"
    doors = [[esc(ctx.registry.data.grids[g].name if g in ctx.registry.data.grids else g),
              bj(o.at), esc(users.get(o.by, o.by)), esc(o.to), _door_result(results.get(g))
              or waiting]
             for g, o in sorted((await ctx.store.console.door_orders(cid)).items(),
                                key=lambda x: x[1].at)]
    shapes = await drawn_areas(ctx, cid, meta)
    small = ""
    if shapes:
        small = ('<div class="card print-map">' + svgmap.svg(
            ctx.registry, selected=list(await ctx.store.grids(cid)),
            shapes=[r for _d, r in shapes], fit_shapes=True) + "</div>")
    body = (
        '<p class="noprint"><button type="button" data-print>打印</button></p>'
        + await _header(ctx, cid, meta, users, drawn_html(list(shapes))) + small
        + "<h2>分乡镇统计（人员、网格、隐患点等、应急广播分别计数）</h2>"
        + _table(list(TOTALS_HEAD), await township_totals(ctx, cid), "small totals")
        + "<h2>网格员确认用时</h2>" + stats_table(names, await tallies(ctx, cid, meta))
        + f"<h2>未叫醒名单（{len(lost)}）</h2>"
        + html.table(["网格", "村", "网格员", "电话", "最后呼叫"], lost_rows, "small")
        + f"<h2>升级记录（{len(filed.escalations)}）</h2>"
        + _table(["时间", "网格", "原责任人", "转交", "说明"], filed.escalations)
        + f"<h2>入户叫应（{len(doors)}）</h2>"
        + html.table(["网格", "安排时间", "安排人", "入户人", "结果"], doors, "small")
        + f"<h2>人工确认（{len(manual)}）</h2>"
        + html.table(["责任人", "确认时间", "确认人", "原因"], manual, "small")
        + f"<h2>叫应记录（{len(filed.rows)}条）</h2>"
        + _table(PRINT_COLUMNS, filed.rows, "small record")
        + f"<h2>反馈（{len(fb)}条）</h2>" + feedback_rows_html(fb)
        + '<div class="signatures"><p>值班员（签字）：<span class="line"></span>'
        '日期：<span class="line short"></span></p>'
        '<p>带班领导（签字）：<span class="line"></span>日期：<span class="line short"></span>'
        "</p></div>")
    return page(request, "叫应记录", body, active="records")
