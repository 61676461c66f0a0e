"""The step between 提交 and publishing: what is about to go out, at which level, to whom.

Every level is confirmed (a blue warning to a whole county is as wrong as a red one when the
area was a slip); the page repeats the level, the area and its reach, carries the form in
hidden fields and publishes (or submits for approval) only when confirmed. An alert that
would reach nobody is refused with the reason, at both steps.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from warnbus.domain.states import GridState
from warnbus.registry import Registry
from warnbus.runtime.context import Context
from warnbus.web.console import drawn, html, svgmap
from warnbus.web.console.base import PREFIX
from warnbus.web.console.compose import DraftForm
from warnbus.web.console.html import csrf_field, esc


def reach_problem(p: dict[str, Any], hazard: str) -> str | None:
    """Why publishing what `p` (a preview) describes would warn nobody, or None."""
    if p["grids"] and (p["persons"] or p["speakers"] or p["kind"] != "alert"):
        return None
    what = f"{hazard}预警" if hazard else "该预警"
    return (f"所选区域内没有需要通知的网格和责任人（{what}只发往该灾种涉及的网格），"
            "未提交：请检查区域和灾种")


def hidden_form(f: DraftForm, kind: str, campaign: str, draft: str) -> str:
    """The form's fields as hidden inputs: what is confirmed is exactly what was shown."""
    pairs: list[tuple[str, str]] = [
        ("kind", kind), ("campaign", campaign), ("draft", draft), ("hazard", f.hazard),
        ("level", f.level), ("status", f.status), ("headline", f.headline),
        ("description", f.description), ("instruction", f.instruction),
        ("effective", f.effective), ("expires", f.expires),
        ("polygon", drawn.cap_text(f.polygon) if f.polygon else ""),
        ("polygon_desc", f.polygon_desc)]
    pairs += [("area", a) for a in f.areas]
    return "".join(f'<input type="hidden" name="{k}" value="{esc(v)}">' for k, v in pairs)


def confirm_html(csrf: str, f: DraftForm, *, kind: str, campaign: str, draft: str,
                 p: dict[str, Any], needs_approval: bool, hazard: str, area: str,
                 changes: str = "") -> str:
    """The confirmation: level, kind, area, reach; 确认 publishes, 返回修改 goes back."""
    level = html.LEVEL_ZH.get(f.level, f.level)
    what = {"update": "更新", "alert": "发布"}.get(kind, "发布")
    act = "提交审批" if needs_approval else f"确认{what}"
    status = "演练" if f.status == "Exercise" else "正式"
    reach = (f'{p["grids"]}个网格、{p["persons"]}名责任人、{p["speakers"]}个应急广播'
             f'（{p["villages"]}个村/社区）')
    after = ("提交后须由另一位审批人批准才会发布。" if needs_approval
             else "确认后立即发出，不能撤回（可再发更新或解除）。")
    fields = hidden_form(f, kind, campaign, draft)
    return (
        f'<div class="card confirm" id="confirm-publish"><h2>请核对后{act}</h2>'
        f'<p class="warn">即将{what}<b>{esc(level)}</b>{esc(hazard)}预警（{status}），'
        f'覆盖{esc(reach)}。{after}</p>'
        f'<dl class="kv"><dt>级别</dt><dd>{html.level_badge(f.level)}</dd>'
        f'<dt>灾种</dt><dd>{esc(hazard)}</dd><dt>性质</dt><dd>{status}</dd>'
        f'<dt>标题</dt><dd>{esc(f.headline)}</dd><dt>区域</dt><dd>{area}</dd>'
        f'<dt>覆盖</dt><dd id="confirm-reach">{esc(reach)}</dd>'
        f'<dt>有效期</dt><dd>{esc(f.effective.replace("T", " "))} 至 '
        f'{esc(f.expires.replace("T", " "))}（北京时间）</dd></dl>{changes}'
        f'<form method="post" action="{PREFIX}/compose" class="inline">{csrf_field(csrf)}'
        f'{fields}<input type="hidden" name="confirmed" value="1">'
        f'<button class="primary" id="confirm-btn">{act}：{esc(level)}预警</button></form>'
        f'<form method="post" action="{PREFIX}/compose" class="inline">{csrf_field(csrf)}'
        f'{fields}<input type="hidden" name="edit" value="1">'
        '<button id="back-edit">返回修改</button></form></div>')


#: An Update's map: grids the area keeps, adds and drops (classes s-kept, s-added, s-dropped).
CHANGE_ZH = {"kept": "保留", "added": "新增", "dropped": "移出（发解除）"}


async def area_before(ctx: Context, campaign: str) -> set[str]:
    """The grids a campaign's area holds now (not dropped by an earlier Update)."""
    return {g for g, st in (await ctx.store.grids(campaign)).items()
            if st.state is not GridState.DROPPED}


def changes_html(registry: Registry, before: Collection[str], after: Collection[str],
                 persons_after: int, map_id: str = "change-map") -> str:
    """What an Update changes: the area before and after, on a map and in counts."""
    b, a = set(before), set(after)
    added, dropped = a - b, b - a
    states = ({g: "kept" for g in a & b} | {g: "added" for g in added}
              | {g: "dropped" for g in dropped})
    legend = "".join(f'<span><i class="s-{k}"></i>{v}</span>' for k, v in CHANGE_ZH.items())
    grids_html = svgmap.svg(registry, states, focus=None, map_id=map_id, region_names=True)
    return (f'<div class="change" id="update-change"><h3>更新前后的区域</h3>'
            f'<p>网格：<b>{len(b)}</b> → <b>{len(a)}</b>（新增{len(added)}个，'
            f'移出{len(dropped)}个，'
            f'保留{len(a & b)}个）；更新后责任人{persons_after}名。</p>'
            f'{grids_html}<div class="legend">{legend}</div></div>')
