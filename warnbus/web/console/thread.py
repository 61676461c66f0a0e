"""A campaign's thread as the board shows it: the alert's full text, where each message came
from (a feed, an API token, this console and who drafted and approved it), and the CAP
message history (alert → updates → cancel) in the order they were sent."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from warnbus.domain.meta import CampaignMeta
from warnbus.domain.models import Alert, MsgType
from warnbus.runtime.context import Context
from warnbus.state.consolebook import Provenance
from warnbus.web.console import html
from warnbus.web.console.html import esc


@dataclass(frozen=True)
class Message:
    alert_id: str
    alert: Alert
    accepted_at: float | None
    source: str  # the credential's name (`Store.messages.sources`)
    prov: Provenance | None  # a console message: who drafted and approved it


async def messages(ctx: Context, cid: str) -> list[Message]:
    """Every message of the thread, in the order they were sent."""
    alerts = await ctx.store.thread_alerts(cid)
    ids = [a.alert_id for a in alerts]
    at = await ctx.store.messages.accepted_at(ids)
    sources = await ctx.store.messages.sources(cid)
    prov = await ctx.store.console.provenance(cid)
    out = [Message(aid, a, t, sources.get(aid, ""), prov.get(aid))
           for aid, a, t in zip(ids, alerts, at, strict=True)]
    return sorted(out, key=lambda m: (m.alert.sent, m.accepted_at or 0.0))


def source_html(m: Message, names: Mapping[str, str] | None = None) -> str:
    """Where a message came from, for the officer; console users by their display names
    (`names`: user name -> 姓名)."""
    text = html.source_zh(m.source)
    p = m.prov
    if p is not None:
        who = names or {}
        text = "本值守台：起草 " + who.get(p.drafted_by, p.drafted_by) + (
            f"，审批 {who.get(p.approved_by, p.approved_by)}" if p.approved_by else "（无需审批）")
        if p.on_behalf_of:
            text += f"；代 {p.on_behalf_of} 发布"
    return esc(text)


def alert_text(alert: Alert) -> str:
    """The whole text of an alert: who issued it, its headline, description, instruction,
    times and areas, as a definition list."""
    info = alert.primary_info()
    if info is None:
        return '<p class="muted">该消息不含预警内容。</p>'
    rows = [("发布单位", info.sender_name or alert.sender), ("标题", info.headline or ""),
            ("事件", info.event), ("内容", info.description or ""),
            ("防御指南", info.instruction or ""),
            ("生效", html.bj(info.effective.timestamp()) if info.effective else ""),
            ("失效", html.bj(info.expires.timestamp()) if info.expires else "不失效"),
            ("区域", "、".join(a.desc for a in info.areas if a.desc)),
            ("标识", f"{alert.sender} · {alert.identifier}")]
    if alert.note:
        rows.append(("附注", alert.note))
    body = "".join(f"<dt>{k}</dt><dd>{esc(v)}</dd>" for k, v in rows if v)
    return f'<dl class="kv alert-text">{body}</dl>'


def history_html(meta: CampaignMeta, items: list[Message],
                 names: Mapping[str, str] | None = None) -> str:
    """The CAP message history: one row per message, what it did to the campaign."""
    rows = []
    for m in items:
        a = m.alert
        info = a.primary_info()
        if a.msg_type is MsgType.CANCEL:
            did = "解除了该预警" if m.alert_id == meta.cancelled_by else "重复的解除（未再通知）"
        elif m.alert_id == meta.latest_alert_id:
            did = "当前内容"
        else:
            did = "已被更新取代" if meta.latest_alert_id else "尚未处理"
        rows.append([html.bj(a.sent.timestamp(), "%m-%d %H:%M:%S"),
                     esc(html.MSG_TYPE_ZH.get(a.msg_type.value, a.msg_type.value)),
                     f'<details><summary>{esc((info.headline if info else "") or a.identifier)}'
                     f"</summary>{alert_text(a)}</details>",
                     source_html(m, names), esc(did)])
    return html.table(["发送时间", "类型", "消息", "来源", "作用"], rows, "small history")
