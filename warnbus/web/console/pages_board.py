"""The live campaign board: persons, grids, sites and loudspeakers, the map, drill-down to villages
and grids, the pending list from the first minute, the alert's text, source and history."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlencode

import msgspec
from aiohttp import web

from warnbus.domain.meta import CampaignMeta
from warnbus.domain.states import CampaignState
from warnbus.registry import Registry
from warnbus.web.console import caseview, html, svgmap, thread
from warnbus.web.console.actions import on_behalf_of
from warnbus.web.console.base import (
    PREFIX,
    console,
    flash,
    page,
    requires,
    session_of,
    user_of,
)
from warnbus.web.console.board import (
    BOARD_STATES,
    campaign_meta,
    drawn_areas,
    ended_as,
    silent_speakers,
    snapshot,
    state_zh,
)
from warnbus.web.console.cases import build
from warnbus.web.console.desk import DeskWatch, known, notices_bar
from warnbus.web.console.feedback import feedback_section
from warnbus.web.console.html import GRID_STATE_ZH, csrf_field, esc
from warnbus.web.console.live import stream

#: The board's counts, by group: persons, grids, sites, loudspeakers (never summed together).
#: After each total, its parts add up to it (persons: 已送达 is a count of its own).
#: 已发出（人）: a provider took or delivered a message to them. Not 已送达: an SMS or a WeCom
#: message a provider took is not known to have arrived, and WeCom never reports it.
PERSONS = (("p_total", "叫应对象（人）"), ("p_reached", "已发出（人）"), ("p_pending", "叫应中"),
           ("p_confirmed", "已确认"), ("p_escalated", "已升级"), ("p_unreached", "未叫醒"),
           ("p_closed", "未确认·已结束"))
GRIDS = (("g_total", "网格"), ("g_calling", "叫应中"), ("g_confirmed", "已确认"),
         ("g_taken_over", "上级已确认"), ("g_escalated", "已升级"), ("g_unreached", "未叫醒"),
         ("g_door", "入户中"), ("g_visited", "已入户"), ("g_stopped", "已停止叫应"),
         ("g_ended", "未确认·已结束"), ("g_closed", "已移出"))
#: Sites (hazard points, reservoirs and ponds, danger zones, shelters) the hazard calls.
SITES = (("site_total", "隐患点/水库/危险区等（处）"), ("site_calling", "叫应中"),
         ("site_confirmed", "已确认"), ("site_taken_over", "上级已确认"),
         ("site_escalated", "已升级"), ("site_unreached", "未叫醒"),
         ("site_ended", "未确认·已结束"))
SPEAKERS = (("s_total", "应急广播"), ("s_played", "已播放"), ("s_silent", "未确认播放"))
#: Not a part of a total: how many grids moved up their chain past a person no message had
#: reached (the record's `uncontacted` rows).
NOTES = (("uncontacted", "未联系上即升级（网格）"),)


def _legend(drawn: bool = False) -> str:
    shape = '<span><i class="drawn"></i>预警多边形</span>' if drawn else ""
    return '<div class="legend">' + "".join(
        f'<span><i class="s-{k}"></i>{v}</span>' for k, v in GRID_STATE_ZH.items()
    ) + shape + "</div>"


def _stats(counts: dict[str, int]) -> str:
    def group(name: str, items: tuple[tuple[str, str], ...]) -> str:
        cells = "".join(f'<div><b data-c="{k}">{counts.get(k, 0)}</b>{label}</div>'
                        for k, label in items)
        return f'<div class="stats {name}">{cells}</div>'

    return ('<div class="counts">' + group("persons", PERSONS) + group("grids", GRIDS)
            + group("sites", SITES) + group("speakers", SPEAKERS) + group("notes", NOTES)
            + "</div>")


def _region_table(request: web.Request, counts: dict[str, dict[str, int]], codes: list[str],
                  link: str) -> str:
    regions = console(request).app.ctx.registry.data.regions
    head = ["区域", *(GRID_STATE_ZH[k] for k in BOARD_STATES)]
    rows = []
    for code in codes:
        c = counts.get(code, {})
        name = esc(regions[code].name if code in regions else code)
        cells = [f'<a href="{link}{code}">{name}</a>'] + [
            f'<span data-r="{code}" data-k="{k}">{c.get(k, 0)}</span>' for k in BOARD_STATES]
        rows.append(cells)
    return html.table(head, rows, "small regions")


def _grid_table(reg: Registry, cid: str, display: dict[str, str], village: str) -> str:
    """A village's grids: state, officers; each grid links to its page."""
    rows = []
    for gid in reg.grids_of_village(village):
        if gid not in display:
            continue
        g = reg.data.grids[gid]
        people = "、".join(esc(p.name) for p in (reg.data.persons.get(x or "")
                                                for x in (g.primary, g.backup)) if p)
        rows.append([f'<a class="grid-link" data-g="{esc(gid)}" '
                     f'href="{PREFIX}/campaigns/{esc(cid)}/grids/{esc(gid)}">{esc(g.name)}</a>',
                     f'<span class="gs s-{display[gid]}">{GRID_STATE_ZH[display[gid]]}</span>',
                     people])
    return html.table(["网格", "状态", "网格员、备岗"], rows, "small grids")


