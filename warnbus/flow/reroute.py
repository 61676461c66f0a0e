"""The dispatcher's per-number limit gate: take a send from the account's limits, or re-route.

Right before a claimed delivery goes to its provider, one on a channel with per-number limits
(`flow.routes`) takes its send from the shared record of its account and number
(`state.numberlimits`, atomic). One that would exceed a limit is not sent: its message
goes by the next path that admits it (`RoutedChannels.next_paths`: another account of the
route, then the policy's fallback chain, each path's limit taken in turn), and the delivery is
recorded as re-routed (`DeliveryState.REROUTED`, outcome `limited`) with why and where to:
"skipped voice-tencent: 2 calls in 10 min -> voice-aliyun". A provider's own refusal under its
limit (`LimitedChannelError`) is re-routed the same way. Neither marks the person failed; a
person with no path left is still called at the next step, and is 未叫醒 only when the
escalation chain runs out.

The next path's delivery is a fallback (`planner.plan_fallback`: a deterministic id of its own,
the channels tried at the step): a crash and replay plans the same one, and its limit was taken
under its first attempt (taking again is free); when the step's own delivery on that channel already
reached the person, the claim skips it and the audit says so. It is queued before the re-routed
delivery is recorded: a worker dying in between leaves the entry to be reclaimed, which
re-routes it to the same delivery.
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from warnbus.domain.models import Attempt, Delivery, DeliveryKind, Outcome, TargetKind
from warnbus.domain.states import DeliveryState
from warnbus.domain.steps import Step
from warnbus.flow.fallback import fallback_context
from warnbus.flow.planner import plan_fallback
from warnbus.flow.routes import RoutedChannels, noun
from warnbus.runtime.context import Context
from warnbus.state.numberlimits import NumberLimitBook
from warnbus.state.store import SendRecord

log = structlog.get_logger("warnbus.flow.reroute")

#: (delivery, attempt number of its claim, why it was not sent)
Refused = tuple[Delivery, int, str]


def attempt(delivery_id: str, n: int) -> str:
    """What a send takes from a number's record: one attempt of a delivery. A replay of the
    same attempt takes nothing more; a retry is a send of its own (the provider may have
    counted the one that failed: a timeout after it was accepted)."""
    return f"{delivery_id}#{n}"


class LimitGate:
    """Per-number limits for the dispatcher (see the module)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.book = NumberLimitBook(ctx.redis)

    def _routes(self) -> RoutedChannels | None:
        ch = self.ctx.channels
        return ch if isinstance(ch, RoutedChannels) else None

    async def take(self, channel: str, d: Delivery, n: int) -> str | None:
        """Take attempt `n` of `d` from its account's per-number record, right before the
        provider call: None when admitted (or no limits), else why it is not sent."""
        routes = self._routes()
        account = routes.account(channel) if routes is not None else None
        if account is None or d.target_kind is not TargetKind.PERSON:
            return None
        r = await self.book.take(account.name, account.limits, d.address, attempt(d.id, n),
                                 self.ctx.clock.now())
        if r is None:
            return None
        what = noun(self.ctx.channels[channel].medium)
        return f"skipped {channel}: {account.limits.describe(r.which, what)}"

    async def reroute(self, refused: Sequence[Refused]) -> list[SendRecord]:
        """Queue the next path of each refused delivery; return their records (REROUTED)."""
        if not refused:
            return []
        ctx = self.ctx
        at = ctx.clock.now()
        nexts: list[Delivery] = []
        out: list[SendRecord] = []
        for d, n, why in refused:
            alt = await self._next(d, at)
            dest = alt.channel if alt is not None else "no path left at this step"
            if alt is not None:
                nexts.append(alt)
            log.info("re-routed before a per-number limit", delivery_id=d.id, channel=d.channel,
                     to=dest, why=why)
            out.append(SendRecord(d, Attempt(d.id, n, d.channel, at, Outcome.LIMITED,
                                         error=f"{why} -> {dest}"), DeliveryState.REROUTED))
        if nexts:
            await ctx.lanes.enqueue(nexts)
        return out

    async def after_report(self, campaign_id: str, delivery_id: str, detail: str
                           ) -> Delivery | None:
        """A call the provider accepted, then refused under its limit (Aliyun 200118 时间段
        限呼, 200119 超频限呼): the same message by the next path (queued), as before a
        send. The delivery stays as recorded (its report is audited by the caller's log);
        the person is not failed for it."""
        sent = await self.ctx.store.sent_delivery(campaign_id, delivery_id, self.ctx.clock.now())
        if sent is None or sent.target_kind is not TargetKind.PERSON:
            return None
        alt = await self._next(sent, self.ctx.clock.now())
        log.info("re-routed after the provider's limit refused a call", channel=sent.channel,
                 delivery_id=delivery_id, to=alt.channel if alt else None, detail=detail)
        if alt is not None:
            await self.ctx.lanes.enqueue([alt])
        return alt

    async def _next(self, d: Delivery, now: float) -> Delivery | None:
        """The message of `d` on the first next path whose limits admit it (taken)."""
        routes = self._routes()
        person = self.ctx.person(d.target_id)
        alert = await self.ctx.alert(d.campaign_id, d.alert_id)
        if routes is None or person is None or alert is None:
            return None
        pctx = fallback_context(self.ctx, d, alert, now)
        for channel in routes.next_paths(d.channel, self.ctx.rules.fallback_for):
            if channel in d.tried:
                continue  # it failed this message at this step already (a fallback)
            alt = plan_fallback(pctx, person, channel, Step.of(d.step), DeliveryKind(d.kind),
                                (*d.tried, d.channel))
            if alt is None:
                continue  # no address of the person for it
            account = routes.account(channel)
            if account is None or await self.book.take(
                    account.name, account.limits, alt.address, attempt(alt.id, 1), now) is None:
                return alt
        return None
