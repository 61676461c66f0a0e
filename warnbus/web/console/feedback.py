"""The console's feedback after the ack: the board's section, the entry form, the CSV.

The board shows, per township (or per village of one township), 已转移 N 人, reports made,
due and overdue, and 险情 reported; a drafter or approver enters a report for a person who
phoned it in (kept as entered by them); the record's feedback section downloads as CSV.
"""

from __future__ import annotations

from aiohttp import web

from warnbus.domain.feedback import FEEDBACK_ZH, FeedbackKind
from warnbus.domain.models import AckVia
from warnbus.flow.feedback import record_feedback
from warnbus.flow.feedback_view import Tally, feedback_csv, feedback_rows, feedback_tallies
from warnbus.runtime.context import Context
from warnbus.web.console.base import PREFIX, back, console, form, requires, user_of
from warnbus.web.console.html import csrf_field, esc, table
from warnbus.web.feedback_form import REFUSED_ZH, BadReport, form_event, form_id_field, report_of

VIA_ZH = {"sms": "短信", "dtmf": "电话按键", "wecom": "企业微信", "link": "链接",
          "console": "值班台录入"}


def _cells(t: Tally) -> list[str]:
    return [str(t.evacuated), str(t.reported), str(t.due), str(t.overdue), str(t.hazards)]


async def feedback_section(ctx: Context, cid: str, town: str, csrf: str, can_act: bool) -> str:
    """The board's feedback section: totals for the campaign, then per township (or per
    village of `town`), the latest 险情, and the entry form."""
    tallies = await feedback_tallies(ctx, cid)
    reg = ctx.registry
    whole = tallies.get("", Tally())
    codes = reg.children_of(town) if town else reg.children_of(reg.county_code)
    head = ["地区", "已转移（人）", "已报送", "待报送", "逾期未报", "险情"]
    rows = [[esc(reg.data.regions[c].name), *_cells(tallies[c])] for c in codes if c in tallies]
    hazards = "".join(f"<li>{esc(x)}</li>" for x in whole.hazard_texts)
    entry = ""
    if can_act:
        options = "".join(f'<option value="{k.value}">{FEEDBACK_ZH[k]}</option>'
                          for k in FeedbackKind)
        entry = (f'<form method="post" action="{PREFIX}/campaigns/{esc(cid)}/feedback" '
                 f'class="inline">{csrf_field(csrf)}{form_id_field()}'
                 '<input name="person_id" required placeholder="人员编号">'
                 f'<select name="kind">{options}</select>'
                 '<input name="count" inputmode="numeric" size="5" placeholder="转移人数">'
                 '<input name="text" maxlength="500" placeholder="险情/灾情">'
                 '<button>录入反馈</button></form>')
    return (f'<h2 id="feedback">反馈 · 已转移 <b data-c="evacuated">{whole.evacuated}</b> 人</h2>'
            f'<p>已报送 {whole.reported} · 待报送 {whole.due} · 逾期未报 {whole.overdue} · '
            f'险情 {whole.hazards} · <a href="{PREFIX}/campaigns/{esc(cid)}/feedback.csv" '
            'download>导出反馈记录</a></p>'
            + (table(head, rows, "small") if rows else "")
            + (f"<ul>{hazards}</ul>" if hazards else "") + entry)


def rows_html(rows: list[dict[str, str]]) -> str:
    """The record's feedback section (the print page)."""
    head = ["姓名", "地区", "报送时间（北京时间）", "报送内容", "报送方式", "录入人"]
    body = [[esc(r["name"] or r["person_id"]), esc(r["region"]), esc(r["reported_at"]),
             esc(r["report"]), esc(VIA_ZH.get(r["via"], r["via"])), esc(r["entered_by"])]
            for r in rows]
    return table(head, body, "small record")


@requires("drafter", "approver")
async def enter_feedback(request: web.Request) -> web.StreamResponse:
    """A report phoned in, entered for the person by the signed-in user."""
    ctx = console(request).app.ctx
    cid = request.match_info["cid"]
    f = await form(request)
    pid = f.pop("person_id", "").strip()
    f.pop("_csrf", None)
    at = f"{PREFIX}/campaigns/{cid}"
    try:
        report = report_of({k: v for k, v in f.items() if v})
        event = form_event(f, report)
    except BadReport as e:
        raise back(at, f"反馈未录入：{e}") from None
    res = await record_feedback(ctx, cid, pid, report, AckVia.CONSOLE, by=user_of(request).name,
                                event=event)
    if res.kept:
        raise back(at, f"已录入{esc(pid)}的反馈：{report.zh}")
    raise back(at, "反馈未录入：" + REFUSED_ZH[res.status])


@requires()
async def feedback_csv_download(request: web.Request) -> web.Response:
    ctx = console(request).app.ctx
    cid = request.match_info["cid"]
    text = "\ufeff" + feedback_csv(await feedback_rows(ctx, cid))  # BOM: Excel reads UTF-8
    return web.Response(text=text, content_type="text/csv", charset="utf-8", headers={
        "Content-Disposition": f'attachment; filename="fankui-{cid}.csv"'})
