"""Compose a manual alert (or an Update / Cancel), preview its reach, approve and publish."""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from warnbus.domain.models import Level, MsgType, Reference
from warnbus.registry import Registry
from warnbus.web.console import drawn, html, svgmap
from warnbus.web.console.actions import (
    KIND_TYPE,
    PublishError,
    cancel_form,
    latest_alert,
    on_behalf_of,
    publish,
    update_form,
    why_not_continue,
)
from warnbus.web.console.base import (
    PREFIX,
    Console,
    back,
    console,
    form,
    json_reply,
    page,
    requires,
    session_of,
    user_of,
)
from warnbus.web.console.board import campaign_meta
from warnbus.web.console.compose import (
    DraftForm,
    build_alert,
    defaults,
    drawn_reaches_nobody,
    form_times,
    hazards_of,
    parse_form,
)
from warnbus.web.console.drafts import Draft, Drafts
from warnbus.web.console.html import LEVEL_ZH, csrf_field, esc, options
from warnbus.web.console.preview import continuation_preview, preview, preview_html


def _drafts(request: web.Request) -> Drafts:
    return Drafts(console(request).app.ctx.redis)


def area_tree(reg: Registry, chosen: tuple[str, ...]) -> str:
    out = ['<div class="tree">']
    for town in reg.children_of(reg.county_code):
        t = reg.data.regions[town]
        villages = reg.children_of(town)
        on = town in chosen
        out.append(f'<details{" open" if any(v in chosen for v in villages) else ""}><summary>'
                   f'<label><input type="checkbox" name="area" value="{town}" class="town"'
                   f'{" checked" if on else ""}>{esc(t.name)}</label></summary><div class="vils">')
        for v in villages:
            out.append(f'<label class="inline"><input type="checkbox" name="area" value="{v}" '
                       f'class="vil" data-town="{town}"{" checked" if on or v in chosen else ""}>'
                       f'{esc(reg.data.regions[v].name)}</label>')
        out.append("</div></details>")
    out.append("</div>")
    return "".join(out)


def _areas(reg: Registry, values: list[str]) -> list[str]:
    # A township chosen whole stands for its villages: listing them too would narrow the
    # area to those villages (the matcher keeps the most specific of nested codes).
    towns = {v for v in values if reg.data.regions.get(v) and v in reg.children_of(
        reg.county_code)}
    return [v for v in values if v in towns or reg.township_of(v) not in towns]


def compose_form(con: Console, csrf: str, f: DraftForm, errs: dict[str, str], *,
                 kind: str = "alert", campaign: str = "") -> str:
    ctx = con.app.ctx
    hz = hazards_of(ctx)
    levels = next((h.levels for h in hz if h.key == f.hazard), tuple(Level))
    hz_data = ";".join(f"{h.key}:{','.join(lv.value for lv in h.levels)}" for h in hz)

    def err(name: str) -> str:
        return f'<span class="err">{esc(errs[name])}</span>' if name in errs else ""

    status = options([("Actual", "正式"), ("Exercise", "演练")], f.status)
    return (
        f'<form method="post" action="{PREFIX}/compose" id="compose" class="card" '
        f'data-hazards="{esc(hz_data)}">{csrf_field(csrf)}'
        f'<input type="hidden" name="kind" value="{kind}"><input type="hidden" name="campaign" '
        f'value="{esc(campaign)}"><div class="grid2">'
        f'<label>灾种<select name="hazard" id="hazard">{options([("", "请选择")] + [(h.key, h.name) for h in hz], f.hazard)}</select>{err("hazard")}</label>'
        f'<label>级别<select name="level" id="level">{options([(lv.value, LEVEL_ZH[lv.value]) for lv in levels], f.level)}</select>{err("level")}</label>'
        f'<label>性质<select name="status">{status}</select>{err("status")}</label>'
        f'<label>生效时间（北京时间）<input type="datetime-local" name="effective" value="{esc(f.effective)}">{err("effective")}</label>'
        f'<label>失效时间（北京时间）<input type="datetime-local" name="expires" value="{esc(f.expires)}">{err("expires")}</label></div>'
        f'<label>标题<input name="headline" id="headline" value="{esc(f.headline)}" maxlength="120">{err("headline")}</label>'
        f'<label>内容<textarea name="description" rows="3" placeholder="预计影响时间、强度与范围">{esc(f.description)}</textarea></label>'
        f'<label>防御指南<textarea name="instruction" id="instruction" rows="3">{esc(f.instruction)}</textarea></label>'
        f'<fieldset><legend>预警区域 {err("areas")}</legend>'
        '<p class="muted hint">勾选乡镇或村，或在地图上绘制区域；两者可同时使用，预警覆盖其合集。</p>'
        f'{area_tree(ctx.registry, f.areas)}{drawn_fields(f, err("polygon"))}</fieldset>'
        '<div class="actions"><button type="button" id="preview-btn">预览覆盖范围</button>'
        '<button class="primary" id="submit-btn">提交发布</button></div></form>')


