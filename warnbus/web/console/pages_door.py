"""The page of a person sent door to door (`/door/<token>`): the link in their message is
signed for them, the campaign and the grid (`flow.doors.DoorLinks`); they enter what the
visit found, and the grid closes on it. Public like an ack link: the link is the credential,
checked first (the request's rate gate, `plugin.admit_request`), and it reaches nothing but
that one grid's result."""

from __future__ import annotations

from aiohttp import web

from warnbus.domain.doors import NOTE_MAX, DoorVia
from warnbus.errors import AuthError, IngestError
from warnbus.flow.doors import record_door, result_of
from warnbus.plugin import admit_request
from warnbus.web.console import html
from warnbus.web.console.base import SECURITY_HEADERS, console, form
from warnbus.web.console.html import DOOR_OUTCOME_ZH, esc
from warnbus.web.console.pages_act import door_problem


def _reply(title: str, body: str, status: int = 200) -> web.Response:
    return web.Response(text=html.bare(title, body), content_type="text/html", status=status,
                        headers=SECURITY_HEADERS)


async def _verified(request: web.Request) -> tuple[str, str, str] | web.Response:
    con = console(request)
    try:
        got = con.doors.verify(request.match_info["token"], con.app.ctx.clock.now())
    except AuthError as e:
        await admit_request(False)
        return _reply("链接无效",
                      f'<p class="err">入户登记链接无效或已过期（{esc(e.message)}）。</p>', 403)
    await admit_request(True)
    return got


async def door_link_page(request: web.Request) -> web.Response:
    """GET shows the grid and the form: a link preview of a chat app enters nothing."""
    got = await _verified(request)
    if isinstance(got, web.Response):
        return got
    cid, gid, pid = got
    return await _form_page(request, cid, gid, pid)


async def _form_page(request: web.Request, cid: str, gid: str, pid: str, problem: str = "",
                     status: int = 200) -> web.Response:
    ctx = console(request).app.ctx
    reg = ctx.registry
    grid = reg.data.grids.get(gid)
    meta = await ctx.store.meta(cid)
    if grid is None or meta is None:
        return _reply("未找到", '<p class="err">未找到对应的预警或网格。</p>', 404)
    village = reg.data.regions.get(grid.village)
    officers = "".join(
        f'<li>{esc(p.name)}（{html.PERSON_ROLE_ZH.get(p.role.value, "")}）'
        + (f' <a href="tel:{esc(p.phone)}">{esc(p.phone)}</a>' if p.phone else "") + "</li>"
        for p in (reg.data.persons.get(x or "") for x in (grid.primary, grid.backup)) if p)
    before = (await ctx.store.console.door_results(cid)).get(gid)
    done = (f'<p class="ok">已登记：{DOOR_OUTCOME_ZH[before.outcome.value]}'
            f'{"：" + esc(before.note) if before.note else ""}（{html.bj(before.at, "%H:%M")}）。'
            '如有变化可再次登记。</p>' if before else "")
    choices = "".join(
        f'<label class="choice"><input type="radio" name="outcome" value="{k}" required>{v}</label>'
        for k, v in DOOR_OUTCOME_ZH.items())
    person = ctx.person(pid)
    body = (f'<p>{html.level_badge(meta.level.value if meta.level else "")}'
            f'{html.drill_badge(meta.drill)} {esc(meta.headline)}</p>'
            f'<div class="card"><p>请 <b>{esc(person.name if person else pid)}</b> 入户通知：'
            f'<b>{esc(grid.name)}</b>（{esc(village.name if village else grid.village)}）</p>'
            f'<p class="muted">本网格网格员：</p><ul>{officers}</ul></div>{done}'
            + (f'<p class="err">{esc(problem)}</p>' if problem else "")
            + f'<form method="post" class="card door-link"><p>入户结果：</p>{choices}'
            f'<label>说明<textarea name="note" rows="3" maxlength="{NOTE_MAX}" '
            'placeholder="如：已通知全部住户；3户转移至村委会"></textarea></label>'
            '<button class="primary" id="door-submit">登记入户结果</button></form>')
    return _reply("入户叫应登记", body, status)


async def door_link_post(request: web.Request) -> web.Response:
    got = await _verified(request)
    if isinstance(got, web.Response):
        return got
    cid, gid, pid = got
    ctx = console(request).app.ctx
    f = await form(request)
    try:
        outcome, note = result_of(f.get("outcome", ""), f.get("note", ""))
    except IngestError as e:
        return await _form_page(request, cid, gid, pid, door_problem(e, f.get("note", "")), 422)
    person = ctx.person(pid)
    await record_door(ctx, cid, gid, outcome, note, by=person.name if person else pid,
                      via=DoorVia.LINK, person=pid)
    return _reply("已登记", f'<p class="ok" id="door-done">已登记入户结果：'
                          f'{DOOR_OUTCOME_ZH[outcome.value]}。谢谢！</p>')
