"""The home page (值守台): live campaigns with their progress, drafts waiting for approval,
recent warnings, and the notices of new ones; it refreshes itself over server-sent events."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from warnbus.web.console import html
from warnbus.web.console.base import PREFIX, console, page, requires, user_of
from warnbus.web.console.board import state_zh
from warnbus.web.console.desk import (
    DeskWatch,
    drafts_html,
    known,
    live_html,
    live_rows,
    notices_bar,
    pending_drafts,
)
from warnbus.web.console.html import esc
from warnbus.web.console.live import stream


@requires()
async def index(request: web.Request) -> web.Response:
    ctx = console(request).app.ctx
    user = user_of(request)
    now = ctx.clock.now()
    rows = []
    for cid, _created in await ctx.store.messages.newest_campaigns(50):
        meta = await ctx.store.meta(cid)
        if meta is None:
            continue
        source = (await ctx.store.messages.sources(cid)).get(meta.root, "")
        rows.append([html.bj(meta.created_at, "%m-%d %H:%M"),
                     html.level_badge(meta.level.value if meta.level else "")
                     + html.drill_badge(meta.drill),
                     f'<a href="{PREFIX}/campaigns/{cid}">{esc(meta.headline or cid)}</a>',
                     esc(html.source_zh(source)), esc(meta.area)[:60],
                     state_zh(meta, now)])
    drafts = ""
    if user.has("drafter", "approver"):
        drafts = (f'<h2>待审批</h2><div id="drafts-box">'
                  f'{drafts_html(await pending_drafts(ctx))}</div>')
    body = (f'<div id="desk" data-events="{PREFIX}/events">{notices_bar(await known(ctx))}'
            f'<h2>进行中的预警</h2><div id="live" class="live-list">'
            f'{live_html(await live_rows(ctx), now)}</div>{drafts}'
            '<h2>最近的预警</h2>'
            + (html.table(["时间", "级别", "预警", "来源", "区域", "状态"], rows) if rows
               else '<p class="muted">还没有预警。</p>') + "</div>")
    return page(request, "值守台", body, active="board")


@requires()
async def desk_events(request: web.Request) -> web.StreamResponse:
    """Server-sent events of the home page: the live campaigns, the drafts waiting, and the
    newest messages (each new one raises a notice), whenever they change."""
    con = console(request)
    ctx = con.app.ctx
    user = user_of(request)
    ttl = (await con.settings()).sse_interval_s
    opened = time.monotonic()  # after the page was served: send nothing older
    watch = DeskWatch(user.has("approver"), con.shared, ttl, opened)
    show_drafts = user.has("drafter", "approver")

    async def state() -> dict[str, Any]:
        news = await watch.poll(ctx)
        rows = await con.shared.get("live", ttl, lambda: live_rows(ctx), since=opened)
        out: dict[str, Any] = {"live": live_html(rows, ctx.clock.now()), "desk": news}
        if show_drafts:
            out["drafts"] = drafts_html(news["drafts"] if watch.approver else await
                                        con.shared.get("drafts", ttl, lambda: pending_drafts(ctx),
                                                       since=opened))
        return out

    return await stream(request, state, "desk")
