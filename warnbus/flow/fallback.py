"""The policy's next channel after a permanent failure: the same message, another channel."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from warnbus.domain.models import Delivery, DeliveryKind, Level, TargetKind
from warnbus.domain.steps import Step
from warnbus.flow.planner import PlanContext, area_text, plan_persons
from warnbus.runtime.context import Context


async def plan_fallbacks(ctx: Context, failed: Sequence[Delivery]) -> list[Delivery]:
    """Deliveries on the fallback channel of each failed person delivery.

    Ids are deterministic, so a fallback onto a channel the person already got this step
    (e.g. voice -> sms when the first wave sent an SMS too) is dropped by the queue.
    """
    out: list[Delivery] = []
    for d in failed:
        if d.target_kind is not TargetKind.PERSON:
            continue
        nxt = ctx.rules.fallback_for(d.channel)
        person = ctx.person(d.target_id)
        alert = await ctx.alert(d.campaign_id, d.alert_id)
        if not nxt or person is None or alert is None:
            continue
        pctx = PlanContext(
            campaign_id=d.campaign_id, alert=alert, info=alert.primary_info(),
            level=Level(d.level), area=area_text(alert), now=ctx.clock.now(),
            renderer=ctx.rules.renderer, channels=ctx.channels,
            ack_url=partial(ctx.ack_url, d.campaign_id),
        )
        out += plan_persons(pctx, [person], [nxt], Step.of(d.step), DeliveryKind(d.kind))
    return out


async def plan_fallback_for(ctx: Context, campaign_id: str, delivery_id: str) -> list[Delivery]:
    """Fallback deliveries for a delivery a provider reported failed after accepting it."""
    info = await ctx.store.delivery_info(campaign_id, delivery_id)
    if info is None:
        return []
    skeleton = Delivery(
        id=delivery_id, campaign_id=campaign_id, alert_id=info["alert_id"],
        target_id=info["target_id"], target_kind=TargetKind(info["target_kind"]),
        channel=info["channel"], step=int(info["step"]), kind=DeliveryKind(info["kind"]),
        level=Level(info["level"]), address="", text="", created_at=ctx.clock.now(),
    )
    return await plan_fallbacks(ctx, [skeleton])
