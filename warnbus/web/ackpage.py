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
from warnbus.domain.states import CampaignState, GridState
from warnbus.flow.acks import AckResult, ended_state, late_zh
from warnbus.flow.person_policy import person_policy
from warnbus.flow.planner import area_text
from warnbus.runtime.context import Context

BEIJING = timezone(timedelta(hours=8))
LIFT_CONFIRMED = "已确认收到解除通知，谢谢。"
AREA_LIFTED = "您所在区域的预警已解除。"


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


async def wants_lift_confirmed(ctx: Context, meta: CampaignMeta | None, ended: str | None,
                               campaign_id: str, person_id: str) -> bool:
    """The warning was lifted (the campaign by a Cancel, or the person's area by an Update:
    `ended` is `GridState.DROPPED`) and the person's policy row wants the 解除 confirmed
    (the sites' row for the people called only for sites, as their 解除 was planned)."""
    if meta is None or meta.level is None:
        return False
    if ended != GridState.DROPPED and meta.state is not CampaignState.CANCELLED:
        return False
    return (await person_policy(ctx, campaign_id, person_id, meta.level)).cancel_confirm


async def over_for(ctx: Context, campaign_id: str, person_id: str) -> str | None:
    """Why a confirmation by the person would be late (as the ack script judges): the
    campaign's state once it has ended, `GridState.DROPPED` when an Update dropped every
    grid they answer for; else None."""
    ended = await ended_state(ctx, campaign_id)
    if ended is not None:
        return ended
    held = await ctx.store.held(campaign_id, person_id)
    if held and all(g.state is GridState.DROPPED for g in held):
        return GridState.DROPPED
    return None


async def ack_page(ctx: Context, campaign_id: str, person_id: str, ended: str | None
                   ) -> AckPage:
    """What the ack link shows: the message the person was sent, in full, and whether (and
    what) they are asked to confirm (`ended`: as `over_for` says)."""
    meta = await ctx.store.meta(campaign_id)
    lift = await wants_lift_confirmed(ctx, meta, ended, campaign_id, person_id)
    shown: Alert | None = None
    if meta is not None and ended != GridState.DROPPED:
        shown_id = meta.cancelled_by if lift and meta.cancelled_by else meta.latest_alert_id
        shown = await ctx.alert(campaign_id, shown_id) if shown_id else None
    # The person's area dropped: the message now in force is for others (nothing shown).
    text = alert_html(shown) if shown is not None else ""
    if ended is None:
        return AckPage("确认收到预警", text, "确认收到")
    if lift:
        lifted = "" if shown is not None else f"<p>{escape(AREA_LIFTED)}</p>"
        return AckPage("确认收到解除通知", lifted + text, "确认收到")
    return AckPage("无需确认", f"<p>{escape(late_zh(ended))}</p>{text}", "")


async def late_text(ctx: Context, campaign_id: str, person_id: str, res: AckResult) -> str:
    """What a person reads who confirmed after the end: the 解除 confirmed when their policy
    asked for that, else that the warning was lifted or has ended."""
    if await wants_lift_confirmed(ctx, await ctx.store.meta(campaign_id), res.state,
                                  campaign_id, person_id):
        return LIFT_CONFIRMED
    return res.late_zh
