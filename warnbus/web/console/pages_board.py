"""The live campaign board: counts, grid map, drill-down, the 未叫醒 list and its buttons."""

from __future__ import annotations

import asyncio
import contextlib
import time

import msgspec
from aiohttp import web

from warnbus.domain.models import AckVia
from warnbus.domain.states import CampaignState
from warnbus.errors import NotFoundError
from warnbus.flow.acks import record_ack
from warnbus.registry import Registry
from warnbus.web.console import html, svgmap
from warnbus.web.console.actions import CampaignOver, order_door_to_door
from warnbus.web.console.auth import session_digest
from warnbus.web.console.base import (
    COOKIE,
    PREFIX,
    back,
    console,
    form,
    page,
    requires,
    session_of,
    user_of,
)
from warnbus.web.console.board import (
    BOARD_STATES,
    Chase,
    campaign_meta,
    chase_list,
    drawn_areas,
    silent_speakers,
    snapshot,
)
from warnbus.web.console.compose import sender_of
from warnbus.web.console.drafts import Drafts
from warnbus.web.console.html import CHANNEL_ZH, GRID_STATE_ZH, csrf_field, esc

COUNT_ZH = (("targets", "叫应对象"), ("sent", "已发送"), ("delivered", "已送达"),
            ("acknowledged", "已确认"), ("pending", "叫应中"), ("escalated", "已升级"),
            ("unreached", "未叫醒"), ("uncontacted", "未联系上即升级"))


@requires()
async def index(request: web.Request) -> web.Response:
    ctx = console(request).app.ctx
    rows = []
    for cid, _created in await ctx.store.messages.newest_campaigns(50):
        meta = await ctx.store.meta(cid)
        if meta is None:
            continue
        rows.append([html.bj(meta.created_at, "%m-%d %H:%M"), html.level_badge(meta.level),
                     f'<a href="{PREFIX}/campaigns/{cid}">{esc(meta.headline or cid)}</a>',
                     esc(meta.area)[:60], html.CAMPAIGN_STATE_ZH[meta.state]])
    pending = sum(1 for d in await Drafts(ctx.redis).recent(50) if d.state == "pending")
    note = (f'<p class="warn"><a href="{PREFIX}/drafts">{pending} 条预警等待审批</a></p>'
            if pending else "")
    body = note + html.table(["时间", "级别", "预警", "区域", "状态"], rows)
    return page(request, "值守台", body, active="board")


def _legend(drawn: bool = False) -> str:
    shape = '<span><i class="drawn"></i>预警多边形</span>' if drawn else ""
    return '<div class="legend">' + "".join(
        f'<span><i class="s-{k}"></i>{v}</span>' for k, v in GRID_STATE_ZH.items()) + shape + "</div>"


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


def chase_html(request: web.Request, cid: str, items: list[Chase], can_act: bool) -> str:
    if not items:
        return '<p class="muted">暂无未叫醒或升级中的网格。</p>'
    csrf = session_of(request).csrf
    out = []
    for c in items:
        people = "".join(
            f'<li>{esc(o["name"])}（{html.PERSON_ROLE_ZH.get(o["role"], o["role"])}）'
            f'<a href="tel:{esc(o["phone"])}">{esc(o["phone"])}</a>'
            + (f' <b class="okc">已确认·{html.VIA_ZH.get(o["acked"], o["acked"])}</b>' if o["acked"] else "")
            + "</li>" for o in c.officers)
        tries = "".join(
            f'<li>{html.bj(a["at"], "%H:%M:%S")} {esc(CHANNEL_ZH.get(a["ch"], a["ch"]))} '
            f'第{esc(a["n"])}次 → {esc(a["o"])}</li>' for a in c.attempts[-12:])
        acts = ""
        if can_act:
            who = html.options((o["id"], o["name"]) for o in c.officers if not o["acked"])
            acts = (f'<form method="post" action="{PREFIX}/campaigns/{cid}/ack" class="row">'
                    f'{csrf_field(csrf)}<input type="hidden" name="grid" value="{esc(c.grid_id)}">'
                    f'<select name="person">{who}</select><input name="reason" required '
                    'placeholder="确认方式，如：电话回拨已确认"><button>人工确认</button></form>')
            acts += (f'<form method="post" action="{PREFIX}/campaigns/{cid}/door" class="row">'
                     f'{csrf_field(csrf)}<input type="hidden" name="grid" value="{esc(c.grid_id)}">'
                     '<button data-confirm="通知村负责人入户叫应？">安排入户</button></form>')
        door = (f'<p class="warn">已安排入户：{esc(c.door.to)}（{esc(c.door.by)}，'
                f'{html.bj(c.door.at, "%H:%M")}）</p>' if c.door else "")
        out.append(f'<div class="chase s-{c.state}" data-grid="{esc(c.grid_id)}"><h3>{esc(c.grid)}'
                   f'<small>{esc(c.village)} · {GRID_STATE_ZH.get(c.state, c.state)}</small></h3>'
                   f'<ul>{people}</ul><details><summary>呼叫记录（{len(c.attempts)}）</summary>'
                   f'<ul class="tries">{tries}</ul></details>{door}{acts}</div>')
    return "".join(out)