def drawn_fields(f: DraftForm, error: str) -> str:
    """The drawn area as the form sends it: CAP polygon text (set by the map) and its name."""
    ring = drawn.cap_text(f.polygon) if f.polygon else ""
    n = max(0, len(f.polygon) - 1)
    state = f"已绘制（{n}个顶点）" if n else "未绘制"
    return (f'<div class="drawn-fields"><input type="hidden" name="polygon" id="polygon" '
            f'value="{esc(ring)}"><span>地图绘制区域：<b id="drawn-state">{state}</b></span>'
            f'{error}<label>绘制区域名称（areaDesc）<input name="polygon_desc" id="polygon-desc" '
            f'maxlength="{drawn.DESC_MAX}" value="{esc(f.polygon_desc or drawn.DEFAULT_DESC)}">'
            '</label></div>')


def draw_map(con: Console) -> str:
    """The compose page's map with the drawing tools (console.js does the drawing)."""
    return (
        '<div class="card" id="draw-card"><div class="drawbar">'
        '<button type="button" id="draw-btn">在地图上绘制区域</button>'
        '<button type="button" id="undo-btn" disabled>撤销上一点</button>'
        '<button type="button" id="clear-btn" disabled>清除</button>'
        '<button type="button" id="finish-btn" class="primary" disabled>完成</button></div>'
        '<p class="muted hint" id="draw-hint">点击“在地图上绘制区域”，再在地图上逐点点击（手机上轻触）'
        '勾画区域边界，至少3个点；点击“完成”或首个点闭合区域。</p>'
        f'{svgmap.svg(con.app.ctx.registry, map_id="compose-map")}</div>')


@requires("drafter")
async def compose_page(request: web.Request) -> web.Response:
    con = console(request)
    ctx = con.app.ctx
    campaign = request.query.get("campaign", "")
    if campaign:
        await _may_continue(con, campaign)
        f = update_form(ctx, await latest_alert(ctx, campaign))
        eff, _ = form_times(ctx)
        f = msgspec.structs.replace(f, effective=eff)
        title, kind = "更新预警", "update"
    else:
        eff, exp = form_times(ctx)
        f = DraftForm(hazard="", level="", effective=eff, expires=exp)
        title, kind = "发布预警", "alert"
    return _compose(request, title, f, {}, kind, campaign)


def _compose(request: web.Request, title: str, f: DraftForm, errs: dict[str, str], kind: str,
             campaign: str) -> web.Response:
    con = console(request)
    body = (f'<div class="split"><div>{compose_form(con, session_of(request).csrf, f, errs, kind=kind, campaign=campaign)}</div>'
            f'<div>{draw_map(con)}'
            '<div id="preview" class="card"><p class="muted">选择区域后点击“预览覆盖范围”。</p></div></div></div>')
    return page(request, title, body, active="compose", status=422 if errs else 200)


@requires("drafter")
async def compose_defaults(request: web.Request) -> web.Response:
    con = console(request)
    return json_reply(defaults(con.app.ctx, await con.settings(),
                               request.query.get("hazard", ""), request.query.get("level", "")))


