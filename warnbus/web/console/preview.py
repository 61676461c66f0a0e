"""What publishing a console message would send, shown before it is: reach, texts, cost.

A new alert's preview plans its first wave with the engine's own rules and planner; an
Update's and a Cancel's run the intake's own plans (`flow.changes.plan_update`,
`plan_cancel`), read-only, on the campaign as it stands. So the preview promises what is
really sent: a 解除 shows the 解除 texts, to whom they go, and that nobody is asked to
confirm or redialled (unless the level's policy wants the 解除 confirmed).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from warnbus.domain.models import (
    Alert,
    Delivery,
    DeliveryKind,
    MsgType,
    Role,
    Target,
    TargetKind,
)
from warnbus.domain.states import GridState
from warnbus.domain.steps import Step
from warnbus.domain.targets import RefKind, kind_of
from warnbus.flow.changes import by_policy, persons_of, plan_cancel, plan_update
from warnbus.flow.planner import PlanContext, area_text, plan_areas, plan_persons
from warnbus.flow.ports import LevelPolicyLike
from warnbus.flow.routes import first_round_s
from warnbus.plugin import Medium
from warnbus.runtime.context import Context
from warnbus.web.console import html
from warnbus.web.console.base import ConsoleSettings
from warnbus.web.console.html import CHANNEL_ZH, esc

SMS_SEGMENT, SMS_LONG_SEGMENT = 70, 67
VOICE_CHARS_PER_MIN = 240  # Mandarin TTS reads about four characters a second
PREVIEW_URL = "https://example.invalid/ack/xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
#: What each kind of message is, as the officer reads the preview.
KIND_ZH = {DeliveryKind.WARNING: "预警", DeliveryKind.UPDATE: "更新",
           DeliveryKind.CANCEL: "解除", DeliveryKind.REDIAL: "重拨",
           DeliveryKind.ESCALATION: "升级", DeliveryKind.NOTICE: "提醒",
           DeliveryKind.FEEDBACK: "反馈"}


def sms_segments(text: str) -> int:
    n = len(text)
    return 1 if n <= SMS_SEGMENT else math.ceil(n / SMS_LONG_SEGMENT)


def _label(d: Delivery, alert: Alert) -> str:
    """Which message of a continuation a text is: 更新, 预警 to those new to the area, the
    解除 (of the warning, or of the area an Update drops), and whether it asks to confirm."""
    channel = CHANNEL_ZH.get(d.channel, d.channel)
    what = KIND_ZH.get(d.kind, d.kind.value)
    if d.kind is DeliveryKind.WARNING:
        what = "预警（新增区域的对象）"
    elif d.kind is DeliveryKind.CANCEL and alert.msg_type is MsgType.UPDATE:
        what = "解除（移出预警范围的区域）"
    elif d.kind is DeliveryKind.UPDATE and d.target_kind is TargetKind.PERSON:
        what += "（须确认）" if d.asks_confirmation else "（已确认者，无需再确认）"
    return f"{channel}·{what}"


def summary(ctx: Context, deliveries: Sequence[Delivery],
            policy_of: Callable[[str], LevelPolicyLike] | None,
            settings: ConsoleSettings, *, texts: list[tuple[str, str]]) -> dict[str, Any]:
    """Messages per channel, SMS parts, call minutes and cost of `deliveries`: the first
    round, and at most when nobody confirms and every message that asks is redialled as
    its person's policy row says (`policy_of` a person id: the sites' row for the people of
    sites only; None: nothing is redialled). Priced by each channel's medium."""
    sms_by: Counter[str] = Counter()
    minutes_by: Counter[str] = Counter()
    worst = 0.0
    for d in deliveries:
        medium = ctx.channels[d.channel].medium
        pol = policy_of(d.target_id) if policy_of is not None else None
        again = (pol.redials if pol is not None and d.asks_confirmation
                 and d.channel in pol.redial_channels else 0)
        if medium is Medium.SMS:
            n = sms_segments(d.text)
            sms_by[d.channel] += n
            worst += n * (1 + again) * settings.sms_price
        elif medium is Medium.VOICE:
            n = math.ceil(len(d.text) / VOICE_CHARS_PER_MIN)
            minutes_by[d.channel] += n
            worst += n * (1 + again) * settings.voice_price
    sms, minutes = sum(sms_by.values()), sum(minutes_by.values())
    return {
        "per_channel": dict(sorted(Counter(d.channel for d in deliveries).items())),
        "texts": texts, "sms_segments": sms, "voice_minutes": minutes,
        "cost": round(sms * settings.sms_price + minutes * settings.voice_price, 2),
        "cost_max": round(worst, 2),
        # At the providers' declared rates (a route's accounts together): when the first
        # message to every person has been handed over.
        "first_round_s": first_round_s(ctx.channels, Counter(
            d.channel for d in deliveries if d.target_kind is TargetKind.PERSON)),
    }