@requires()
async def board_page(request: web.Request) -> web.Response:
    con = console(request)
    ctx = con.app.ctx
    user = user_of(request)
    cid = request.match_info["cid"]
    meta = await campaign_meta(ctx, cid)
    snap = await snapshot(ctx, cid)
    town, village = request.query.get("town", ""), request.query.get("village", "")
    reg = ctx.registry
    # Without a drill-down the map shows the townships the alert reaches, not the county.
    focus = village or town or ",".join(snap["towns"]) or None
    counts = "".join(f'<div><b data-c="{k}">{snap["counts"].get(k, 0)}</b>{v}</div>'
                     for k, v in COUNT_ZH)
    base = f"{PREFIX}/campaigns/{cid}"
    if town:
        codes = [v for v in reg.children_of(town) if v in snap["villages"]]
        regions = _region_table(request, snap["villages"], codes, f"{base}?town={town}&village=")
        crumbs = f'<a href="{base}">全县</a> › {esc(reg.data.regions[town].name if town in reg.data.regions else town)}'
    else:
        codes = [t for t in reg.children_of(reg.county_code) if t in snap["towns"]]
        regions = _region_table(request, snap["towns"], codes, f"{base}?town=")
        crumbs = "全县"
    prov = await ctx.store.console.provenance(cid)
    who = "".join(f'<li>{html.KIND_ZH.get(p.kind, p.kind)}：起草 {esc(p.drafted_by)}'
                  f'{"，审批 " + esc(p.approved_by) if p.approved_by else "（无需审批）"}'
                  f'，{html.bj(p.at, "%H:%M:%S")}</li>' for p in prov.values())
    can_act = user.has("drafter", "approver")
    chase = chase_html(request, cid, _within(reg, await chase_list(ctx, cid), village or town),
                       can_act)
    speakers = await silent_speakers(ctx, cid, meta)
    shapes = [ring for _desc, ring in await drawn_areas(ctx, cid, meta)]
    spk = "".join(f'<li>{esc(x["name"])}（{esc(x["village"])}）</li>' for x in speakers[:200])
    state = CampaignState(snap["state"])
    tools = ""
    ours = meta.sender == sender_of(ctx, await con.settings())
    if state is CampaignState.ACTIVE and ours and user.has("drafter"):
        tools = (f'<a class="button" href="{PREFIX}/compose?campaign={cid}">更新</a>'
                 f'<form method="post" action="{base}/cancel" class="inline">'
                 f'{csrf_field(session_of(request).csrf)}<input name="reason" required '
                 'placeholder="解除原因"><button class="danger" id="cancel-btn" '
                 'data-confirm="确认解除该预警？">解除预警</button></form>')
    tools += (f'<a class="button" href="{base}/record.csv" download>导出叫应记录</a>'
              f'<a class="button" href="{base}/print">打印</a>')
    msg = request.query.get("msg", "")
    body = (
        (f'<p class="ok">{esc(msg)}</p>' if msg else "")
        + f'<div id="board" data-cid="{esc(cid)}" data-events="{base}/events">'
        f'<p>{html.level_badge(meta.level)} <span id="cstate">{html.CAMPAIGN_STATE_ZH[state]}</span>'
        f' · {esc(meta.area)} · 开始 {html.bj(meta.created_at)}</p>'
        f'<ul class="prov">{who}</ul><div class="tools">{tools}</div>'
        f'<div class="stats">{counts}</div>'
        f'<div class="split"><div class="card"><p>{crumbs}</p>'
        f'{svgmap.svg(reg, snap["grids"], focus=focus, only=None, shapes=shapes, fit_shapes=not (town or village))}'
        f'{_legend(bool(shapes))}</div>'
        f'<div class="card">{regions}</div></div>'
        f'<h2>未叫醒名单</h2><div id="chase" class="chases" data-src="{esc(base + "/chase" + ("?" + request.query_string if request.query_string else ""))}">{chase}</div>'
        f'<h2>未确认播放的应急广播（{len(speakers)}）</h2><ul class="cols">{spk}</ul></div>')
    return page(request, meta.headline or cid, body, active="board")