async def _parsed(request: web.Request) -> tuple[DraftForm, dict[str, str]]:
    ctx = console(request).app.ctx
    data = await request.post()
    areas = _areas(ctx.registry, [str(a) for a in data.getall("area", [])])
    return parse_form(ctx, await form(request), areas)


@requires("drafter")
async def compose_preview(request: web.Request) -> web.Response:
    con = console(request)
    f, errs = await _parsed(request)
    if errs:
        return json_reply({"errors": errs}, 422)
    settings = await con.settings()
    data = await form(request)
    kind = "update" if data.get("kind") == "update" and data.get("campaign") else "alert"
    campaign = data.get("campaign", "") if kind == "update" else ""
    if campaign:
        why = await why_not_continue(con.app.ctx, campaign)
        if why is not None:
            return json_reply({"errors": {"campaign": why}}, 422)
    alert = build_alert(con.app.ctx, f, settings, "preview")
    if drawn_reaches_nobody(con.app.ctx, alert):
        return json_reply({"errors": {"polygon": NOBODY}}, 422)
    p = await preview_of(con, f, kind, campaign)
    return json_reply({"html": preview_html(p), "grids": p["grid_ids"], "preview": {
        k: v for k, v in p.items() if k not in ("grid_ids", "texts")}})


async def preview_of(con: Console, f: DraftForm, kind: str, campaign: str) -> dict[str, Any]:
    """What publishing the form as `kind` would send: a new alert's first wave, or what the
    intake would do with the Update or Cancel of `campaign` as it stands now."""
    ctx = con.app.ctx
    settings = await con.settings()
    msg_type = KIND_TYPE.get(kind, MsgType.ALERT)
    if msg_type is MsgType.ALERT or not campaign:
        return preview(ctx, build_alert(ctx, f, settings, "preview"), settings)
    prev = await latest_alert(ctx, campaign)  # as publishing builds it (`actions.publish`)
    alert = build_alert(ctx, f, settings, "preview", msg_type=msg_type, references=(
        Reference(prev.sender, prev.identifier, prev.sent.isoformat()),))
    return await continuation_preview(ctx, alert, settings, campaign)


NOBODY = "手绘区域内没有需要通知的网格，请重新绘制"


def _needs_approval(level: str, approval_levels: tuple[str, ...]) -> bool:
    return level in approval_levels


@requires("drafter")
async def compose_submit(request: web.Request) -> web.StreamResponse:
    con = console(request)
    ctx = con.app.ctx
    data = await form(request)
    kind = "update" if data.get("kind") == "update" and data.get("campaign") else "alert"
    campaign = data.get("campaign", "") if kind == "update" else ""
    if campaign:
        await _may_continue(con, campaign)
    f, errs = await _parsed(request)
    if not errs and f.polygon and drawn_reaches_nobody(ctx, build_alert(
            ctx, f, await con.settings(), "preview")):
        errs = {"polygon": NOBODY}
    if errs:
        return _compose(request, "发布预警" if kind == "alert" else "更新预警", f, errs, kind,
                        campaign)
    level = f.level
    if campaign:
        meta = await ctx.store.meta(campaign)
        # Not planned yet, the thread has no level: the update's own decides.
        old = (meta.level if meta else None) or level
        level = min((level, old), key=lambda lv: Level(lv).rank)  # the more urgent decides
    return await _submit(request, kind, level, f, campaign)


async def _submit(request: web.Request, kind: str, level: str, f: DraftForm,
                  campaign: str) -> web.StreamResponse:
    con = console(request)
    ctx = con.app.ctx
    drafts = _drafts(request)
    settings = await con.settings()
    draft = await drafts.create(kind, level, f, user_of(request).name, ctx.clock.now(), campaign)
    # Another sender's thread is continued on its behalf only with an approver's approval.
    if _needs_approval(level, settings.approval_levels) or (
            campaign and await on_behalf_of(ctx, campaign)):
        raise back(f"{PREFIX}/drafts/{draft.id}", "已提交，等待审批人批准")
    await drafts.move(draft.id, "pending", "publishing")
    try:
        res = await publish(ctx, drafts, draft, settings, rng=con.rng)
    except PublishError as e:
        raise back(f"{PREFIX}/drafts/{draft.id}") from e  # the draft page says why
    raise back(f"{PREFIX}/campaigns/{res.campaign_id}", "已发布")


