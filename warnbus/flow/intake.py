"""Accept an alert: check its credential, dedup, thread, persist it and leave it in the inbox.

`accept` runs in the API process and returns once the alert and its work item are written
to Redis (the 202 promise); `flow.lifecycle.CampaignLifecycle` carries the campaign on from
the inbox (start, update, cancel).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import structlog

from warnbus.domain.models import (
    Alert,
    MsgType,
    alert_id_for,
)
from warnbus.errors import IngestError
from warnbus.flow.credentials import (
    Credential,
    categories_of,
    check_area_codes,
    check_categories,
    check_reach,
    check_sender,
    check_villages,
    foreign_thread,
    reach_of,
)
from warnbus.flow.matching import LISTED, AcceptWarning, match_alert, off_loop, reach
from warnbus.ingest import alert_to_json
from warnbus.runtime import metrics
from warnbus.runtime.context import Context

log = structlog.get_logger("warnbus.flow.intake")


@dataclass(frozen=True)
class Accepted:
    alert_id: str
    campaign_id: str
    targets: int
    created: bool  # False: the same alert was already accepted
    warnings: tuple[AcceptWarning, ...] = ()
    #: An accepted Alert or Update: persons, grids, sites and loudspeakers it calls.
    counts: Mapping[str, int] = field(default_factory=dict)


def campaign_id_for(alert: Alert) -> str:
    return "cp_" + alert_id_for(alert.sender, alert.identifier)[3:]


def root_alert_id(campaign_id: str) -> str:
    """The id of the Alert that started a campaign (the inverse of `campaign_id_for`)."""
    return "al_" + campaign_id[3:]


async def accept(ctx: Context, alert: Alert, cred: Credential) -> Accepted:
    """Check, dedup, thread and persist an alert under a credential; return once it is
    durably queued for planning.

    Cheapest first, each before anything costlier: the sender and references (no look-up:
    dedup and threads only ever see the credential's own senders), the categories and the
    areas' geocodes, then Redis (dedup, the thread and what it reached), then matching (in a
    worker thread when the alert is large) and the villages it reaches.
    """
    check_sender(cred, alert)
    if alert.msg_type in (MsgType.ACK, MsgType.ERROR):
        raise IngestError(
            "invalid", f"msgType {alert.msg_type.value} messages are not disseminated", "msgType"
        )
    check_categories(cred, alert, ctx.rules.hazard_of)
    check_area_codes(cred, alert, ctx.rules.region_codes)
    store = ctx.store
    aid = alert.alert_id
    known = await store.campaign_of(aid)
    if known:
        metrics.ALERTS.labels(alert.msg_type.value, "duplicate").inc()
        again = await store.messages.accepted_counts(known) if (
            alert.msg_type is MsgType.ALERT) else {}
        return Accepted(aid, known, await store.messages.accepted_targets(known), created=False,
                        counts=again)
    expires = alert.expires_at()
    if alert.msg_type is not MsgType.CANCEL and expires and expires.timestamp() <= ctx.clock.now():
        # Accepting it would send nothing (the campaign would be over at once): say so.
        raise IngestError("invalid", f"the alert expired at {expires.isoformat()}, before it "
                          "was received", "info.expires")
    if alert.msg_type is MsgType.ALERT:
        cid = campaign_id_for(alert)
    else:
        cid = await _thread_of(ctx, alert, cred)
        if cred.scoped:
            check_reach(cred, alert, await thread_reach(ctx, cid))
    warnings: tuple[AcceptWarning, ...] = ()
    counts: Mapping[str, int] = {}
    reached: list[str] = []
    if alert.msg_type is MsgType.CANCEL:
        if cred.regions and any(info.areas for info in alert.infos):
            check_villages(cred, (await match_alert(ctx, alert)).villages)
        n_targets = len(await store.targets(cid))
    else:
        got = await reach(ctx, alert, cred)
        warnings, n_targets, counts = got.warnings, got.targets, got.counts
        reached = reach_of(got.match.villages, categories_of(alert, ctx.rules.hazard_of))
    # Its JSON form, in a worker thread when the alert is large (the largest took ~20 ms).
    blob = await off_loop(ctx, alert, lambda: alert_to_json(alert))
    # Kept before the inbox item can reach the planner of this process, which then reads
    # it from here rather than decoding it again (see Context.keep_alert).
    ctx.keep_alert(alert)
    first = alert.msg_type is MsgType.ALERT
    stored = await store.messages.accept(
        cid, alert, now=ctx.clock.now(), reached=reached, blob=blob,
        first_targets=n_targets if first else None, first_counts=counts if first else None,
        source=cred.name)
    if not stored:  # the same alert, accepted at the same moment through another request
        ctx.forget_alert(alert)
    metrics.ALERTS.labels(alert.msg_type.value, "accepted").inc()
    log.info("alert accepted", alert_id=aid, campaign_id=cid, msg_type=alert.msg_type.value,
             targets=n_targets, credential=cred.name)
    if warnings:
        log.warning("alert areas outside the registry", alert_id=aid, campaign_id=cid,
                    areas=[w.field for w in warnings],
                    detail="; ".join(w.message for w in warnings[:LISTED]))
    return Accepted(aid, cid, n_targets, created=True, warnings=warnings, counts=counts)


async def _thread_of(ctx: Context, alert: Alert, cred: Credential) -> str:
    """The campaign an Update or Cancel continues. Its references name its own sender
    (`check_sender`); the thread must be that sender's too, unless the credential continues
    threads on their senders' behalf (the console's, once an approver approved)."""
    for ref in alert.references:
        cid = await ctx.store.campaign_of(alert_id_for(ref.sender, ref.identifier))
        if cid:
            owner = await ctx.store.messages.thread_sender(cid)
            if not owner:  # accepted before the sender was kept at acceptance, not started
                root = await ctx.alert(cid, root_alert_id(cid))
                owner = root.sender if root else ""
            if owner != alert.sender and not cred.on_behalf:
                raise foreign_thread(alert)
            return cid
    raise IngestError(
        "unknown_reference",
        "no earlier alert of this thread is known: "
        + " ".join(f"{r.sender},{r.identifier}" for r in alert.references),
        "references",
    )


async def thread_reach(ctx: Context, cid: str) -> set[str]:
    """The villages and categories a thread's messages reached (`keys.CampaignKeys.reach`)."""
    got = await ctx.store.reach(cid)
    if got:
        return got
    # A thread accepted before reaches were kept: what its messages reach now.
    for alert in await ctx.store.thread_alerts(cid):
        m = await match_alert(ctx, alert)
        got.update(reach_of(m.villages, categories_of(alert, ctx.rules.hazard_of)))
    return got
