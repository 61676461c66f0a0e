"""The HTML of grid cases: the pending list's cards, and a grid's page with its timeline.

Each person of a grid shows where they stand (叫应中 with the round, calls and the next
step; 已确认 how and when; 已升级 to whom; 未叫醒), with their number as a `tel:` link; each
card lists every call to the grid's people by name, the earliest first.
"""

from __future__ import annotations

from collections.abc import Mapping

from warnbus.domain.states import AuditEvent
from warnbus.domain.steps import Step
from warnbus.flow import filed
from warnbus.flow.filed import OUTCOME_ZH
from warnbus.web.console import html
from warnbus.web.console.base import PREFIX
from warnbus.web.console.board import WAITING
from warnbus.web.console.cases import Cases, GridCase
from warnbus.web.console.history import Call, Event
from warnbus.web.console.html import CHANNEL_ZH, DOOR_OUTCOME_ZH, GRID_STATE_ZH, VIA_ZH, esc
from warnbus.web.console.people import PersonLine, PersonState

#: A call's outcome in the filed record's words (the card and the record say the same).
_OUTCOME_ZH = {**OUTCOME_ZH, "limited": "超出号码限额，已改道"}
#: Calls a card lists before it leaves the middle out (the grid's page lists them all).
CARD_CALLS = 30


def call_zh(c: Call) -> str:
    """A call's channel and step in the filed record's words (语音电话 首次, 短信 第1次重拨,
    语音电话 升级至村负责人, 短信 解除通知, ...)."""
    return (f"{esc(CHANNEL_ZH.get(c.channel, c.channel))} "
            f"{esc(filed.step_zh(str(c.step), c.kind))}")


def person_html(line: PersonLine, names: Mapping[str, str] | None = None,
                over: bool = False) -> str:
    """One person of a grid and where they stand; a console user who confirmed for them by
    display name (`names`: user name -> 姓名); `over`: the campaign is over, so one not
    called yet never will be (未呼叫, not 尚未呼叫)."""
    role = html.PERSON_ROLE_ZH.get(line.role, line.role)
    tel = (f' <a class="tel" href="tel:{esc(line.phone)}">{esc(line.phone)}</a>'
           if line.phone else "")
    state = html.PERSON_STATE_ZH[line.state]
    if over and line.state is PersonState.NOT_CALLED:
        state = "未呼叫"
    if line.state is PersonState.CONFIRMED and line.ack is not None:
        a = line.ack
        how = esc(VIA_ZH.get(a.via.value, a.via.value))
        if a.by:
            how += f"（{html.user(a.by, names or {})}：{esc(a.reason)}）"
        state = f"{esc(state)} · {how} · {html.bj(a.at, '%H:%M:%S')}"
        return (f'<li class="ps-{line.state.value}" data-p="{esc(line.pid)}">'
                f'<b>{esc(line.name)}</b>（{esc(role)}）{tel} <span class="pst">{state}</span>'
                "</li>")
    elif line.state is PersonState.PENDING:
        state += f" · 第{max(1, line.rounds)}轮 · 已呼叫{len(line.calls)}次"
        if line.next is not None:
            state += f" · 下一步 {html.bj(line.next.at, '%H:%M:%S')} {line.next.what}"
    elif line.state is PersonState.ESCALATED and line.moved_to:
        state = f"未确认 · 已升级至 {line.moved_to}"
    elif line.state is PersonState.NOT_CALLED and line.calls:
        # Not called to confirm for the grid, yet messaged: sent door to door (尚未呼叫 ·
        # 已呼叫3次 said both at once).
        door = all(c.step == int(Step.DOOR_TO_DOOR) for c in line.calls)
        state = f"未叫应 · 已发{'入户' if door else ''}通知{len(line.calls)}条"
    elif line.calls:
        state += f" · 已呼叫{len(line.calls)}次"
    return (f'<li class="ps-{line.state.value}" data-p="{esc(line.pid)}"><b>{esc(line.name)}</b>'
            f'（{esc(role)}）{tel} <span class="pst">{esc(state)}</span></li>')