@requires("drafter")
async def cancel_submit(request: web.Request) -> web.StreamResponse:
    con = console(request)
    ctx = con.app.ctx
    cid = request.match_info["cid"]
    reason = (await form(request)).get("reason", "").strip()
    if not reason:
        raise back(f"{PREFIX}/campaigns/{cid}", "解除须填写原因")
    await _may_continue(con, cid)
    alert = await latest_alert(ctx, cid)
    meta = await campaign_meta(ctx, cid)
    return await _submit(request, "cancel", meta.require_level(),
                         cancel_form(ctx, alert, reason), cid)


async def _may_continue(con: Console, cid: str) -> None:
    """Back to the board, saying why, unless the console may update or cancel `cid`: no
    draft is made of what could never be published."""
    why = await why_not_continue(con.app.ctx, cid)
    if why is not None:
        raise back(f"{PREFIX}/campaigns/{cid}", why)


@requires("drafter", "approver")
async def drafts_page(request: web.Request) -> web.Response:
    rows = []
    for d in await _drafts(request).recent():
        link = f'<a href="{PREFIX}/drafts/{d.id}">{esc(d.form.headline or d.id)}</a>'
        rows.append([html.bj(d.drafted_at, "%m-%d %H:%M"), html.KIND_ZH.get(d.kind, d.kind),
                     html.level_badge(d.level), link, esc(d.drafted_by),
                     esc(d.approved_by or d.rejected_by), html.DRAFT_STATE_ZH.get(d.state, d.state)])
    body = html.table(["起草时间", "类型", "级别", "标题", "起草人", "审批人", "状态"], rows)
    return page(request, "审批", body, active="drafts")


async def _draft(request: web.Request) -> Draft:
    d = await _drafts(request).get(request.match_info["id"])
    if d is None:
        raise web.HTTPNotFound(text="no such draft")
    return d


