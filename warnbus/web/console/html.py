"""Plain server-rendered HTML: escaping, the page frame, Chinese labels. No template engine."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from html import escape
from typing import Any

from warnbus.domain.roles import ROLE_ZH as ROLE_ZH_OF_PERSON
from warnbus.domain.states import CampaignState
from warnbus.flow.filed import MEDIUM_ZH
from warnbus.flow.filed import VIA_ZH as FILED_VIA_ZH

BEIJING = timezone(timedelta(hours=8))
LEVEL_ZH = {"red": "红色", "orange": "橙色", "yellow": "黄色", "blue": "蓝色"}
ROLE_ZH = {"drafter": "起草", "approver": "审批", "admin": "管理"}
PERSON_ROLE_ZH = {role.value: name for role, name in ROLE_ZH_OF_PERSON.items()}
CAMPAIGN_STATE_ZH: dict[CampaignState, str] = {
    CampaignState.PLANNING: "准备中", CampaignState.ACTIVE: "进行中",
    CampaignState.CANCELLED: "已解除", CampaignState.EXPIRED: "已过期"}


def ended_zh(state: CampaignState) -> str:
    """How a campaign that is over reads, from `flow.acks.ended_state`."""
    return CAMPAIGN_STATE_ZH.get(state, "已结束")


#: Grid colours on the board, in legend order (the board's own states; see board.py).
GRID_STATE_ZH = {"pending": "未送达", "sent": "已发送", "delivered": "已送达",
                 "confirmed": "已确认", "taken_over": "上级已确认", "escalated": "已升级",
                 "unreached": "未叫醒", "door": "入户中", "visited": "已入户",
                 "stopped": "已停止叫应", "ended": "未确认·已结束", "closed": "已移出"}
#: Where a person stands (people.PersonState).
PERSON_STATE_ZH = {"pending": "叫应中", "confirmed": "已确认", "escalated": "已升级",
                   "unreached": "未叫醒", "closed": "未确认·已结束",
                   "not_called": "尚未呼叫"}
#: What a door-to-door visit found (domain.doors.DoorOutcome).
DOOR_OUTCOME_ZH = {"told": "已当面告知", "nobody_home": "无人在家", "moved": "已转移",
                   "other": "其他"}
MSG_TYPE_ZH = {"Alert": "发布", "Update": "更新", "Cancel": "解除"}
DRAFT_STATE_ZH = {"pending": "待审批", "publishing": "发布中", "published": "已发布",
                  "rejected": "已退回", "failed": "发布失败（未发出）", "withdrawn": "已撤回"}
KIND_ZH = {"alert": "新预警", "update": "更新", "cancel": "解除"}
#: How a person confirmed: the filed record's words (企业微信按钮: the card's button).
VIA_ZH = FILED_VIA_ZH
#: One word per channel on every page, the same as the filed record's (语音电话, not 语音外呼).
CHANNEL_ZH = MEDIUM_ZH


def esc(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def user(login: str, names: Mapping[str, str]) -> str:
    """A console user by their display name (姓名), the login in the title; someone who is
    not a console user (a name already) as they are."""
    shown = names.get(login)
    if not shown or shown == login:
        return esc(login)
    return f'<span class="user" title="登录名：{esc(login)}">{esc(shown)}</span>'


def bj(ts: float | str | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    """A timestamp in Beijing time (the console's time zone, whatever the server's)."""
    if ts in (None, ""):
        return ""
    return datetime.fromtimestamp(float(ts), BEIJING).strftime(fmt)


def level_badge(level: str | None) -> str:
    lv = level or ""
    return f'<span class="lv lv-{esc(lv)}">{esc(LEVEL_ZH.get(lv, lv))}</span>'


def drill_badge(drill: bool) -> str:
    """The 演练 mark of an exercise (CAP Exercise/Test): on every page that shows one."""
    return '<span class="drill">演练</span>' if drill else ""


def source_zh(source: str) -> str:
    """Who a message came in through, from the credential's name (`Store.messages.sources`)."""
    if source.startswith("feed "):
        return f"数据源 {source[5:]}（自动接入）"
    if source == "console":
        return "本值守台"
    if source == "engine":
        return "引擎（演示/测试）"
    return f"接口令牌 {source}" if source else "未记录"


def duration(seconds: float) -> str:
    """A span of time as an officer reads it: 45秒, 12分05秒, 2小时03分."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}秒"
    if s < 3600:
        return f"{s // 60}分{s % 60:02d}秒"
    return f"{s // 3600}小时{s % 3600 // 60:02d}分"


def csrf_field(token: str) -> str:
    return f'<input type="hidden" name="_csrf" value="{esc(token)}">'


def table(head: Sequence[str], rows: Iterable[Sequence[str]], cls: str = "") -> str:
    """A table; cells are HTML already (escape what needs it before)."""
    th = "".join(f"<th>{h}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return (f'<div class="tw"><table class="{cls}"><thead><tr>{th}</tr></thead>'
            f'<tbody>{body}</tbody></table></div>')


def options(items: Iterable[tuple[str, str]], selected: str = "") -> str:
    return "".join(
        f'<option value="{esc(v)}"{" selected" if v == selected else ""}>{esc(label)}</option>'
        for v, label in items
    )


_NAV = (
    ("board", "/console/", "值守台", ()),
    ("compose", "/console/compose", "发布预警", ("drafter",)),
    ("drafts", "/console/drafts", "审批", ("drafter", "approver")),
    ("records", "/console/records", "记录统计", ()),
    ("registry", "/console/registry", "网格台账", ()),
    ("duty", "/console/duty", "值班", ()),
    ("admin", "/console/admin", "系统管理", ("admin",)),
)


def layout(title: str, body: str, *, user: Any = None, csrf: str = "", active: str = "") -> str:
    nav = ""
    if user is not None:
        links = "".join(
            f'<a href="{href}"{" class=on" if key == active else ""}>{label}</a>'
            for key, href, label, roles in _NAV if not roles or user.has(*roles)
        )
        roles = "、".join(ROLE_ZH.get(r, r) for r in user.roles)
        nav = (f'<nav>{links}<span class="who">{esc(user.display)}（{esc(roles)}）'
               f'<form method="post" action="/console/logout">{csrf_field(csrf)}'
               f'<button class="link">退出</button></form></span></nav>')
    return (
        '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f'<meta name="csrf" content="{esc(csrf)}">'
        f"<title>{esc(title)} · 预警叫应值守台</title>"
        '<link rel="stylesheet" href="/console/static/console.css">'
        '<script src="/console/static/console.js" defer></script></head><body>'
        f'<header><a class="brand" href="/console/">预警叫应值守台</a>{nav}</header>'
        f"<main><h1>{esc(title)}</h1>{body}</main></body></html>"
    )


def bare(title: str, body: str) -> str:
    return layout(title, body)