def deadline_zh(policy: LevelPolicyLike) -> str:
    """The 叫应 a warning's persons are held to."""
    if not policy.ack_deadline_s:
        return "无需确认"
    return (f"{int(policy.ack_deadline_s // 60)}分钟内须确认，"
            f"未确认重拨{policy.redials}次后逐级升级")


def site_terms(policy: LevelPolicyLike, site_policy: LevelPolicyLike, site_people: int,
               deadline: str) -> dict[str, Any]:
    """The 叫应 of the people called only for sites, on the sites' own row, when there are
    any (the preview's `deadline` and `redials` are the grids' row's)."""
    if not site_people:
        return {}
    text = deadline if site_policy is policy else deadline_zh(site_policy)
    return {"site_persons": site_people, "site_ack_deadline_s": site_policy.ack_deadline_s,
            "site_redials": site_policy.redials,
            "site_chain": [r.value for r in site_policy.chain], "site_deadline": text}


def _site_people(targets: Sequence[Target]) -> set[str]:
    """The people of `targets` called only for sites (planned on the sites' row)."""
    return {t.id for t in targets if t.role is Role.SITE and t.kind is TargetKind.PERSON}


def site_counts(ctx: Context, sites: Sequence[str]) -> dict[str, Any]:
    """How many of the sites (hazard points, reservoirs, ...) a message reaches, and by kind
    (sites the registry no longer has are left out)."""
    known = ctx.registry.data.sites
    kinds = Counter(known[s].kind.value for s in sites if s in known)
    return {"sites": sum(kinds.values()), "site_kinds": dict(sorted(kinds.items()))}


def preview(ctx: Context, alert: Alert, settings: ConsoleSettings) -> dict[str, Any]:
    """Grids, sites, persons, loudspeakers, messages per channel and cost of publishing
    `alert`."""
    level = ctx.rules.level_of(alert)
    policy, site_policy = ctx.rules.policy_for(level), ctx.rules.site_policy_for(level)
    match = ctx.rules.match(alert)
    targets = ctx.rules.targets(ctx.registry.data, match.grids, match.devices,
                                drill=alert.is_drill, sites=match.sites, hazards=match.hazards)
    pctx = PlanContext(campaign_id="cp_preview", alert=alert, info=alert.primary_info(),
                       level=level, area=area_text(alert), now=ctx.clock.now(),
                       renderer=ctx.rules.renderer, channels=ctx.channels,
                       ack_url=lambda _pid: PREVIEW_URL)
    # As the intake plans them: the people of sites only on the sites' own policy.
    deliveries = _first_waves(ctx, pctx, targets, policy, site_policy)
    sited = _site_people(targets)
    villages = match.villages if match.grids else ()
    for ch in policy.device_channels:  # as the intake plans it: one command per village
        deliveries += plan_areas(pctx, villages, ch, DeliveryKind.WARNING)
    texts = {d.channel: d.text for d in deliveries}
    devices = sum(len(ctx.registry.devices_of_village(v)) for v in villages) if (
        policy.device_channels) else 0
    return {
        "level": level.value, "kind": "alert", "grids": len(match.grids),
        "grid_ids": list(match.grids), **site_counts(ctx, match.sites),
        "villages": len(match.villages),
        "persons": len(persons_of(ctx, targets)), "speakers": devices,
        **summary(ctx, deliveries, lambda pid: site_policy if pid in sited else policy,
                  settings, texts=[(CHANNEL_ZH.get(c, c), x) for c, x in texts.items()]),
        "ack_deadline_s": policy.ack_deadline_s, "redials": policy.redials,
        "chain": [r.value for r in policy.chain], "deadline": deadline_zh(policy),
        **site_terms(policy, site_policy, len(sited), deadline_zh(policy)),
        "needs_approval": level.value in settings.approval_levels, "drill": alert.is_drill,
    }