@requires("drafter", "approver")
async def draft_page(request: web.Request) -> web.Response:
    con = console(request)
    d = await _draft(request)
    user = user_of(request)
    msg = request.query.get("msg", "")
    f = d.form
    info = (f'<dl class="kv"><dt>类型</dt><dd>{html.KIND_ZH.get(d.kind, d.kind)}</dd>'
            f'<dt>状态</dt><dd id="draft-state">{html.DRAFT_STATE_ZH.get(d.state, d.state)}</dd>'
            f'<dt>起草人</dt><dd>{esc(d.drafted_by)}（{html.bj(d.drafted_at)}）</dd>'
            f'<dt>审批人</dt><dd>{esc(d.approved_by or d.rejected_by or "—")}</dd>'
            f'<dt>标题</dt><dd>{esc(f.headline)}</dd><dt>内容</dt><dd>{esc(f.description)}</dd>'
            f'<dt>有效期</dt><dd>{esc(f.effective)} 至 {esc(f.expires)}</dd>'
            f'<dt>区域</dt><dd id="draft-area">{area_summary(con, f)}</dd>'
            + (f'<dt>说明</dt><dd>{esc(d.reason)}</dd>' if d.reason else "")
            + await _behalf_row(con, d) + "</dl>")
    if d.state == "failed":
        # Plainly, above everything: this message was NOT sent.
        msg = ""
        info = (f'<p class="err" id="publish-failed">发布失败，预警未发出：{esc(d.reason)}</p>'
                + info)
    actions = ""
    csrf = session_of(request).csrf
    if d.state == "pending" and user.has("approver") and user.name != d.drafted_by:
        actions = (f'<form method="post" action="{PREFIX}/drafts/{d.id}/approve" class="inline">'
                   f'{csrf_field(csrf)}<button class="primary" id="approve-btn" '
                   'data-confirm="确认批准并立即发布？">批准并发布</button></form>'
                   f'<form method="post" action="{PREFIX}/drafts/{d.id}/reject" class="inline">'
                   f'{csrf_field(csrf)}<input name="reason" placeholder="退回原因" required>'
                   '<button>退回</button></form>')
    elif d.state == "pending":
        actions = '<p class="muted">等待另一位审批人批准（不能批准自己起草的预警）。</p>'
    if d.campaign_id and d.state == "published":
        actions += f'<p><a class="button" href="{PREFIX}/campaigns/{d.campaign_id}">查看叫应进展</a></p>'
    reach, chosen = "", []
    if d.state == "pending":
        why = (await why_not_continue(con.app.ctx, d.campaign_id)
               if d.kind != "alert" and d.campaign_id else None)
        try:
            if why is not None:  # publishing it would fail: nothing would be sent
                reach = f'<p class="err">{esc(why)}</p>'
            else:
                p = await preview_of(con, f, d.kind, d.campaign_id)
                reach, chosen = preview_html(p), p["grid_ids"]
        except Exception as e:  # a draft that no longer builds (e.g. expired) says so
            reach = f'<p class="err">{esc(getattr(e, "message", str(e)))}</p>'
    small = svgmap.svg(con.app.ctx.registry, selected=chosen, focus=",".join(f.areas),
                       shapes=(f.polygon,) if f.polygon else (), fit_shapes=True,
                       map_id="draft-map")
    body = ((f'<p class="ok">{esc(msg)}</p>' if msg else "")
            + f'<div class="split"><div class="card">{info}{actions}</div><div>'
            f'<div class="card">{small}</div><div class="card">{reach}</div></div></div>')
    return page(request, f"{html.LEVEL_ZH.get(d.level, '')}预警 · {html.KIND_ZH.get(d.kind, '')}",
                body, active="drafts")


async def _behalf_row(con: Console, d: Draft) -> str:
    """For an Update or Cancel of another sender's thread: that it is published on its
    behalf (under the console's sender), which is why it needs an approver."""
    if d.kind == "alert" or not d.campaign_id or await con.app.ctx.store.meta(
            d.campaign_id) is None:
        return ""
    owner = await on_behalf_of(con.app.ctx, d.campaign_id)
    return (f'<dt>代发</dt><dd class="warn" id="on-behalf">本县代 {esc(owner)} '
            f'{html.KIND_ZH.get(d.kind, "")}该预警，须审批人批准</dd>' if owner else "")


def area_summary(con: Console, f: DraftForm) -> str:
    """The regions ticked and the drawn area of a draft, as the approver reads them."""
    regions = con.app.ctx.registry.data.regions
    parts = [esc(regions[a].name if a in regions else a) for a in f.areas]
    if f.polygon:
        parts.append(f'{esc(f.polygon_desc or drawn.DEFAULT_DESC)}（地图绘制，{len(f.polygon) - 1}个顶点）'
                     f'<details><summary>CAP 多边形坐标</summary><p class="msg">'
                     f'{esc(drawn.cap_text(f.polygon))}</p></details>')
    return "、".join(parts) or "—"


@requires("approver")
async def draft_approve(request: web.Request) -> web.StreamResponse:
    con = console(request)
    d = await _draft(request)
    user = user_of(request)
    if user.name == d.drafted_by:
        return web.Response(status=403, text=html.bare("不能审批", '<p class="err">不能批准自己起草的预警，须由另一位审批人批准。</p>'),
                            content_type="text/html")
    drafts = _drafts(request)
    if not await drafts.move(d.id, "pending", "publishing", approved_by=user.name):
        raise back(f"{PREFIX}/drafts/{d.id}", "该草稿已被处理")
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
    if not await _drafts(request).move(d.id, "pending", "rejected", rejected_by=user.name,
                                       reason=reason):
        raise back(f"{PREFIX}/drafts/{d.id}", "该草稿已被处理")  # published, rejected, failed
    raise back(f"{PREFIX}/drafts/{d.id}", "已退回")
