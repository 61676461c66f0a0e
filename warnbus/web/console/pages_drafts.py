"""Drafts: the list, a draft's page (reach, history), approve, reject, withdraw, edit.

A rejected draft is not a dead end: its drafter edits it (the compose form, filled with it)
and resubmits it as a new revision, or withdraws it. An approval names the revision the
approver saw (`rev`): an edit made meanwhile is not published unseen. Pages name people by
their display names (姓名), not their user names.
"""

from __future__ import annotations

from aiohttp import web

from warnbus.web.console import html, svgmap
from warnbus.web.console.actions import PublishError, publish, why_not_continue
from warnbus.web.console.base import (
    PREFIX,
    back,
    console,
    flash,
    form,
    page,
    requires,
    session_of,
    user_of,
)
from warnbus.web.console.confirm import area_before, changes_html
from warnbus.web.console.drafts import EDITABLE, Draft, DraftEvent, Drafts, DraftState
from warnbus.web.console.html import csrf_field, esc
from warnbus.web.console.pages_compose import (
    area_summary,
    behalf_row,
    compose_response,
    preview_of,
)
from warnbus.web.console.preview import preview_html

#: What a step of a draft's history says (DraftEvent.what).
EVENT_ZH = {"drafted": "起草", "resubmitted": "修改后重新提交", DraftState.REJECTED: "退回",
            DraftState.WITHDRAWN: "撤回", DraftState.PUBLISHING: "批准",
            DraftState.PUBLISHED: "已发布", DraftState.FAILED: "发布失败（未发出）"}


def _drafts(request: web.Request) -> Drafts:
    return Drafts(console(request).app.ctx.redis)


def _who(names: dict[str, str], name: str) -> str:
    return esc(names.get(name, name)) if name else ""


def title_of(d: Draft) -> str:
    """`<new level>预警 · <kind>`: an Update's title shows the level it sets."""
    return f"{html.LEVEL_ZH.get(d.form.level, '')}预警 · {html.KIND_ZH.get(d.kind, '')}"


@requires("drafter", "approver")
async def drafts_page(request: web.Request) -> web.Response:
    names = await console(request).users.displays()
    rows = []
    for d in await _drafts(request).recent():
        link = f'<a href="{PREFIX}/drafts/{d.id}">{esc(d.form.headline or d.id)}</a>'
        rows.append([html.bj(d.drafted_at, "%m-%d %H:%M"), html.KIND_ZH.get(d.kind, d.kind),
                     html.level_badge(d.form.level or d.level), link, _who(names, d.drafted_by),
                     _who(names, d.approved_by or d.rejected_by),
                     html.DRAFT_STATE_ZH.get(d.state, d.state)])
    body = html.table(["起草时间", "类型", "级别", "标题", "起草人", "审批人", "状态"], rows)
    return page(request, "审批", body, active="drafts")


async def _draft(request: web.Request) -> Draft:
    d = await _drafts(request).get(request.match_info["id"])
    if d is None:
        raise web.HTTPNotFound()
    return d


def history_html(d: Draft, names: dict[str, str]) -> str:
    """The draft's steps in time order: who drafted, rejected (why), resubmitted, approved."""
    items = "".join(
        f'<li>{html.bj(e.at)} {_who(names, e.by)} {EVENT_ZH.get(e.what, esc(e.what))}'
        + (f"：{esc(e.note)}" if e.note else "") + "</li>"
        for e in sorted(d.history, key=lambda e: e.at))
    return f'<ol class="history" id="draft-history">{items}</ol>' if items else ""