def calls_html(case: GridCase, limit: int | None = CARD_CALLS) -> str:
    """Every call to the grid's people, by name, the earliest first (`limit`: the first and
    the latest ones, with how many were left out between)."""
    names = {p.pid: (p.name, p.role) for p in case.people}
    calls = sorted(((c, pid) for pid in names for c in next(
        (p.calls for p in case.people if p.pid == pid), [])), key=lambda x: x[0].at)
    shown: list[tuple[Call, str] | None] = list(calls)
    if limit is not None and len(calls) > limit:
        head = limit // 3
        shown = [*calls[:head], None, *calls[len(calls) - (limit - head):]]
    items = []
    for item in shown:
        if item is None:
            items.append(f'<li class="muted">……省略{len(calls) - limit}条（见网格详情）</li>'
                         if limit else "")
            continue
        c, pid = item
        name, role = names[pid]
        items.append(f'<li>{html.bj(c.at, "%H:%M:%S")} {esc(name)}'
                     f'（{esc(html.PERSON_ROLE_ZH.get(role, role))}）'
                     f'{call_zh(c)} → '
                     f'{esc(_OUTCOME_ZH.get(c.outcome, c.outcome))}</li>')
    return (f'<details class="calls"><summary>呼叫记录（{len(calls)}）</summary>'
            f'<ul class="tries">{"".join(items)}</ul></details>')


def door_html(case: GridCase, names: Mapping[str, str] | None = None) -> str:
    """The grid's door-to-door order and result; console users by display name."""
    out = ""
    if case.door is not None:
        d = case.door
        out += (f'<p class="warn door-order">已安排入户：{esc(d.to)}'
                f'（{html.user(d.by, names or {})}，{html.bj(d.at, "%H:%M")}）</p>')
    if case.result is not None:
        r = case.result
        who = (html.user(r.by, names or {}) if r.via.value == "console"
               else f"{esc(r.by)}（本人）")
        out += (f'<p class="ok door-result">入户结果：<b>{DOOR_OUTCOME_ZH[r.outcome.value]}</b>'
                f'{"：" + esc(r.note) if r.note else ""}'
                f'（{who}，{html.bj(r.at, "%H:%M")}）</p>')
    return out


def actions_html(cid: str, case: GridCase, csrf: str, *, door_ok: bool,
                 from_grid: bool = False) -> str:
    base = f"{PREFIX}/campaigns/{esc(cid)}"
    grid = f'<input type="hidden" name="grid" value="{esc(case.grid_id)}">' + (
        '<input type="hidden" name="from" value="grid">' if from_grid else "")
    token = html.csrf_field(csrf)
    who = html.options((p.pid, p.name) for p in case.people
                       if p.state is not PersonState.CONFIRMED)
    out = ""
    if who:
        out += (f'<form method="post" action="{base}/ack" class="row">{token}{grid}'
                f'<select name="person">{who}</select><input name="reason" required '
                'placeholder="确认方式，如：电话回拨已确认"><button>人工确认</button></form>')
    if door_ok and case.result is None and case.display != "door":
        out += (f'<form method="post" action="{base}/door" class="row">{token}{grid}'
                '<button data-confirm="通知村负责人入户叫应？">安排入户</button></form>')
    if case.door is not None or case.display in ("unreached", "escalated"):
        outcomes = html.options(DOOR_OUTCOME_ZH.items())
        out += (f'<form method="post" action="{base}/door/result" class="row door-form">{token}'
                f'{grid}<select name="outcome">{outcomes}</select><input name="note" '
                'maxlength="500" placeholder="说明（选“其他”时必填）">'
                '<button>登记入户结果</button></form>')
    return out


def card_html(cid: str, case: GridCase, csrf: str, *, can_act: bool, door_ok: bool,
              now: float, calls_limit: int | None = CARD_CALLS, from_grid: bool = False,
              names: Mapping[str, str] | None = None) -> str:
    """A grid's card: its people, door-to-door, calls and actions (`names`: console user
    name -> 姓名, for who confirmed, ordered or entered a result)."""
    people = "".join(person_html(p, names, case.over) for p in case.people)
    acts = (actions_html(cid, case, csrf, door_ok=door_ok, from_grid=from_grid)
            if can_act else "")
    if acts:
        # Open where the officer has to act now; folded while the engine is still calling.
        urgent = from_grid or case.display in ("unreached", "door", "escalated")
        acts = (f'<details class="acts"{" open" if urgent else ""}><summary>处理</summary>'
                f"{acts}</details>")
    return (f'<div class="chase s-{case.display}" data-grid="{esc(case.grid_id)}">'
            f'<h3><a class="grid-link" data-g="{esc(case.grid_id)}" '
            f'href="{PREFIX}/campaigns/{esc(cid)}/grids/{esc(case.grid_id)}">{esc(case.name)}</a>'
            f'<small>{esc(case.village)} · {esc(case.town)} · '
            f'<b class="gst">{GRID_STATE_ZH.get(case.display, case.display)}</b> · '
            f'{html.bj(case.since, "%H:%M")} 起叫'
            # How long it has waited, while it waits (a closed grid waits no more).
            + (f'，已 {html.duration(now - case.since)}' if case.display in WAITING
               and not case.over else "")
            + '</small></h3>'
            f'<ul class="people">{people}</ul>{door_html(case, names)}'
            f'{calls_html(case, calls_limit)}{acts}</div>')


