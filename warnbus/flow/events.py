"""The engine side of `plugin.EventSink`: provider callbacks become statuses and acks."""

from __future__ import annotations

import hashlib

import structlog

from warnbus.domain.models import AckVia
from warnbus.domain.states import DeliveryReport
from warnbus.domain.targets import RefKind, kind_of
from warnbus.flow.acks import DUPLICATE, RECORDED, apply_ack, record_ack
from warnbus.flow.durable import AckOp, Op, ReplyOp, ReportOp, StatusOp, durably
from warnbus.flow.fallback import plan_fallback_for
from warnbus.flow.feedback import apply_report, record_feedback
from warnbus.flow.reroute import LimitGate
from warnbus.plugin import PERSON_FIELD, Address, Confirmation, ProviderStatus, Report
from warnbus.runtime import metrics
from warnbus.runtime.context import Context
from warnbus.state.devices import DeviceStatusBook

log = structlog.get_logger("warnbus.flow.events")

_DELIVERED = {ProviderStatus.DELIVERED, ProviderStatus.PLAYING, ProviderStatus.DONE}
_FAILED = {ProviderStatus.FAILED, ProviderStatus.UNDELIVERED}
_NOTED = {ProviderStatus.NO_ANSWER: DeliveryReport.NO_ANSWER,
          ProviderStatus.ANSWERED: DeliveryReport.ANSWERED}
_LIMITED = {ProviderStatus.LIMITED}
#: How long (engine seconds) a read of the active campaigns serves replies (`_active`).
ACTIVE_TTL_S = 1.0
#: How long a reply's provider message id is remembered: a resend or replay within it
#: confirms nothing new (a day's province-wide wave is some 80k keys of ~100 bytes).
REPLY_MEMORY_S = 30 * 86400.0
#: A reply that confirms nothing is recorded as late in campaigns that ended this recently,
#: at most this many of them (the newest).
LATE_REPLY_S = 86400.0
LATE_REPLY_CAMPAIGNS = 20


