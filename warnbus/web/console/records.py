"""Records: past campaigns with filters, the 叫应 record (CSV, printable) and the statistics
a county office reports upward (time to first confirmation, share confirmed within 3/5/10
minutes, per township)."""

from __future__ import annotations

import io
import statistics
from dataclasses import dataclass, field

from aiohttp import web

from warnbus.domain.meta import CampaignMeta
from warnbus.domain.models import Role, TargetKind
from warnbus.flow.filed import COLUMNS, filed_rows
from warnbus.flow.record import record_rows, write_csv
from warnbus.runtime.context import Context
from warnbus.web.console import html
from warnbus.web.console.base import PREFIX, console, page, requires
from warnbus.web.console.board import campaign_meta, state_zh
from warnbus.web.console.html import esc

WITHIN_MIN = (3, 5, 10)


@dataclass
class Tally:
    """Primary officers warned, and when each confirmed (seconds after the first wave)."""

    warned: int = 0
    delays: list[float] = field(default_factory=list)

    def add(self, other: Tally) -> None:
        self.warned += other.warned
        self.delays += other.delays

    def share(self, minutes: int) -> str:
        if not self.warned:
            return "—"
        n = sum(1 for d in self.delays if d <= minutes * 60)
        return f"{100 * n / self.warned:.0f}%"

    def first(self) -> str:
        return _dur(min(self.delays)) if self.delays else "—"

    def median(self) -> str:
        return _dur(statistics.median(self.delays)) if self.delays else "—"


def _dur(sec: float) -> str:
    return f"{int(sec // 60)}分{int(sec % 60):02d}秒"


async def tallies(ctx: Context, cid: str, meta: CampaignMeta) -> dict[str, Tally]:
    """Per township code (and "" for the whole campaign)."""
    t0 = meta.t0 or 0.0
    acks = await ctx.store.acks(cid)
    out: dict[str, Tally] = {"": Tally()}
    for t in (await ctx.store.targets(cid)).values():
        if t.kind is not TargetKind.PERSON or t.role is not Role.PRIMARY:
            continue
        town = ctx.registry.township_of(t.region) or "?"
        a = acks.get(t.id)
        for key in ("", town):
            tally = out.setdefault(key, Tally())
            tally.warned += 1
            if a is not None:
                tally.delays.append(max(0.0, a.at - t0))
    return out


def matches(meta: CampaignMeta, q: dict[str, str]) -> bool:
    created = html.bj(meta.created_at, "%Y-%m-%d")
    if q.get("from") and created < q["from"]:
        return False
    if q.get("to") and created > q["to"]:
        return False
    if q.get("level") and meta.level != q["level"]:
        return False
    if q.get("event") and q["event"] not in meta.event:
        return False
    town = q.get("town", "")
    return not town or any(v.startswith(town[:9]) for v in meta.villages)


def stats_table(reg_names: dict[str, str], by_town: dict[str, Tally]) -> str:
    head = ["乡镇", "网格员", "首个确认", "确认中位数",
            *(f"{m}分钟内确认" for m in WITHIN_MIN)]
    rows = []
    for code in sorted(by_town, key=lambda c: (c != "", c)):
        t = by_town[code]
        rows.append([esc(reg_names.get(code, "合计") if code else "合计"), str(t.warned),
                     t.first(), t.median(), *(t.share(m) for m in WITHIN_MIN)])
    return html.table(head, rows, "small stats-table")


@requires()
async def records_page(request: web.Request) -> web.Response:
    ctx = console(request).app.ctx
    q = {k: request.query.get(k, "") for k in ("from", "to", "level", "event", "town")}
    reg = ctx.registry
    names = {c: r.name for c, r in reg.data.regions.items()}
    pooled: dict[str, Tally] = {}
    rows = []
    for cid, _created in await ctx.store.messages.newest_campaigns(500):
        meta = await ctx.store.meta(cid)
        if meta is None or not matches(meta, q):
            continue
        tal = await tallies(ctx, cid, meta)
        for k, t in tal.items():
            pooled.setdefault(k, Tally()).add(t)
        rows.append([html.bj(meta.created_at, "%Y-%m-%d %H:%M"), esc(meta.event),
                     html.level_badge(meta.level),
                     html.drill_badge(meta.drill)
                     + f'<a href="{PREFIX}/campaigns/{cid}">{esc(meta.headline or cid)}</a>',
                     state_zh(meta, ctx.clock.now()), tal[""].first(),
                     tal[""].share(5),
                     f'<a href="{PREFIX}/campaigns/{cid}/record.csv">CSV</a> · '
                     f'<a href="{PREFIX}/campaigns/{cid}/print">打印</a>'])
    towns = [(c, names[c]) for c in reg.children_of(reg.county_code)]
    levels = [("", "全部级别"), *html.LEVEL_ZH.items()]
    filt = (f'<form method="get" class="card row filters">'
            f'<label>自<input type="date" name="from" value="{esc(q["from"])}"></label>'
            f'<label>至<input type="date" name="to" value="{esc(q["to"])}"></label>'
            f'<label>灾种<input name="event" value="{esc(q["event"])}" placeholder="如 暴雨">'
            '</label>'
            f'<label>级别<select name="level">{html.options(levels, q["level"])}</select></label>'
            f'<label>乡镇<select name="town">{html.options([("", "全县"), *towns], q["town"])}'
            '</select></label>'
            '<button>筛选</button></form>')
    body = (filt + html.table(["时间", "灾种", "级别", "预警", "状态", "首个确认", "5分钟确认率",
                               "记录"], rows)
            + "<h2>统计（所选预警合计）</h2>" + stats_table(names, pooled))
    return page(request, "记录统计", body, active="records")


async def _root(ctx: Context, cid: str) -> tuple[str, CampaignMeta]:
    meta = await campaign_meta(ctx, cid)
    return meta.root, meta


@requires()
async def record_csv(request: web.Request) -> web.Response:
    """The 叫应 record for a spreadsheet: Chinese headers, Beijing time (said in the time
    columns' headers), outcomes in words; UTF-8 with a BOM, every cell neutralised."""
    con = console(request)
    ctx = con.app.ctx
    cid = request.match_info["cid"]
    root, _meta = await _root(ctx, cid)
    filed = filed_rows(ctx, await record_rows(ctx, root), await ctx.store.audit(cid),
                       await con.users.displays())
    buf = io.StringIO()
    write_csv(buf, COLUMNS, ([r[c] for c in COLUMNS] for r in filed.rows))
    return web.Response(text="\ufeff" + buf.getvalue(), content_type="text/csv", charset="utf-8",
                        headers={"Content-Disposition":
                                 f'attachment; filename="jiaoying-{cid}.csv"'})
