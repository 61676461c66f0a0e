"""A grid of a campaign: its people and where each stands, every call to them by name, its
door-to-door order and result, and its whole history in time order. A full page, or the
panel the board shows when a grid is clicked on its map (`?part=panel`)."""

from __future__ import annotations

from aiohttp import web

from warnbus.domain.states import TargetState
from warnbus.domain.targets import device_id
from warnbus.errors import NotFoundError
from warnbus.web.console import caseview, html
from warnbus.web.console.base import (
    PREFIX,
    console,
    flash,
    page,
    requires,
    session_of,
    user_of,
)
from warnbus.web.console.board import campaign_meta
from warnbus.web.console.cases import build
from warnbus.web.console.html import esc


@requires()
async def grid_page(request: web.Request) -> web.Response:
    con = console(request)
    ctx = con.app.ctx
    cid, gid = request.match_info["cid"], request.match_info["gid"]
    meta = await campaign_meta(ctx, cid)
    got = await build(ctx, con.histories, cid, meta, grid=gid)
    if not got.cases:
        raise NotFoundError(f"no grid {gid} in campaign {cid}")
    case = got.cases[0]
    can_act = user_of(request).has("drafter", "approver")
    door_ok = got.ended is None and got.stop is None
    csrf = session_of(request).csrf
    users = await con.users.displays()  # user name -> 姓名
    board = f"{PREFIX}/campaigns/{esc(cid)}"
    link = f"{board}/grids/{esc(gid)}"
    if request.query.get("part") == "panel":
        card = caseview.card_html(cid, case, csrf, can_act=can_act, door_ok=door_ok,
                                  now=got.now, from_grid=False, names=users)
        text = (f'<button type="button" class="close" aria-label="关闭">×</button>{card}'
                f'<p><a href="{link}">网格详情（全部记录）</a></p>')
        return web.Response(text=text, content_type="text/html")
    card = caseview.card_html(cid, case, csrf, can_act=can_act, door_ok=door_ok, now=got.now,
                              calls_limit=None, from_grid=True, names=users)
    live = await ctx.store.board.live(cid)
    speakers = [(d, live.tstate.get(device_id(d.id)))
                for d in ctx.registry.data.devices.values() if d.grid == gid]
    spk = "".join(
        f'<li>{esc(d.name)}：{"已播放" if st is TargetState.DELIVERED else "未确认播放"}</li>'
        for d, st in speakers) or '<li class="muted">本网格没有应急广播</li>'
    msg = flash(request)
    body = ((f'<p class="ok">{esc(msg)}</p>' if msg else "")
            + f'<p><a href="{board}">← 返回叫应看板</a>'
              f' · {html.level_badge(meta.level.value if meta.level else "")}'
            f'{html.drill_badge(meta.drill)} {esc(meta.headline)}</p>'
            f'<div class="chases one" id="grid-case">{card}</div>'
            f'<h2>经过（按时间）</h2>{caseview.timeline_html(case, got, users)}'
            f'<h2>应急广播</h2><ul>{spk}</ul>')
    return page(request, f"{case.name} · {case.village}", body, active="board")