async def continuation_preview(ctx: Context, alert: Alert, settings: ConsoleSettings,
                               campaign_id: str) -> dict[str, Any]:
    """What an Update or a Cancel (`alert`) of campaign `campaign_id` would send now: the
    intake's own plan of it, on the campaign's state. NotFoundError-free: a campaign with no
    state previews nothing."""
    meta = await ctx.store.meta(campaign_id)
    if meta is None:
        raise LookupError(campaign_id)
    # Who is on which row: the people of sites only on the sites' (as the intake, the
    # escalation and plan_cancel/plan_update put them).
    holds = await ctx.store.board.holds(campaign_id)
    if alert.msg_type is MsgType.CANCEL:
        level = meta.require_level()
        policy, site_policy = ctx.rules.policy_for(level), ctx.rules.site_policy_for(level)
        deliveries = await plan_cancel(ctx, campaign_id, alert, meta,
                                       ack_url=lambda _pid: PREVIEW_URL)
        # What the 解除 lifts: an area an Update dropped had its own 解除 and is not counted.
        views = await ctx.store.grids(campaign_id)
        keys = sorted(g for g, v in views.items() if v.state is not GridState.DROPPED)
        grids = [g for g in keys if not ctx.registry.is_site(g)]
        sites = [g for g in keys if ctx.registry.is_site(g)]
        deadline = _cancel_zh(policy)
        site_deadline = _cancel_zh(site_policy)
        added_sited: set[str] = set()
    else:
        plan = await plan_update(ctx, campaign_id, alert, meta,
                                 ack_url=lambda _pid: PREVIEW_URL)
        level, policy, site_policy = plan.level, plan.policy, plan.site_policy
        added = _first_waves(ctx, plan.pctx, plan.added, policy, plan.site_policy)
        deliveries = added + plan.deliveries
        grids, sites = list(plan.match.grids), list(plan.match.sites)
        deadline = "仍未确认的对象" + deadline_zh(policy)
        site_deadline = "仍未确认的对象" + deadline_zh(site_policy)
        added_sited = _site_people(plan.added)
    is_site = ctx.registry.is_site
    sited = added_sited | {pid for pid, held in holds.items()
                           if held and all(is_site(g) for g, _lv in held)}

    def row_of(pid: str) -> LevelPolicyLike:
        return site_policy if pid in sited else policy

    # A 解除 is never redialled.
    redials = None if alert.msg_type is MsgType.CANCEL else row_of
    seen: dict[tuple[str, DeliveryKind, bool], tuple[str, str]] = {}
    for d in deliveries:
        seen.setdefault((d.channel, d.kind, d.asks_confirmation), (_label(d, alert), d.text))
    persons = {d.target_id for d in deliveries if d.target_kind is TargetKind.PERSON}
    areas = {d.address for d in deliveries if kind_of(d.target_id) is RefKind.AREA}
    return {
        "level": level.value, "kind": alert.msg_type.value.lower(), "grids": len(grids),
        "grid_ids": grids, **site_counts(ctx, sites), "villages": len(areas),
        "persons": len(persons),
        "speakers": sum(len(ctx.registry.devices_of_village(v)) for v in areas),
        **summary(ctx, deliveries, redials, settings, texts=list(seen.values())),
        "ack_deadline_s": policy.ack_deadline_s,
        "redials": policy.redials if redials is not None else 0,
        "chain": [r.value for r in policy.chain], "deadline": deadline,
        **site_terms(policy, site_policy, len(persons & sited), site_deadline),
        "needs_approval": level.value in settings.approval_levels, "drill": alert.is_drill,
    }