def pending_html(cid: str, got: Cases, csrf: str, *, can_act: bool, door_ok: bool,
                 names: Mapping[str, str] | None = None) -> str:
    """The pending list (待确认名单): the grids nobody has answered for yet; none once the
    campaign is over, saying so."""
    if got.ended is not None:
        return (f'<p class="muted" id="none-pending">该预警{html.CAMPAIGN_STATE_ZH[got.ended]}，'
                '叫应已结束，不再呼叫、重拨或升级：没有待确认的网格。'
                '未确认的人员和网格见统计与叫应记录。</p>')
    if not got.cases:
        stopped = "（已停止叫应）" if got.stop else ""
        return f'<p class="muted" id="none-pending">没有待确认的网格{stopped}。</p>'
    more = (f'<p class="muted">共{got.total}个网格待确认，仅显示最急的{len(got.cases)}个；'
            '请在右侧进入乡镇或村查看其余网格。</p>' if got.total > len(got.cases) else "")
    return more + "".join(card_html(cid, c, csrf, can_act=can_act, door_ok=door_ok, now=got.now,
                                    names=names) for c in got.cases)


def timeline_html(case: GridCase, got: Cases, users: Mapping[str, str] | None = None) -> str:
    """Everything that happened to a grid, in time order: calls to its people by name,
    confirmations, escalations, door-to-door orders and results, a stop of the calling
    (console users by display name: `users`, user name -> 姓名)."""
    users = users or {}
    names = {p.pid: p.name for p in case.people}
    rows: list[tuple[float, str]] = []
    for p in case.people:
        for c in p.calls:
            rows.append((c.at, f'{esc(p.name)}：{call_zh(c)} → '
                               f'{esc(_OUTCOME_ZH.get(c.outcome, c.outcome))}'))
        for e in got.digest.of_person.get(p.pid, ()):
            rows.append((e.at, _person_event(p.name, e, users)))
    for e in case.events:
        rows.append((e.at, _grid_event(e, names, users)))
    for e in got.digest.campaign:
        if e.ev == AuditEvent.STOP:
            rows.append((e.at, f'停止叫应（{html.user(e.get("by"), users)}：{esc(e.get("x"))}）'))
    rows.sort(key=lambda r: r[0])
    items = "".join(f"<li>{html.bj(at, '%m-%d %H:%M:%S')} {text}</li>" for at, text in rows)
    return f'<ol class="timeline">{items}</ol>'


def _person_event(name: str, e: Event, users: Mapping[str, str]) -> str:
    via = VIA_ZH.get(e.get("via"), e.get("via"))
    by = f"（{html.user(e.get('by'), users)}）" if e.get("by") else ""
    if e.ev == AuditEvent.LATE:
        return f"{esc(name)}：预警结束后确认（{esc(via)}）"
    return f"<b>{esc(name)}：已确认</b>（{esc(via)}）{by}"


def _grid_event(e: Event, names: dict[str, str], users: Mapping[str, str]) -> str:
    if e.ev == AuditEvent.ESCALATE:
        to = e.get("to")
        # The record's words for the step (升级至备岗网格员), not the chain's level number.
        lv = e.get("lv")
        step = filed.step_zh(str(int(lv) * 10)) if lv.isdigit() else f"升级（第{esc(lv)}级）"
        return (f"{esc(step)}：{esc(names.get(to, to))}" if to
                else "<b>列入未叫醒</b>（叫应链已用尽）")
    if e.ev == AuditEvent.DOOR_ORDER:
        return f"安排入户：{esc(e.get('to'))}（{html.user(e.get('by'), users)}）"
    outcome = DOOR_OUTCOME_ZH.get(e.get("r"), e.get("r"))
    note = f"：{esc(e.get('x'))}" if e.get("x") else ""
    by = e.get("by")
    who = html.user(by, users) if e.get("via") in ("", "console") else f"{esc(by)}（本人）"
    return f"<b>入户结果：{esc(outcome)}</b>{note}（{who}）"