@requires("drafter", "approver")
async def draft_page(request: web.Request) -> web.Response:
    con = console(request)
    d = await _draft(request)
    user = user_of(request)
    names = await con.users.displays()
    msg = flash(request)
    f = d.form
    level_note = (f'（按更新前后较紧急的{html.LEVEL_ZH.get(d.level, d.level)}级别审批）'
                  if d.level != f.level else "")
    info = (f'<dl class="kv"><dt>类型</dt><dd>{html.KIND_ZH.get(d.kind, d.kind)}</dd>'
            f'<dt>级别</dt><dd>{html.level_badge(f.level)}{level_note}</dd>'
            f'<dt>状态</dt><dd id="draft-state">{html.DRAFT_STATE_ZH.get(d.state, d.state)}</dd>'
            f'<dt>起草人</dt><dd>{_who(names, d.drafted_by)}（{html.bj(d.drafted_at)}）</dd>'
            f'<dt>审批人</dt><dd>{_who(names, d.approved_by or d.rejected_by) or "—"}</dd>'
            f'<dt>标题</dt><dd>{esc(f.headline)}</dd><dt>内容</dt><dd>{esc(f.description)}</dd>'
            + ("" if d.kind == "cancel" else  # a 解除 has no period of its own
               f'<dt>有效期</dt><dd id="draft-times">{esc(f.effective.replace("T", " "))} 至 '
               f'{esc(f.expires.replace("T", " "))}（北京时间）</dd>')
            + f'<dt>区域</dt><dd id="draft-area">{area_summary(con, f)}</dd>'
            + (f'<dt>说明</dt><dd>{esc(d.reason)}</dd>' if d.reason else "")
            + await behalf_row(con, d) + "</dl>")
    if d.state == DraftState.FAILED:
        # Plainly, above everything: this message was NOT sent.
        msg = ""
        info = (f'<p class="err" id="publish-failed">发布失败，预警未发出：{esc(d.reason)}</p>'
                + info)
    elif d.state == DraftState.REJECTED:
        info = (f'<p class="err" id="rejected">已被{_who(names, d.rejected_by)}退回：'
                f'{esc(d.reason)}</p>' + info)
    csrf = session_of(request).csrf
    reach, chosen, p = "", [], None
    if d.state == DraftState.PENDING:
        why = (await why_not_continue(con.app.ctx, d.campaign_id)
               if d.kind != "alert" and d.campaign_id else None)
        try:
            if why is not None:  # publishing it would fail: nothing would be sent
                reach = f'<p class="err">{esc(why)}</p>'
            else:
                p = await preview_of(con, f, d.kind, d.campaign_id)
                reach, chosen = preview_html(p), p["grid_ids"]
                if d.kind == "update":
                    reach = changes_html(con.app.ctx.registry, await area_before(
                        con.app.ctx, d.campaign_id), chosen, p["persons"]) + reach
        except Exception as e:  # a draft that no longer builds (e.g. expired) says so
            reach = f'<p class="err">{esc(getattr(e, "message", str(e)))}</p>'
    actions = ""
    if d.state == DraftState.PENDING and user.has("approver") and user.name != d.drafted_by:
        level = html.LEVEL_ZH.get(f.level, f.level)
        reach_zh = (f"，覆盖{p['grids']}个网格、{p['persons']}名责任人、{p['speakers']}个应急广播"
                    if p else "")
        actions = (f'<form method="post" action="{PREFIX}/drafts/{d.id}/approve" class="inline">'
                   f'{csrf_field(csrf)}<input type="hidden" name="rev" value="{d.rev}">'
                   '<button class="primary" id="approve-btn" '
                   f'data-confirm="确认批准并立即发布{esc(level)}预警{esc(reach_zh)}？">批准并发布'
                   '</button></form>'
                   f'<form method="post" action="{PREFIX}/drafts/{d.id}/reject" class="inline">'
                   f'{csrf_field(csrf)}<input name="reason" placeholder="退回原因" required>'
                   '<button>退回</button></form>')
    elif d.state == DraftState.PENDING:
        actions = '<p class="muted">等待另一位审批人批准（不能批准自己起草的预警）。</p>'
    if d.state in EDITABLE and user.name == d.drafted_by:
        if d.kind != "cancel":
            actions += (f'<a class="button" id="edit-btn" href="{PREFIX}/drafts/{d.id}/edit">'
                        "修改后重新提交</a>")
        actions += (f'<form method="post" action="{PREFIX}/drafts/{d.id}/withdraw" '
                    f'class="inline">{csrf_field(csrf)}<button id="withdraw-btn" '
                    'data-confirm="撤回该草稿？撤回后不会发布。">撤回</button></form>')
    if d.campaign_id and d.state == DraftState.PUBLISHED:
        actions += (f'<p><a class="button" href="{PREFIX}/campaigns/{d.campaign_id}">'
                    '查看叫应进展</a></p>')
    small = svgmap.svg(con.app.ctx.registry, selected=chosen, focus=",".join(f.areas),
                       shapes=(f.polygon,) if f.polygon else (), fit_shapes=True,
                       map_id="draft-map")
    hist = history_html(d, names)
    body = ((f'<p class="ok">{esc(msg)}</p>' if msg else "")
            + f'<div class="split"><div class="card">{info}{actions}'
            + (f"<h2>经过</h2>{hist}" if hist else "") + '</div><div>'
            f'<div class="card">{small}</div><div class="card">{reach}</div></div></div>')
    return page(request, title_of(d), body, active="drafts")