class EngineSink:
    """Applies channel events to the campaign state (idempotent, like everything it calls)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._devices = DeviceStatusBook(ctx.redis)
        self._limits = LimitGate(ctx)
        self._by_address: dict[tuple[Address, str], list[str]] = {}
        self._active_list: list[str] = []
        self._active_at: float | None = None
        for p in ctx.registry.data.persons.values():
            for address, field in PERSON_FIELD.items():
                value = field(p)
                if value:
                    self._by_address.setdefault((address, value), []).append(p.id)

    async def delivery_status(
        self, campaign_id: str, delivery_id: str, target_id: str, status: ProviderStatus,
        detail: str = "",
    ) -> None:
        """Apply a provider's report, durably (Redis, or the journal while it is away)."""
        if (status not in _DELIVERED and status not in _FAILED and status not in _NOTED
                and status not in _LIMITED):
            return  # queued/sent: nothing to record
        op = StatusOp(campaign_id, delivery_id, target_id, status.value, self.ctx.clock.now(),
                      detail)
        await durably(self.ctx, op, self._apply_status)

    async def _apply_status(self, op: StatusOp) -> None:
        status = ProviderStatus(op.status)
        if status in _LIMITED:
            # Refused under the provider's per-number limit after it accepted the call:
            # not the person's failure; the message goes by the next path (flow/reroute.py).
            await self._limits.after_report(op.campaign_id, op.delivery_id, op.detail)
            return
        if status in _DELIVERED:
            report = DeliveryReport.DELIVERED
        elif status in _NOTED:
            # Recorded against the call (the record says 未接 / 忙 / 已接通), nothing changes:
            # deadlines drive redials.
            report = _NOTED[status]
        else:
            # One speaker failing does not fail the area's command: only that speaker is
            # recorded (and its officer is put on notice when the playout deadline passes).
            device = kind_of(op.target_id) is RefKind.DEVICE
            report = DeliveryReport.DEVICE_FAILED if device else DeliveryReport.FAILED
        res = await self.ctx.store.status(op.campaign_id, op.delivery_id, op.target_id, report,
                                          op.detail, op.at)
        if res == 1 and report is DeliveryReport.FAILED:
            # Accepted, then undeliverable (e.g. SMS 30003): the policy's next channel.
            await self.ctx.lanes.enqueue(
                await plan_fallback_for(self.ctx, op.campaign_id, op.delivery_id))
        log.info("provider status", campaign_id=op.campaign_id, delivery_id=op.delivery_id,
                 status=status.value, applied=res == 1)

    async def apply(self, op: Op) -> None:
        """Apply a journaled op to Redis (the replay; raises while Redis is unavailable)."""
        if isinstance(op, AckOp):
            await apply_ack(self.ctx, op)
        elif isinstance(op, ReplyOp):
            await self._apply_reply(op)
        elif isinstance(op, ReportOp) and op.channel:
            await self._apply_report_reply(op)
        elif isinstance(op, ReportOp):
            await apply_report(self.ctx, op)
        else:
            await self._apply_status(op)

    def device_area(self, device_id: str) -> str | None:
        """The registry's area of a loudspeaker (the channel judges playout reports by it)."""
        device = self.ctx.registry.data.devices.get(device_id)
        return device.region if device is not None else None

    async def device_status(self, device_id: str, state: str | None, since: float,
                            seen: float, area: str | None) -> None:
        """A speaker's status or heartbeat, kept in Redis for every process (the console)."""
        await self._devices.device_status(device_id, state, since, seen, area)

    async def confirm(
        self, campaign_id: str, person_id: str, via: AckVia, delivery_id: str | None = None
    ) -> Confirmation:
        """What became of the confirmation; one journaled (Redis unavailable: recorded when
        it returns) reads as recorded."""
        res = await record_ack(self.ctx, campaign_id, person_id, via, delivery_id=delivery_id)
        return res.confirmation

    async def confirm_from(self, channel: str, address: str, via: AckVia, reply_id: str = ""
                           ) -> list[str]:
        """A reply that names no campaign (an SMS "1") confirms its sender in every active
        campaign where they are an unconfirmed target and where a message through `channel`
        (the channel the reply came through) had reached them before the reply arrived.

        `reply_id`, the provider's message id: a reply handled once (resent by the
        provider, or replayed) confirms nothing more. A reply that finds nothing to confirm
        is recorded as late in the campaigns that ended lately (within `LATE_REPLY_S`) where
        it would have counted. Durable like every confirmation: with Redis unavailable the
        reply is journaled (and [] returned), and judged as of its arrival when replayed."""
        info = self.ctx.channels.get(channel)
        # What `address` is comes from the channel's info (a WeCom channel named "wx" gives
        # WeCom ids); a channel this process does not know confirms nobody.
        persons = self._by_address.get((info.address, address), []) if info else []
        if not persons:
            log.info("reply without an open campaign", channel=channel, address=address)
            return []
        if len(reply_id) > 64:  # a key name, whatever a provider sends
            reply_id = hashlib.sha256(reply_id.encode()).hexdigest()
        op = ReplyOp(channel, address, via, self.ctx.clock.now(), reply_id)
        return await durably(self.ctx, op, self._apply_reply) or []

    async def report(self, campaign_id: str, person_id: str, via: AckVia, report: Report,
                     event_id: str = "") -> bool:
        """Whether the report was kept (or journaled: kept when Redis returns); once per
        `event_id` (a replay is answered as kept and changes nothing)."""
        res = await record_feedback(self.ctx, campaign_id, person_id, report, via,
                                    event=event_id)
        return res.kept

    async def report_from(self, channel: str, address: str, via: AckVia, report: Report,
                          reply_id: str = "") -> list[str]:
        """A report by a reply that names no campaign (an SMS "转移 35"): in every active
        campaign where a message through `channel` had reached the sender before it came,
        it confirms them (as "1" would: a report shows receipt) and is kept. Once per
        `reply_id`; durable like a reply (journaled while Redis is unavailable: [])."""
        info = self.ctx.channels.get(channel)
        persons = self._by_address.get((info.address, address), []) if info else []
        if not persons:
            log.info("report without an open campaign", channel=channel, address=address)
            return []
        if len(reply_id) > 64:
            reply_id = hashlib.sha256(reply_id.encode()).hexdigest()
        op = ReportOp(report, via, self.ctx.clock.now(), channel=channel, address=address,
                      reply_id=reply_id)
        return await durably(self.ctx, op, self._apply_report_reply) or []

    async def _apply_report_reply(self, op: ReportOp) -> list[str]:
        info = self.ctx.channels.get(op.channel)
        persons = self._by_address.get((info.address, op.address), []) if info else []
        store = self.ctx.store
        # Not the same reply as a confirmation of that id; named by the channel (another
        # channel's ids may clash).
        handled = "fb|" + op.reply_id
        event = f"reply|{op.channel}|{op.reply_id}"
        if op.reply_id and await store.reply_handled(op.channel, handled):
            log.info("report already handled", channel=op.channel, address=op.address)
            return []
        kept: list[str] = []
        for cid in await self._active(fresh=True):
            for pid in persons:
                ack = await apply_ack(self.ctx, AckOp(cid, pid, op.via, op.at),
                                      reply_via=op.channel)
                if ack.code not in (RECORDED, DUPLICATE):
                    continue
                # The reply's id goes down to the report script too: two processes handed
                # the same resent reply at once keep it once (the check above is no lock).
                named = ReportOp(op.report, op.via, op.at, campaign_id=cid, person_id=pid,
                                 event=event if op.reply_id else "")
                if (await apply_report(self.ctx, named)).kept:
                    kept.append(cid)
        if op.reply_id:
            await store.reply_done(op.channel, handled, REPLY_MEMORY_S)
        return sorted(set(kept))

    async def _apply_reply(self, op: ReplyOp) -> list[str]:
        info = self.ctx.channels.get(op.channel)
        persons = self._by_address.get((info.address, op.address), []) if info else []
        store = self.ctx.store
        if op.reply_id and await store.reply_handled(op.channel, op.reply_id):
            metrics.ACKS.labels(op.via.value, "duplicate").inc()
            log.info("reply already handled", channel=op.channel, address=op.address)
            return []
        confirmed = await self._confirm_reply(op, persons)
        # Marked handled only now that it is: a resend that comes while this one is under
        # way confirms again (the same confirmations: no change), one after it nothing.
        if op.reply_id:
            await store.reply_done(op.channel, op.reply_id, REPLY_MEMORY_S)
        return confirmed

    async def _confirm_reply(self, op: ReplyOp, persons: list[str]) -> list[str]:
        tried = await self._active(fresh=False)
        confirmed = await self._confirm_in(tried, persons, op)
        if not confirmed:
            # The list may be a moment old: a miss asks Redis for campaigns started since.
            fresh = [c for c in await self._active(fresh=True) if c not in tried]
            confirmed = await self._confirm_in(fresh, persons, op)
            tried += fresh
        if not confirmed:
            since = op.at - LATE_REPLY_S
            ended = [c for c in await self.ctx.store.ended_campaigns(since) if c not in tried]
            await self._confirm_in(ended[:LATE_REPLY_CAMPAIGNS], persons, op)
            log.info("reply without an open campaign", channel=op.channel, address=op.address)
        return sorted(confirmed)

    async def _confirm_in(self, campaigns: list[str], persons: list[str], op: ReplyOp
                          ) -> list[str]:
        confirmed: list[str] = []
        for pid in persons:
            for cid in campaigns:
                ack = AckOp(cid, pid, op.via, op.at)
                res = await apply_ack(self.ctx, ack, reply_via=op.channel)
                if res.recorded:
                    confirmed.append(cid)
        return confirmed

    async def _active(self, *, fresh: bool) -> list[str]:
        """The active campaigns, read at most once per `ACTIVE_TTL_S` of the engine's clock.

        Replies come in bursts (a province's officers answering one warning), each tried on
        every active campaign; the list read once serves the burst. A campaign missing from
        a list that old started less than a second ago: its SMS has not reached anyone yet,
        so no reply can be meant for it. Ended campaigns on the list are harmless (the ack
        script checks the state: the reply is late there)."""
        now = self.ctx.clock.now()
        if fresh or self._active_at is None or not 0 <= now - self._active_at < ACTIVE_TTL_S:
            self._active_list = await self.ctx.store.active_campaigns()
            self._active_at = now
        return list(self._active_list)