def _tools(request: web.Request, cid: str, running: bool, owner: str, stopped: bool) -> str:
    """Update, cancel and stop while the campaign runs (`running`); its record always."""
    user = user_of(request)
    csrf = csrf_field(session_of(request).csrf)
    base = f"{PREFIX}/campaigns/{cid}"
    tools = ""
    if running and user.has("drafter"):
        behalf = "代为" if owner else ""
        tools += (f'<a class="button" href="{PREFIX}/compose?campaign={cid}">{behalf}更新</a>'
                  f'<form method="post" action="{base}/cancel" class="inline">{csrf}'
                  '<input name="reason" required placeholder="解除原因">'
                  f'<button class="danger" id="cancel-btn" data-confirm="确认{behalf}解除该预警？">'
                  f'{behalf}解除预警</button></form>')
    if running and not stopped and user.has("approver"):
        tools += (f'<form method="post" action="{base}/stop" class="inline" id="stop-form">{csrf}'
                  '<input name="reason" required placeholder="停止叫应的原因">'
                  '<button class="danger" id="stop-btn" data-confirm="停止后不再呼叫、重拨或升级，'
                  '确认停止该预警的叫应？">停止叫应</button></form>')
    return tools + (f'<a class="button" href="{base}/record.csv" download>导出叫应记录</a>'
                    f'<a class="button" href="{base}/print">打印</a>')


def _ended_html(ended: CampaignState | None, meta: CampaignMeta) -> str:
    """The banner of a campaign that is over: lifted or expired, since when, nobody called."""
    if ended is None:
        return ""
    at = meta.ended_at or meta.expires_at
    when = f"（{html.bj(at)}）" if at else ""
    return (f'<p class="err" id="ended">该预警{html.CAMPAIGN_STATE_ZH[ended]}{when}，叫应已结束：'
            '不再呼叫、重拨或升级。</p>')


async def _header(request: web.Request, cid: str, meta: CampaignMeta) -> dict[str, Any]:
    """What the board's header shows, in parts the live page swaps in when the header's
    version (`board.head_version`, in every snapshot) changes: `head` (level, 演练, state,
    area, start and time elapsed, the source, the banners of an ended or stopped campaign),
    `tools`, `alert` (the current message's full text), `history` (every message of the
    thread), and the times the page counts the elapsed time with."""
    con = console(request)
    ctx = con.app.ctx
    users = await con.users.displays()  # user name -> 姓名
    owner = await on_behalf_of(ctx, cid)
    stop = await ctx.store.console.calls_stopped(cid)
    items = await thread.messages(ctx, cid)
    root = next((m for m in items if m.alert_id == meta.root), items[0] if items else None)
    latest = next((m for m in items if m.alert_id == meta.latest_alert_id), root)
    now = ctx.clock.now()
    ended = ended_as(meta, now)
    t0 = meta.t0 or meta.created_at or now
    end = (meta.ended_at or meta.expires_at or now) if ended else 0
    stopped = (f'<p class="err" id="stopped">已停止叫应：{esc(users.get(stop.by, stop.by))}于'
               f'{html.bj(stop.at, "%H:%M:%S")}'
               f'停止，原因：{esc(stop.reason)}。不再呼叫、重拨或升级。</p>' if stop else "")
    head = (
        f'<p class="head">{html.level_badge(meta.level.value if meta.level else "")}'
        f'{html.drill_badge(meta.drill)} '
        f'<span id="cstate">{state_zh(meta, now)}</span>'
        f' · <span id="carea">{esc(meta.area)}</span> · 开始 {html.bj(t0)}'
        + (f' · 失效 <span id="cexpires">{html.bj(meta.expires_at)}</span>'
           if meta.expires_at else "")
        + f' · 已用时 <b id="elapsed">{html.duration((end or now) - t0)}</b></p>'
        f'<p class="source">来源：{thread.source_html(root, users) if root else "未记录"}'
        + (f' · <b>非本值守台发布</b>（{esc(owner)}）' if owner else "") + "</p>"
        + _ended_html(ended, meta) + stopped)
    running = meta.state is CampaignState.ACTIVE and ended is None  # not before it is planned
    return {"head": head, "tools": _tools(request, cid, running, owner, stop is not None),
            "alert": thread.alert_text(latest.alert) if latest else "",
            "history": thread.history_html(meta, items, users), "t0": t0, "end": end,
            "title": meta.headline or cid}