@requires("approver")
async def draft_approve(request: web.Request) -> web.StreamResponse:
    con = console(request)
    d = await _draft(request)
    user = user_of(request)
    if user.name == d.drafted_by:
        return web.Response(status=403, text=html.bare(
            "不能审批", '<p class="err">不能批准自己起草的预警，须由另一位审批人批准。</p>'),
                            content_type="text/html")
    rev = (await form(request)).get("rev", "")
    drafts = _drafts(request)
    # The revision the approver saw: an edit since then is not published unseen.
    if not await drafts.move(d.id, DraftState.PENDING, DraftState.PUBLISHING,
                             at_rev=int(rev) if rev.isdigit() else None,
                             event=DraftEvent(con.app.ctx.clock.now(), user.name,
                                              DraftState.PUBLISHING),
                             approved_by=user.name):
        raise back(f"{PREFIX}/drafts/{d.id}", "该草稿已被处理或已被起草人修改，请核对后再审批")
    try:
        res = await publish(con.app.ctx, drafts, d, await con.settings(), approved_by=user.name,
                            rng=con.rng)
    except PublishError as e:
        raise back(f"{PREFIX}/drafts/{d.id}") from e  # the draft page says why
    raise back(f"{PREFIX}/campaigns/{res.campaign_id}", "已批准并发布")


@requires("approver")
async def draft_reject(request: web.Request) -> web.StreamResponse:
    d = await _draft(request)
    user = user_of(request)
    reason = (await form(request)).get("reason", "").strip() or "未说明"
    if user.name == d.drafted_by:
        return web.Response(status=403, text="不能审批自己起草的预警")
    now = console(request).app.ctx.clock.now()
    if not await _drafts(request).move(d.id, DraftState.PENDING, DraftState.REJECTED,
                                       event=DraftEvent(now, user.name, DraftState.REJECTED,
                                                        reason),
                                       rejected_by=user.name, reason=reason):
        raise back(f"{PREFIX}/drafts/{d.id}", "该草稿已被处理")  # published, rejected, failed
    raise back(f"{PREFIX}/drafts/{d.id}", "已退回")


@requires("drafter")
async def draft_withdraw(request: web.Request) -> web.StreamResponse:
    """Its drafter takes a pending or rejected draft back: it is never published."""
    d = await _draft(request)
    user = user_of(request)
    if user.name != d.drafted_by:
        raise back(f"{PREFIX}/drafts/{d.id}", "只有起草人可以撤回该草稿")
    now = console(request).app.ctx.clock.now()
    if not await _drafts(request).move(d.id, EDITABLE, DraftState.WITHDRAWN,
                                       event=DraftEvent(now, user.name, DraftState.WITHDRAWN)):
        raise back(f"{PREFIX}/drafts/{d.id}", "该草稿已被处理，不能撤回")
    raise back(f"{PREFIX}/drafts/{d.id}", "已撤回，该草稿不会发布")


@requires("drafter")
async def draft_edit(request: web.Request) -> web.StreamResponse:
    """The compose form filled with the draft; submitting it resubmits the draft."""
    d = await _draft(request)
    if user_of(request).name != d.drafted_by:
        raise back(f"{PREFIX}/drafts/{d.id}", "只有起草人可以修改该草稿")
    if d.state not in EDITABLE or d.kind == "cancel":
        raise back(f"{PREFIX}/drafts/{d.id}", "该草稿已被处理，不能再修改")
    title = "修改草稿" if d.kind == "alert" else "更新预警"
    return compose_response(request, title, d.form, {}, d.kind, d.campaign_id, d.id)
