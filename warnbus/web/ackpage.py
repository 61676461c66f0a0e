"""The page behind a person's ack link: the full text of what they were sent, and its button.

A message carries what its channel can (a WeCom card 160 characters, an SMS a few parts):
the page shows the whole alert (headline, issuing unit and time, area, description,
instruction, expiry) and, while a confirmation is wanted, the 确认收到 button. After the end
it says why nothing is asked (lifted, ended), unless the policy wants the 解除 confirmed
(`cancel_confirm`): then it shows the 解除 and asks for that.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from html import escape

from warnbus.domain.meta import CampaignMeta
from warnbus.domain.models import Alert
from warnbus.domain.states import CampaignState
from warnbus.flow.acks import AckResult, late_zh
from warnbus.flow.planner import area_text
from warnbus.runtime.context import Context

BEIJING = timezone(timedelta(hours=8))
LIFT_CONFIRMED = "已确认收到解除通知，谢谢。"


@dataclass(frozen=True)
class AckPage:
    title: str
    body: str  # HTML
    button: str  # the button's label; "" when nothing is asked


def _when(t: datetime | None) -> str:
    if t is None:
        return ""
    b = t.astimezone(BEIJING)
    return f"{b.year}年{b.month}月{b.day}日 {b:%H:%M}（北京时间）"


def alert_html(alert: Alert) -> str:
    """The whole of an alert as a person reads it, escaped."""
    info = alert.primary_info()
    if info is None:
        return ""
    drill = "【演练】" if alert.is_drill else ""
    rows = [f'<h2 id="alert-headline">{escape(drill + (info.headline or info.event))}</h2>']
    who = info.sender_name or alert.sender
    rows.append(f"<p>发布单位：{escape(who)}　时间：{escape(_when(info.effective or alert.sent))}"
                "</p>")
    area = area_text(alert)
    if area:
        rows.append(f"<p>区域：{escape(area)}</p>")
    for label, text in (("", info.description), ("防御指南：", info.instruction)):
        if text:
            rows.append(f'<p style="white-space:pre-wrap">{label}{escape(text)}</p>')
    if info.expires:
        rows.append(f"<p>有效期至：{escape(_when(info.expires))}</p>")
    return ('<section id="alert-text" style="text-align:left;max-width:40em;margin:auto">'
            + "".join(rows) + "</section>")


def wants_lift_confirmed(ctx: Context, meta: CampaignMeta | None) -> bool:
    """The campaign was lifted and its level's policy wants the 解除 confirmed."""
    if meta is None or meta.state is not CampaignState.CANCELLED or meta.level is None:
        return False
    return ctx.rules.policy_for(meta.level).cancel_confirm


async def ack_page(ctx: Context, campaign_id: str, ended: CampaignState | None) -> AckPage:
    """What the ack link shows: the message the person was sent, in full, and whether (and
    what) they are asked to confirm."""
    meta = await ctx.store.meta(campaign_id)
    lift = wants_lift_confirmed(ctx, meta)
    shown: Alert | None = None
    if meta is not None:
        shown_id = meta.cancelled_by if lift and meta.cancelled_by else meta.latest_alert_id
        shown = await ctx.alert(campaign_id, shown_id) if shown_id else None
    text = alert_html(shown) if shown is not None else ""
    if ended is None:
        return AckPage("确认收到预警", text, "确认收到")
    if lift:
        return AckPage("确认收到解除通知", text, "确认收到")
    return AckPage("无需确认", f"<p>{escape(late_zh(ended))}</p>{text}", "")


async def late_text(ctx: Context, campaign_id: str, res: AckResult) -> str:
    """What a person reads who confirmed after the end: the 解除 confirmed when the policy
    asked for that, else that the warning was lifted or has ended."""
    if wants_lift_confirmed(ctx, await ctx.store.meta(campaign_id)):
        return LIFT_CONFIRMED
    return res.late_zh
