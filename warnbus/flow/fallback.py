"""The policy's next channel after a channel failed a person: the same message, another way.

Why the channel failed decides where the message may go next (`Cause`):

- the address: the provider refused the number or id for good (a permanent failure), or
  accepted the message and then reported it undeliverable: any channel the person has an
  address for may take over;
- the provider: it kept failing (or its breaker kept refusing) until the step's deadline: a
  channel of the same provider (`ChannelInfo.provider`: Twilio's SMS after its voice) would
  fail the same way, so only another provider's channel takes over.

A fallback has an id of its own (`planner.plan_fallback`), so it is never dropped because the
step's delivery on that channel exists; claim.lua skips it, recorded in the audit, when that
delivery (its twin) has already reached the person or is still under way.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from functools import partial

import structlog

from warnbus.domain.models import Alert, Delivery, DeliveryKind, Level, Person, TargetKind
from warnbus.domain.steps import Step
from warnbus.flow.planner import PlanContext, area_text, plan_fallback
from warnbus.flow.routes import paths_of
from warnbus.plugin import person_address
from warnbus.runtime.context import Context

log = structlog.get_logger("warnbus.flow.fallback")


class Cause(StrEnum):
    """Why a channel gave up on a person's delivery."""

    ADDRESS = "address"  # refused for good, or undeliverable: any other channel
    PROVIDER = "provider"  # the provider kept failing: a channel of another provider


def next_channel(ctx: Context, d: Delivery, person: Person, cause: Cause) -> str | None:
    """The first channel of the policy's fallback chain after `d`'s that was not tried at
    this step, that the person has an address for, and (for `Cause.PROVIDER`) that another
    provider runs."""
    failed = ctx.channels.get(d.channel)
    skip = {*d.tried, d.channel}
    while (nxt := ctx.rules.fallback_for(d.channel, tuple(skip))) is not None:
        # A route (several accounts behind one policy name): the person's own account
        # first, then the others (`flow.routes.paths_of`).
        for channel in paths_of(ctx.channels, nxt, person):
            info = ctx.channels.get(channel)
            if (channel not in skip and info is not None and info.target is TargetKind.PERSON
                    and person_address(person, info.address)
                    and not (cause is Cause.PROVIDER and failed is not None
                             and info.provider == failed.provider)):
                return channel
        skip.add(nxt)
    return None


def fallback_context(ctx: Context, d: Delivery, alert: Alert, now: float) -> PlanContext:
    """How the same message as `d` is planned on another channel: its campaign, alert and
    level, retried until `d`'s own deadline."""
    return PlanContext(
        campaign_id=d.campaign_id, alert=alert, info=alert.primary_info(),
        level=Level(d.level), area=area_text(alert), now=now,
        renderer=ctx.rules.renderer, channels=ctx.channels,
        ack_url=partial(ctx.ack_url, d.campaign_id), until=d.retry_until,
    )


async def plan_fallbacks(ctx: Context, failed: Sequence[tuple[Delivery, Cause]]
                         ) -> list[Delivery]:
    """Fallback deliveries of failed person deliveries (see the module)."""
    out: list[Delivery] = []
    for d, cause in failed:
        if d.target_kind is not TargetKind.PERSON:
            continue
        person = ctx.person(d.target_id)
        alert = await ctx.alert(d.campaign_id, d.alert_id)
        if person is None or alert is None:
            continue
        nxt = next_channel(ctx, d, person, cause)
        if nxt is None:
            log.warning("no channel left to fall back to", campaign_id=d.campaign_id,
                        delivery_id=d.id, person=d.target_id, channel=d.channel,
                        tried=list(d.tried), cause=cause.value)
            continue
        pctx = fallback_context(ctx, d, alert, ctx.clock.now())
        got = plan_fallback(pctx, person, nxt, Step.of(d.step), DeliveryKind(d.kind),
                            (*d.tried, d.channel))
        if got is not None:
            out.append(got)
    return out


async def plan_fallback_for(ctx: Context, campaign_id: str, delivery_id: str) -> list[Delivery]:
    """Fallback deliveries for a delivery a provider reported failed after accepting it: the
    address was the cause (the provider was up: it accepted the message)."""
    sent = await ctx.store.sent_delivery(campaign_id, delivery_id, ctx.clock.now())
    if sent is None:
        return []
    return await plan_fallbacks(ctx, [(sent, Cause.ADDRESS)])