def _cancel_zh(policy: LevelPolicyLike) -> str:
    return ("解除通知请对象确认收到（不重拨、不升级）" if policy.cancel_confirm
            else "解除通知无需确认，不重拨、不升级")


def _first_waves(ctx: Context, pctx: PlanContext, targets: Sequence[Target],
                 policy: LevelPolicyLike, site_policy: LevelPolicyLike) -> list[Delivery]:
    """The first wave to the persons of `targets`, the people of sites only on the sites'
    policy (as `CampaignLifecycle._waves` plans it)."""
    out: list[Delivery] = []
    for pol, group in by_policy(targets, policy, site_policy):
        out += plan_persons(pctx, persons_of(ctx, group), pol.channels, Step.first_wave(),
                            DeliveryKind.WARNING)
    return out


def preview_html(p: dict[str, Any]) -> str:
    """The preview as the officer reads it (the compose page's and a draft's)."""
    chans = "".join(f"<tr><td>{esc(CHANNEL_ZH.get(c, c))}</td><td>{n}</td></tr>"
                    for c, n in p["per_channel"].items())
    texts = "".join(f'<details><summary>{esc(label)}（{len(t)}字）</summary>'
                    f'<p class="msg">{esc(t)}</p></details>' for label, t in p["texts"])
    approval = ('<p class="warn">该级别须由第二人（审批人）批准后发布。</p>'
                if p["needs_approval"] else "")
    drill = ('<p class="warn">演练：仅发送给参与演练的人员，消息标注【演练】。</p>'
             if p["drill"] else "")
    title = {"cancel": "解除通知预览", "update": "更新预览"}.get(p["kind"], "覆盖范围预览")
    # A 解除 is sent once: "if nobody confirms, all redialled" would promise calls never made.
    count = "消息数" if p["kind"] == "cancel" else "首轮消息数"
    voice = f'、语音约 {p["voice_minutes"]} 分钟' if p["voice_minutes"] else ""  # none: unsaid
    again = ("解除通知只发一次。" if p["kind"] == "cancel"
             else f'若无人确认、全部重拨，最多约 ¥{p["cost_max"]:.2f}。')
    return (
        f'<h2>{title} {html.level_badge(p["level"])}</h2>{approval}{drill}'
        '<div class="stats">'
        f'<div><b data-p="grids">{p["grids"]}</b>网格</div>'
        f'<div><b data-p="sites">{p["sites"]}</b>隐患点/水库/危险区等</div>'
        f'<div><b data-p="persons">{p["persons"]}</b>责任人</div>'
        f'<div><b data-p="speakers">{p["speakers"]}</b>应急广播</div>'
        f'<div><b data-p="cost">¥{p["cost"]:.2f}</b>预计费用</div></div>'
        f'<table class="small"><thead><tr><th>渠道</th><th>{count}</th></tr></thead>'
        f'<tbody>{chans}</tbody></table>'
        f'<p class="muted">短信 {p["sms_segments"]} 条计费{voice}；'
        f'{again}'
        f'叫应：<span data-p="deadline">{esc(p["deadline"])}</span>。'
        + (f'隐患点等责任人（{p["site_persons"]}人）按其叫应策略：'
           f'<span data-p="site_deadline">{esc(p["site_deadline"])}</span>。'
           if p.get("site_persons") else "") + '</p>'
        f'{_first_round(p.get("first_round_s"))}{texts}')


def _first_round(seconds: float | None) -> str:
    """How long the first round takes at the providers' rates (several accounts together)."""
    if seconds is None:
        return ""
    took = f"{seconds:.0f} 秒" if seconds < 120 else f"{seconds / 60:.1f} 分钟"
    return (f'<p class="muted" data-p="first_round">按各渠道账号的速率，首轮消息约 {took}'
            "内全部发出。</p>")
