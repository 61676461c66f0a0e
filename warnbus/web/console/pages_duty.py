"""The duty page: who is on duty today and tomorrow per township and county, the empty shifts
of the coming week, overrides and swaps with a reason (audited), roster versions to approve.

What is changed here is in Redis (`warnbus.state.duty`) and holds at the next escalation step
of every process: no restart. Anyone signed in reads the page; approvers and admins change
shifts; approvers approve roster versions.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta

from aiohttp import web

from warnbus.domain.duty import (
    Approval,
    DutyBook,
    DutyChange,
    OnDuty,
    parse_day,
    schedule_digest,
)
from warnbus.domain.models import mask_phone
from warnbus.domain.roles import DUTY_ROLES, ROLE_ZH
from warnbus.errors import DutyConflict
from warnbus.registry import Registry
from warnbus.web.console import html
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
from warnbus.web.console.duty import (
    KIND_ZH,
    SOURCE_ZH,
    Desk,
    FormError,
    changes_from,
    desk_name,
    desks,
    empty_shifts,
    today_of,
)
from warnbus.web.console.html import csrf_field, esc

HISTORY = 50


def _who(reg: Registry, on: OnDuty) -> str:
    person = reg.data.persons.get(on.person or "")
    if person is None:
        return '<b class="errc">无人值班</b>'
    phone = f' <span class="muted">{esc(mask_phone(person.phone))}</span>' if person.phone else ""
    note = SOURCE_ZH.get(on.source.value, "")
    if on.change is not None:
        note = f"{KIND_ZH[on.change.kind]}：{on.change.reason}"
    tail = f' <span class="muted">（{esc(note)}）</span>' if note else ""
    return f"{esc(person.name)}{phone}{tail}"


def _cell(reg: Registry, book: DutyBook, desk: Desk, day: date, can_change: bool) -> str:
    on = book.shift(desk.region, desk.role, day)
    link = ""
    if can_change:
        link = (f' <a class="small" href="{PREFIX}/duty?desk={esc(desk.key)}&day={day}">'
                "调整</a>")
    return _who(reg, on) + link


def _today_table(reg: Registry, book: DutyBook, today: date, can_change: bool) -> str:
    tomorrow = today + timedelta(days=1)
    rows = [[esc(desk_name(reg, d)), _cell(reg, book, d, today, can_change),
             _cell(reg, book, d, tomorrow, can_change)] for d in desks(reg)]
    return html.table(["值班职责", f"今日（{today} 起）", f"明日（{tomorrow} 起）"], rows)


def _warnings(reg: Registry, book: DutyBook, today: date) -> str:
    empty = empty_shifts(reg, book, today)
    if not empty:
        return '<p class="ok" id="duty-ok">未来7天每个班次均有人值班。</p>'
    items = "".join(f"<li>{esc(desk_name(reg, d))} {day}：{_gap(reg, on)}</li>"
                    for d, day, on in empty)
    return (f'<div class="card err" id="duty-empty"><b>未来7天有 {len(empty)} 个班次无人排班'
            "</b>，请安排值班表或替班。<ul>" + items + "</ul></div>")


def _gap(reg: Registry, on: OnDuty) -> str:
    person = reg.data.persons.get(on.person or "")
    if person is None:
        return "无人值班（升级叫应将跳过此职责）"
    return f"无生效值班表，由固定人员 {esc(person.name)} 兜底"


def _change_form(request: web.Request, reg: Registry, book: DutyBook, today: date) -> str:
    key = request.query.get("desk", "")
    day = parse_day(request.query.get("day", "")) or today
    choices = [(d.key, desk_name(reg, d)) for d in desks(reg)]
    desk = next((d for d in desks(reg) if d.key == key), None)
    now = book.shift(desk.region, desk.role, day) if desk else None
    people = [(p.id, f"{p.name}（{ROLE_ZH[p.role]}）") for p in reg.data.persons.values()
              if desk and p.region == desk.region
              and DUTY_ROLES.get(p.role) is DUTY_ROLES[desk.role]]
    current = (f"<p>当前值班：{_who(reg, now)}</p>" if now is not None else
               '<p class="muted">在上表中点击“调整”选择班次。</p>')
    return (f'<h2 id="change">替班 / 换班</h2><form method="post" action="{PREFIX}/duty/change" '
            f'class="card">{csrf_field(session_of(request).csrf)}{current}'
            f'<input type="hidden" name="was" value="{esc(now.person if now else "")}">'
            f'<label>值班职责 <select name="desk">{html.options(choices, key)}</select></label> '
            f'<label>班次日期 <input type="date" name="day" value="{day}" required></label> '
            '<label><input type="radio" name="kind" value="override" checked> 替班</label> '
            f'<label>替班人员 <select name="person">{html.options(people)}</select></label> '
            '<label><input type="radio" name="kind" value="swap"> 换班，与 '
            '<input type="date" name="other_day"> 的值班人员互换</label><br>'
            '<label>原因 <input name="reason" maxlength="200" required '
            'placeholder="如：病假，由某某替班"></label> <button>保存</button></form>')


def _versions(request: web.Request, reg: Registry, book: DutyBook,
              names: Mapping[str, str]) -> str:
    can_approve = user_of(request).has("approver")
    csrf = session_of(request).csrf
    rows = []
    for rid in sorted(reg.data.rosters, key=lambda r: reg.data.rosters[r].first_day):
        r = reg.data.rosters[rid]
        approval = book.approvals.get(rid)
        # An approval of shifts the version no longer holds (changed by an import since).
        waits = "待重新审批（审批后内容已变更）" if approval is not None else "待审批"
        if r.approved_by:
            state = f"已生效（{esc(r.approved_by)} 审批）"
        elif approval is not None and book.approved(rid):
            state = f"已生效（{html.user(approval.by, names)} 于 {html.bj(approval.at)} 审批）"
        elif can_approve:
            state = (f'<form method="post" action="{PREFIX}/duty/rosters/{esc(rid)}/approve">'
                     f'{csrf_field(csrf)}<input type="hidden" name="digest" '
                     f'value="{schedule_digest(r)}"><span class="errc">{waits}</span> '
                     "<button>审批生效</button></form>")
        else:
            state = f'<span class="errc">{waits}</span>'
        rows.append([esc(rid), esc(r.name), f"{esc(r.first_day)} 至 {esc(r.last_day)}",
                     esc(r.shift_start), str(len(r.entries)), state])
    return "<h2>值班表版本</h2>" + html.table(
        ["编号", "名称", "起止", "交班时间", "职责数", "状态"], rows)


async def _history(request: web.Request, reg: Registry, names: Mapping[str, str]) -> str:
    con = console(request)
    desk = con.app.ctx.duty
    rows = []
    for rec, rid in await desk.history(HISTORY) if desk else []:
        if isinstance(rec, DutyChange):
            d = Desk(rec.region, rec.role)
            was = reg.data.persons.get(rec.was or "")
            now = reg.data.persons.get(rec.person)
            what = (f"{esc(desk_name(reg, d))} {esc(rec.day)}："
                    f"{esc(was.name if was else rec.was or '无人')} → "
                    f"{esc(now.name if now else rec.person)}")
            rows.append([html.bj(rec.at), KIND_ZH[rec.kind], what, html.user(rec.by, names),
                         esc(rec.reason)])
        elif isinstance(rec, Approval):
            name = reg.data.rosters[rid].name if rid in reg.data.rosters else rid
            rows.append([html.bj(rec.at), "审批", esc(f"值班表 {name}"), html.user(rec.by, names),
                         ""])
    return "<h2>调整记录</h2>" + html.table(["时间", "类型", "内容", "操作人", "原因"], rows)


@requires()
async def duty_page(request: web.Request) -> web.Response:
    con = console(request)
    ctx = con.app.ctx
    reg, book = ctx.registry, await ctx.duty_book()
    today = today_of(ctx.clock.now())
    can_change = user_of(request).has("approver", "admin")
    msg = flash(request)  # signed for this session and page: a crafted ?msg= says nothing
    names = await con.users.displays()  # user name -> 姓名
    body = ((f'<p class="ok" id="msg">{esc(msg)}</p>' if msg else "")
            + _warnings(reg, book, today) + _today_table(reg, book, today, can_change)
            + (_change_form(request, reg, book, today) if can_change else "")
            + _versions(request, reg, book, names) + await _history(request, reg, names))
    return page(request, "值班安排", body, active="duty")


@requires("approver", "admin")
async def duty_change(request: web.Request) -> web.StreamResponse:
    con = console(request)
    ctx = con.app.ctx
    desk = ctx.duty
    if desk is None:
        raise back(f"{PREFIX}/duty", "本服务未连接值班存储，无法调整")
    book = await ctx.duty_book()
    try:
        changes = changes_from(ctx.registry, book, await form(request),
                               by=user_of(request).name, now=ctx.clock.now())
        await desk.change(ctx.registry.duty, changes)
    except FormError as e:
        raise back(f"{PREFIX}/duty", f"未保存：{e}") from None
    except DutyConflict as e:
        holder = ctx.registry.data.persons.get(e.holder or "")
        said = (f"{e.day} 的班次已由他人改为 {holder.name if holder else '无人'}，请刷新后重试"
                if e.day else e.message)
        raise back(f"{PREFIX}/duty", f"未保存：{said}") from None
    first = changes[0]
    where = desk_name(ctx.registry, Desk(first.region, first.role))
    raise back(f"{PREFIX}/duty", f"已保存{KIND_ZH[first.kind]}：{where} {first.day}")


@requires("approver")
async def roster_approve(request: web.Request) -> web.StreamResponse:
    con = console(request)
    ctx = con.app.ctx
    rid = request.match_info["id"]
    roster = ctx.registry.data.rosters.get(rid)
    if roster is None:
        raise web.HTTPNotFound(text="no such roster version")
    book = await ctx.duty_book()
    if book.approved(rid) or ctx.duty is None:
        raise back(f"{PREFIX}/duty", f"值班表 {roster.name} 已审批，无需重复审批")
    digest = schedule_digest(roster)
    # The approver approves the shifts the page showed: not others imported since.
    if (await form(request)).get("digest", "") != digest:
        raise back(f"{PREFIX}/duty", f"值班表 {roster.name} 的内容已更新，请查看后重新审批")
    done = await ctx.duty.approve(rid, Approval(user_of(request).name, ctx.clock.now(), digest))
    raise back(f"{PREFIX}/duty", f"值班表 {roster.name} " + ("已审批生效" if done else "已审批"))