def _within(reg: Registry, items: list[Chase], region: str) -> list[Chase]:
    """The grids of a drilled-down township or village; unreached ones first."""
    if region:
        prefix = region[:9] if region.endswith("000") else region
        # A grid removed from the registry while the campaign holds it lies in no region.
        items = [c for c in items if (g := reg.data.grids.get(c.grid_id)) is not None
                 and g.village.startswith(prefix)]
    return sorted(items, key=lambda c: (c.state != "unreached", c.grid_id))


@requires()
async def chase_fragment(request: web.Request) -> web.Response:
    ctx = console(request).app.ctx
    cid = request.match_info["cid"]
    await campaign_meta(ctx, cid)
    region = request.query.get("village") or request.query.get("town", "")
    text = chase_html(request, cid, _within(ctx.registry, await chase_list(ctx, cid), region),
                      user_of(request).has("drafter", "approver"))
    return web.Response(text=text, content_type="text/html")


#: How often a live stream checks that its session has not ended (seconds, at most).
RECHECK_S = 1.0
ENDED = "event: end\ndata: " + '{"message": "登录已失效（已退出、密码已重设或账户已停用），请重新登录"}\n\n'


@requires()
async def events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: the board's snapshot whenever it changes (and a heartbeat).

    The stream ends (an `end` event, then close) within about RECHECK_S of its session
    ending; a session may hold `streams.per_session` of them, a user `streams.per_user`, a
    process `streams.total`.
    """
    con = console(request)
    ctx = con.app.ctx
    cid = request.match_info["cid"]
    await campaign_meta(ctx, cid)
    sid = request.cookies.get(COOKIE, "")
    session = session_digest(sid)
    user = user_of(request).name
    refusal = con.streams.refusal(session, user)
    if refusal is not None:
        code = "too_many_streams" if refusal.status == 429 else "unavailable"
        return web.json_response({"error": {"code": code, "message": refusal.message}},
                                 status=refusal.status,
                                 headers={"Retry-After": str(refusal.retry_after_s)})
    interval = max(0.1, (await con.settings()).sse_interval_s)
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                       "Cache-Control": "no-store", "X-Accel-Buffering": "no"})
    with con.streams.hold(session, user), contextlib.suppress(ConnectionResetError):
        await resp.prepare(request)  # the browser may go away at any write
        last = b""
        now = written = time.monotonic()
        look, check = now, now + RECHECK_S
        while True:
            if now >= check:
                if await con.signed_in(sid) is None:
                    await resp.write(ENDED.encode())
                    break
                check = now + RECHECK_S
            if now >= look:
                blob = msgspec.json.encode(await snapshot(ctx, cid))
                if blob != last:
                    await resp.write(b"event: state\ndata: " + blob + b"\n\n")
                    last, written = blob, now
                elif now - written >= 15:
                    await resp.write(b": keep-alive\n\n")  # proxies drop silent connections
                    written = now
                look = now + interval
            await asyncio.sleep(max(0.01, min(look, check) - time.monotonic()))
            now = time.monotonic()
    return resp


@requires("drafter", "approver")
async def manual_ack(request: web.Request) -> web.StreamResponse:
    ctx = console(request).app.ctx
    cid = request.match_info["cid"]
    f = await form(request)
    reason = f.get("reason", "").strip()
    if not reason:
        raise back(f"{PREFIX}/campaigns/{cid}", "人工确认须填写原因")
    res = await record_ack(ctx, cid, f.get("person", ""), AckVia.CONSOLE,
                           by=user_of(request).name, reason=reason)
    if res.code in (0, -1):
        raise NotFoundError("no such campaign or person in it")
    p = ctx.person(f.get("person", ""))
    if res.late:
        raise back(f"{PREFIX}/campaigns/{cid}", res.late_zh)
    if res.journaled:  # Redis unavailable: held in the journal, recorded when it returns
        msg = f"已收到{p.name if p else ''}的人工确认，存储恢复后自动记录"
    else:
        msg = f"已记录{p.name if p else ''}的人工确认" if res.recorded else "此人此前已确认"
    raise back(f"{PREFIX}/campaigns/{cid}", msg)


@requires("drafter", "approver")
async def door(request: web.Request) -> web.StreamResponse:
    ctx = console(request).app.ctx
    cid = request.match_info["cid"]
    await campaign_meta(ctx, cid)
    try:
        name = await order_door_to_door(ctx, cid, (await form(request)).get("grid", ""),
                                        user_of(request).name)
    except CampaignOver as e:
        state = html.CAMPAIGN_STATE_ZH.get(e.state, "已结束")
        raise back(f"{PREFIX}/campaigns/{cid}", f"该预警{state}，未安排入户叫应") from e
    raise back(f"{PREFIX}/campaigns/{cid}", f"已通知{name}入户叫应")
