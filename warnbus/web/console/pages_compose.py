"""Compose a manual alert (or an Update / Cancel), preview its reach, approve and publish."""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from warnbus.domain.models import Level, MsgType, Reference
from warnbus.registry import Registry
from warnbus.web.console import drawn, svgmap
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
from warnbus.web.console.confirm import area_before, changes_html, confirm_html, reach_problem
from warnbus.web.console.drafts import EDITABLE, Draft, Drafts, DraftState
from warnbus.web.console.html import KIND_ZH, LEVEL_ZH, csrf_field, esc, options
from warnbus.web.console.preview import continuation_preview, preview, preview_html


def _drafts(request: web.Request) -> Drafts:
    return Drafts(console(request).app.ctx.redis)


def area_tree(reg: Registry, chosen: tuple[str, ...]) -> str:
    county = reg.county_code
    whole = county in chosen
    name = reg.data.regions[county].name if county in reg.data.regions else ""
    out = ['<div class="tree"><label class="whole"><input type="checkbox" name="area" '
           f'value="{esc(county)}" id="whole-county"{" checked" if whole else ""}>'
           f'全县（{esc(name)}全境）</label>']
    for town in reg.children_of(reg.county_code):
        t = reg.data.regions[town]
        villages = reg.children_of(town)
        on = whole or town in chosen
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
    if reg.county_code in values:  # 全县: the county's code stands for all of it
        return [reg.county_code]
    towns = {v for v in values if reg.data.regions.get(v) and v in reg.children_of(
        reg.county_code)}
    return [v for v in values if v in towns or reg.township_of(v) not in towns]