async def _places(request: web.Request, cid: str, meta: CampaignMeta,
                  snap: dict[str, Any]) -> tuple[str, str]:
    """The map (with where it is and its legend) and the table of the townships, villages or
    grids the page drills down to (`?town=`, `?village=`): what an Update's area changes."""
    ctx = console(request).app.ctx
    town, village = request.query.get("town", ""), request.query.get("village", "")
    reg = ctx.registry
    # Without a drill-down the map shows the townships the alert reaches, not the county.
    focus = village or town or ",".join(snap["towns"]) or None
    base = f"{PREFIX}/campaigns/{cid}"
    names = reg.data.regions
    if village:
        t = reg.township_of(village) or ""
        regions = _grid_table(reg, cid, snap["grids"], village)
        crumbs = (f'<a href="{base}">全县</a> › <a href="{base}?town={t}">'
                  f'{esc(names[t].name if t in names else t)}</a> › '
                  f'{esc(names[village].name if village in names else village)}')
    elif town:
        codes = [v for v in reg.children_of(town) if v in snap["villages"]]
        regions = _region_table(request, snap["villages"], codes, f"{base}?town={town}&village=")
        crumbs = f'<a href="{base}">全县</a> › {esc(names[town].name if town in names else town)}'
    else:
        codes = [t for t in reg.children_of(reg.county_code) if t in snap["towns"]]
        regions = _region_table(request, snap["towns"], codes, f"{base}?town=")
        crumbs = "全县"
    shapes = [ring for _desc, ring in await drawn_areas(ctx, cid, meta)]
    svg = svgmap.svg(reg, snap["grids"], focus=focus, only=None, shapes=shapes,
                     fit_shapes=not (town or village))
    return f"<p>{crumbs}</p>{svg}{_legend(bool(shapes))}", regions


@requires()
async def board_page(request: web.Request) -> web.Response:
    con = console(request)
    ctx = con.app.ctx
    user = user_of(request)
    cid = request.match_info["cid"]
    meta = await campaign_meta(ctx, cid)
    snap = await snapshot(ctx, cid)
    town, village = request.query.get("town", ""), request.query.get("village", "")
    base = f"{PREFIX}/campaigns/{cid}"
    stop = await ctx.store.console.calls_stopped(cid)
    can_act = user.has("drafter", "approver")
    got = await build(ctx, con.histories, cid, meta, region=village or town)
    door_ok = got.ended is None and stop is None
    users = await con.users.displays()  # user name -> 姓名
    pending = caseview.pending_html(cid, got, session_of(request).csrf, can_act=can_act,
                                    door_ok=door_ok, names=users)
    speakers = await silent_speakers(ctx, cid, meta)
    places, regions = await _places(request, cid, meta, snap)
    spk = "".join(f'<li>{esc(x["name"])}（{esc(x["village"])}）</li>' for x in speakers[:200])
    head = await _header(request, cid, meta)
    msg = flash(request)
    query = "?" + request.query_string if request.query_string else ""
    drill = {k: v for k, v in (("town", town), ("village", village)) if v}
    head_src = f"{base}/head" + (f"?{urlencode(drill)}" if drill else "")
    body = (
        (f'<p class="ok" id="flash">{esc(msg)}</p>' if msg else "")
        + notices_bar(await known(ctx))
        + f'<div id="board" data-cid="{esc(cid)}" data-events="{base}/events" '
        f'data-since="{ctx.clock.now()}" data-t0="{head["t0"]}" data-end="{head["end"]}" '
        f'data-head="{snap["head"]}" data-head-src="{esc(head_src)}" '
        f'data-grid-src="{base}/grids/">'
        f'<div id="board-head">{head["head"]}</div>'
        f'<div class="tools" id="board-tools">{head["tools"]}</div>'
        f'{_stats(snap["counts"])}'
        f'<div class="split"><div class="card"><div id="board-map">{places}</div>'
        '<div id="grid-panel" hidden></div></div>'
        f'<div><details class="card alert-card" open><summary>预警内容</summary>'
        f'<div id="alert-text">{head["alert"]}</div></details>'
        f'<div class="card" id="board-regions">{regions}</div></div></div>'
        f'<h2>待确认名单（<span data-c="waiting">{got.total}</span>个网格）</h2>'
        f'<div id="chase" class="chases" data-src="{esc(base + "/chase" + query)}">{pending}</div>'
        f'<h2>未确认播放的应急广播（{len(speakers)}）</h2><ul class="cols">{spk}</ul>'
        f'<h2>消息记录（预警 → 更新 → 解除）</h2><div id="history">{head["history"]}</div>'
        + await feedback_section(ctx, cid, town, session_of(request).csrf, can_act) + "</div>")
    return page(request, head["title"], body, active="board")


@requires()
async def head_fragment(request: web.Request) -> web.Response:
    """The board's header alone, as JSON of its parts (`_header`), with the map and the
    table of regions of the page's drill-down (`_places`: an Update changes the area): the
    page fetches it when the header's version in the live snapshot changes (an Update, a
    Cancel, the expiry, a stop of the calling)."""
    con = console(request)
    ctx = con.app.ctx
    cid = request.match_info["cid"]
    meta = await campaign_meta(ctx, cid)
    asked = time.monotonic()  # the board's snapshot as it is now, shared with its streams
    ttl = (await con.settings()).sse_interval_s
    snap = await con.shared.get(("board", cid), ttl, lambda: snapshot(ctx, cid), since=asked)
    places, regions = await _places(request, cid, meta, snap)
    parts = {**await _header(request, cid, meta), "map": places, "regions": regions}
    # Its tools carry the session's CSRF token: kept by no cache, as the page itself.
    return web.Response(body=msgspec.json.encode(parts), content_type="application/json",
                        headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})


@requires()
async def chase_fragment(request: web.Request) -> web.Response:
    """The pending list alone (the board refreshes it as grids change)."""
    con = console(request)
    ctx = con.app.ctx
    cid = request.match_info["cid"]
    meta = await campaign_meta(ctx, cid)
    region = request.query.get("village") or request.query.get("town", "")
    got = await build(ctx, con.histories, cid, meta, region=region)
    stop = await ctx.store.console.calls_stopped(cid)
    text = caseview.pending_html(
        cid, got, session_of(request).csrf, can_act=user_of(request).has("drafter", "approver"),
        door_ok=got.ended is None and stop is None,
        names=await con.users.displays())
    return web.Response(text=text, content_type="text/html",
                        headers={"X-Waiting": str(got.total)})


@requires()
async def events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: the board's snapshot and the desk's news whenever they change."""
    con = console(request)
    ctx = con.app.ctx
    cid = request.match_info["cid"]
    await campaign_meta(ctx, cid)
    ttl = (await con.settings()).sse_interval_s
    opened = time.monotonic()  # after the page was served: send nothing older
    watch = DeskWatch(user_of(request).has("approver"), con.shared, ttl, opened)

    async def state() -> dict[str, Any]:
        snap = dict(await con.shared.get(("board", cid), ttl, lambda: snapshot(ctx, cid),
                                          since=opened))
        snap["desk"] = await watch.poll(ctx)
        snap.pop("now")  # the page counts the seconds itself: send only what changed
        return snap

    return await stream(request, state)