def compose_form(con: Console, csrf: str, f: DraftForm, errs: dict[str, str], *,
                 kind: str = "alert", campaign: str = "", draft: str = "") -> str:
    ctx = con.app.ctx
    hz = hazards_of(ctx)
    levels = next((h.levels for h in hz if h.key == f.hazard), tuple(Level))
    hz_data = ";".join(f"{h.key}:{','.join(lv.value for lv in h.levels)}" for h in hz)

    def err(name: str) -> str:
        return f'<span class="err">{esc(errs[name])}</span>' if name in errs else ""

    status = options([("Actual", "正式"), ("Exercise", "演练")], f.status)
    level_opts = options([("", "请选择级别")] + [(lv.value, LEVEL_ZH[lv.value]) for lv in levels],
                         f.level)
    return (
        f'<form method="post" action="{PREFIX}/compose" id="compose" class="card" '
        f'data-hazards="{esc(hz_data)}">{csrf_field(csrf)}'
        f'<input type="hidden" name="kind" value="{kind}"><input type="hidden" name="campaign" '
        f'value="{esc(campaign)}"><input type="hidden" name="draft" value="{esc(draft)}">'
        '<div class="grid2">'
        '<label>灾种<select name="hazard" id="hazard">'
        f'{options([("", "请选择")] + [(h.key, h.name) for h in hz], f.hazard)}</select>'
        f'{err("hazard")}</label>'
        '<label>级别<select name="level" id="level">'
        f'{level_opts}</select>{err("level")}</label>'
        f'<label>性质<select name="status">{status}</select>{err("status")}</label>'
        '<label>生效时间（北京时间）<input type="datetime-local" name="effective" '
        f'value="{esc(f.effective)}">{err("effective")}</label>'
        '<label>失效时间（北京时间）<input type="datetime-local" name="expires" '
        f'value="{esc(f.expires)}">{err("expires")}</label></div>'
        f'<label>标题<input name="headline" id="headline" value="{esc(f.headline)}" '
        f'maxlength="120">{err("headline")}</label>'
        '<label>内容<textarea name="description" rows="3" placeholder="预计影响时间、强度与范围">'
        f'{esc(f.description)}</textarea></label>'
        '<label>防御指南<textarea name="instruction" id="instruction" rows="3">'
        f'{esc(f.instruction)}</textarea></label>'
        f'<fieldset><legend>预警区域 {err("areas")}</legend>'
        '<p class="muted hint">勾选乡镇或村，或在地图上绘制区域；'
        '两者可同时使用，预警覆盖其合集。</p>'
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
        '<p class="muted hint" id="draw-hint">点击“在地图上绘制区域”，'
        '再在地图上逐点点击（手机上轻触）'
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
    return compose_response(request, title, f, {}, kind, campaign)


def compose_response(request: web.Request, title: str, f: DraftForm, errs: dict[str, str],
                     kind: str, campaign: str, draft: str = "") -> web.Response:
    con = console(request)
    form_html = compose_form(con, session_of(request).csrf, f, errs, kind=kind,
                             campaign=campaign, draft=draft)
    body = (f'<div class="split"><div>{form_html}</div>'
            f'<div>{draw_map(con)}'
            '<div id="preview" class="card"><p class="muted">选择区域后点击“预览覆盖范围”。</p>'
            '</div></div></div>')
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
    """Check the form, then show what it would send (`confirm`); publish (or submit for
    approval) only when confirmed. With `draft`: its drafter's edit of a pending or
    rejected draft, resubmitted as a new revision."""
    con = console(request)
    ctx = con.app.ctx
    data = await form(request)
    kind = "update" if data.get("kind") == "update" and data.get("campaign") else "alert"
    campaign = data.get("campaign", "") if kind == "update" else ""
    draft = await _editing(request, data.get("draft", ""), kind, campaign)
    if campaign:
        await _may_continue(con, campaign)
    f, errs = await _parsed(request)
    settings = await con.settings()
    if not errs and f.polygon and drawn_reaches_nobody(ctx, build_alert(
            ctx, f, settings, "preview")):
        errs = {"polygon": NOBODY}
    title = ("修改草稿" if draft else "发布预警") if kind == "alert" else "更新预警"
    draft_id = draft.id if draft else ""
    if errs or data.get("edit") == "1":
        return compose_response(request, title, f, errs, kind, campaign, draft_id)
    p = await preview_of(con, f, kind, campaign)
    hazard = next((h.name for h in hazards_of(ctx) if h.key == f.hazard), "")
    problem = reach_problem(p, hazard)
    if problem:
        return compose_response(request, title, f, {"areas": problem}, kind, campaign, draft_id)
    level = f.level
    if campaign:
        meta = await ctx.store.meta(campaign)
        # Not planned yet, the thread has no level: the update's own decides.
        old = (meta.level if meta else None) or level
        level = min((level, old), key=lambda lv: Level(lv).rank)  # the more urgent decides
    if data.get("confirmed") != "1":
        changes = (changes_html(ctx.registry, await area_before(ctx, campaign), p["grid_ids"],
                                p["persons"]) if campaign else "")
        body = confirm_html(session_of(request).csrf, f, kind=kind, campaign=campaign,
                            draft=draft_id, p=p, hazard=hazard, area=area_summary(con, f),
                            needs_approval=_needs_approval(level, settings.approval_levels)
                            or bool(campaign and await on_behalf_of(ctx, campaign)),
                            changes=changes)
        return page(request, "确认发布", body + f'<div class="card">{preview_html(p)}</div>',
                    active="compose")
    return await _submit(request, kind, level, f, campaign, draft)


async def _editing(request: web.Request, draft_id: str, kind: str, campaign: str
                   ) -> Draft | None:
    """The draft a submission edits (its own drafter's, still editable), or None."""
    if not draft_id:
        return None
    d = await _drafts(request).get(draft_id)
    if d is None:
        raise web.HTTPNotFound()
    if d.drafted_by != user_of(request).name:
        raise back(f"{PREFIX}/drafts/{d.id}", "只有起草人可以修改该草稿")
    if d.state not in EDITABLE or d.kind != kind or d.campaign_id != campaign:
        raise back(f"{PREFIX}/drafts/{d.id}", "该草稿已被处理，不能再修改")
    return d


async def _submit(request: web.Request, kind: str, level: str, f: DraftForm,
                  campaign: str, editing: Draft | None = None) -> web.StreamResponse:
    con = console(request)
    ctx = con.app.ctx
    drafts = _drafts(request)
    settings = await con.settings()
    user = user_of(request).name
    if editing is None:
        draft: Draft | None = await drafts.create(kind, level, f, user, ctx.clock.now(), campaign)
        said = "已提交，等待审批人批准"
    else:
        if not await drafts.resubmit(editing, f, level, user, ctx.clock.now()):
            raise back(f"{PREFIX}/drafts/{editing.id}", "该草稿已被处理或已被修改，未重新提交")
        draft = await drafts.get(editing.id)
        said = "已修改并重新提交，等待审批人批准"
    assert draft is not None
    # Another sender's thread is continued on its behalf only with an approver's approval.
    if _needs_approval(level, settings.approval_levels) or (
            campaign and await on_behalf_of(ctx, campaign)):
        raise back(f"{PREFIX}/drafts/{draft.id}", said)
    if not await drafts.move(draft.id, DraftState.PENDING, DraftState.PUBLISHING,
                             at_rev=draft.rev):
        raise back(f"{PREFIX}/drafts/{draft.id}", "该草稿已被处理")
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


def area_summary(con: Console, f: DraftForm) -> str:
    """The regions ticked and the drawn area of a draft, as the approver reads them."""
    regions = con.app.ctx.registry.data.regions
    parts = [esc(regions[a].name if a in regions else a) for a in f.areas]
    if f.polygon:
        parts.append(f'{esc(f.polygon_desc or drawn.DEFAULT_DESC)}（地图绘制，'
                     f'{len(f.polygon) - 1}个顶点）'
                     f'<details><summary>CAP 多边形坐标</summary><p class="msg">'
                     f'{esc(drawn.cap_text(f.polygon))}</p></details>')
    return "、".join(parts) or "—"


async def behalf_row(con: Console, d: Draft) -> str:
    """For an Update or Cancel of another sender's thread: that it is published on its
    behalf (under the console's sender), which is why it needs an approver."""
    if d.kind == "alert" or not d.campaign_id or await con.app.ctx.store.meta(
            d.campaign_id) is None:
        return ""
    owner = await on_behalf_of(con.app.ctx, d.campaign_id)
    return (f'<dt>代发</dt><dd class="warn" id="on-behalf">本县代 {esc(owner)} '
            f'{KIND_ZH.get(d.kind, "")}该预警，须审批人批准</dd>' if owner else "")
