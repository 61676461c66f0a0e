"""What console buttons do to the engine: publish a draft, order door-to-door visits, stop
a campaign's calling.

Each goes the engine's one way: a draft becomes a `models.Alert` and enters through
`intake.accept`; a door-to-door order is planned by the planner and queued like any message;
a stop closes the open grids and stops every call of the campaign in one script.

The console continues its own threads, and another sender's (a feed's, an API token's) on
the county's behalf: published under the console's sender, referencing the thread, only once
an approver approved it (`on_behalf_of`; docs/security.md, Decisions).
"""

from __future__ import annotations

import random

import msgspec
import structlog

from warnbus.domain.models import CHAIN_ORDER, Alert, DeliveryKind, MsgType, Reference, Role
from warnbus.domain.states import CampaignState
from warnbus.domain.steps import Step
from warnbus.errors import NotFoundError, WarnbusError
from warnbus.flow.acks import ended_state
from warnbus.flow.credentials import console_sender, of_console
from warnbus.flow.doors import DoorLinks
from warnbus.flow.intake import Accepted, accept, root_alert_id
from warnbus.flow.planner import PlanContext, area_text, plan_persons
from warnbus.runtime.context import Context
from warnbus.state.consolebook import DoorOrder, Provenance, StopOrder
from warnbus.web.console.base import ConsoleSettings
from warnbus.web.console.board import campaign_meta
from warnbus.web.console.compose import (
    SYSTEM_RANDOM,
    DraftForm,
    build_alert,
    form_times,
    hazards_of,
    local_time,
    new_identifier,
    sender_name,
)
from warnbus.web.console.drafts import Draft, DraftEvent, Drafts
from warnbus.web.console.html import BEIJING, ended_zh

log = structlog.get_logger("warnbus.console")
KIND_TYPE = {"alert": MsgType.ALERT, "update": MsgType.UPDATE, "cancel": MsgType.CANCEL}


class PublishError(WarnbusError):
    """Publishing a draft failed; the message says why, for the officer."""


async def latest_alert(ctx: Context, cid: str) -> Alert:
    meta = await ctx.store.meta(cid)
    alert = await ctx.alert(cid, meta.latest_alert_id) if meta else None
    if alert is None:
        raise NotFoundError(f"no campaign {cid}")
    return alert


async def on_behalf_of(ctx: Context, cid: str) -> str:
    """The sender of a thread that is not the console's ("" for the console's own): an Update
    or Cancel of it is published on its behalf, and always needs an approver."""
    meta = await ctx.store.meta(cid)
    owner = meta.sender if meta and meta.sender else (await latest_alert(ctx, cid)).sender
    return "" if owner == console_sender(ctx.settings, ctx.registry) else owner


async def why_not_continue(ctx: Context, cid: str) -> str | None:
    """Why the console may not update or cancel campaign `cid` (for the officer), or None:
    the thread must not have ended (another sender's is continued on its behalf).

    NotFoundError for no such campaign."""
    await latest_alert(ctx, cid)
    state = await ended_state(ctx, cid)
    if state is not None:
        return f"该预警{ended_zh(state)}，不能再更新或解除"
    return None


async def publish(ctx: Context, drafts: Drafts, draft: Draft, settings: ConsoleSettings,
                  approved_by: str = "", rng: random.Random = SYSTEM_RANDOM) -> Accepted:
    """Build the draft's alert now (identifier, sent time) and hand it to the intake.

    The draft must have been moved to `publishing` by the caller (one CAS: published once).
    Only an alert the intake newly accepted is published: an answer that it existed already
    (`created=False`, whoever posted it) or any error moves the draft to `failed` with the
    reason for the officer, records nothing, and raises PublishError. So does an Update or
    Cancel whose thread ended while it waited for approval (the engine would drop it).
    """
    ident = ""
    owner = ""
    if draft.kind != "alert":
        why = await why_not_continue(ctx, draft.campaign_id)
        owner = await on_behalf_of(ctx, draft.campaign_id)
        if why is None and owner and not approved_by:
            why = "代其他发布单位更新或解除预警须经审批人批准"
        if why is not None:
            raise await _failed(ctx, drafts, draft, f"未发布：{why}。")
    try:
        references: tuple[Reference, ...] = ()
        note = ""
        if draft.kind != "alert":
            prev = await latest_alert(ctx, draft.campaign_id)
            references = (Reference(prev.sender, prev.identifier, prev.sent.isoformat()),)
            if owner:
                note = await _on_behalf_note(ctx, settings, draft, owner, approved_by)
        ident = await new_identifier(ctx, settings, rng)
        alert = build_alert(ctx, draft.form, settings, ident, msg_type=KIND_TYPE[draft.kind],
                            references=references)
        if note:
            alert = msgspec.structs.replace(alert, note=note)
        cred = of_console(console_sender(ctx.settings, ctx.registry), on_behalf=bool(owner))
        res = await accept(ctx, alert, cred)
    except WarnbusError as e:
        raise await _failed(ctx, drafts, draft, refusal_reason(e)) from e
    except Exception as e:
        # Not a refusal the engine explains (e.g. Redis failed mid-way): the alert may or may
        # not have been accepted. Say exactly that, never "published".
        log.exception("console publish failed", draft=draft.id, identifier=ident)
        raise await _failed(ctx, drafts, draft, f"发布时出错（{type(e).__name__}），"
                                                "无法确认预警是否已被"
                                           "受理：请在值守台核对后再处理") from e
    if not res.created:
        log.warning("console identifier already taken", draft=draft.id, identifier=ident,
                    alert_id=res.alert_id, campaign_id=res.campaign_id)
        raise await _failed(ctx, drafts, draft, f"标识符 {ident} 已被另一条预警占用，本预警未发布，"
                                           "未发出任何消息。请重新起草并提交。")
    now = ctx.clock.now()
    await drafts.move(draft.id, "publishing", "published", alert_id=res.alert_id,
                      event=DraftEvent(now, approved_by or draft.drafted_by, "published"),
                      campaign_id=res.campaign_id, approved_by=approved_by,
                      approved_at=now if approved_by else 0)
    await ctx.store.console.record_provenance(res.campaign_id, res.alert_id, Provenance(
        draft.id, draft.kind, draft.drafted_by, approved_by, now, on_behalf_of=owner))
    return res


async def _on_behalf_note(ctx: Context, settings: ConsoleSettings, draft: Draft, owner: str,
                          approved_by: str) -> str:
    """The CAP note of an Update or Cancel published on another sender's behalf: who
    published it for whom, and who drafted and approved it."""
    root = await ctx.alert(draft.campaign_id, root_alert_id(draft.campaign_id))
    info = root.primary_info() if root else None
    whom = (info.sender_name if info and info.sender_name else "") or owner
    what = "解除" if draft.kind == "cancel" else "更新"
    return (f"{sender_name(ctx, settings)}代{whom}{what}该预警（原发布者：{owner}；"
            f"起草：{draft.drafted_by}，审批：{approved_by}）")


#: What an intake refusal means, for the officer (the detail, naming the field, follows).
REFUSAL_ZH = {"invalid": "内容不符合要求", "malformed": "内容格式错误", "too_large": "内容过长",
              "forbidden": "无权发布", "unauthorized": "无权发布",
              "outside_registry": "预警区域内没有台账中的网格",
              "unknown_reference": "找不到要更新或解除的预警",
              "not_found": "找不到要更新或解除的预警"}


def refusal_reason(e: WarnbusError) -> str:
    """Why the engine refused a console message, in Chinese, with the engine's detail."""
    return f"未发布（{REFUSAL_ZH.get(e.code, '引擎拒绝受理')}）：{e.message}"


async def _failed(ctx: Context, drafts: Drafts, draft: Draft, reason: str) -> PublishError:
    await drafts.move(draft.id, "publishing", "failed", reason=reason,
                      event=DraftEvent(ctx.clock.now(), draft.drafted_by, "failed", reason))
    return PublishError(reason)


def cancel_form(ctx: Context, alert: Alert, reason: str) -> DraftForm:
    """The 解除 of a campaign: the same hazard, level and areas, effective now."""
    info = alert.primary_info()
    form = update_form(ctx, alert)
    headline = f"解除{info.event if info else ''}预警"
    now_f = ctx.clock.now()
    eff, _ = form_times(ctx)
    exp = form.expires if form.expires and _later(form.expires, now_f) else form_times(ctx, 1)[1]
    return msgspec.structs.replace(form, headline=headline, description=reason,
                                   instruction="", effective=eff, expires=exp)


def _later(local: str, now: float) -> bool:
    t = local_time(local)
    return t is not None and t.timestamp() > now


def update_form(ctx: Context, alert: Alert) -> DraftForm:
    """A form holding what a console alert said, to start an Update from."""
    info = alert.primary_info()
    level = ctx.rules.level_of(alert).value
    hazard = next((h.key for h in hazards_of(ctx) if info and h.name == info.event), "")
    blocks = info.areas if info else ()
    # An area with a polygon is the drawn one (its geocodes, if any, are only context).
    areas = tuple(code for a in blocks if not a.polygons for _n, code in a.geocodes
                  if code in ctx.registry.data.regions)
    shape = next((a for a in blocks if a.polygons), None)
    fmt = "%Y-%m-%dT%H:%M"
    eff = info.effective.astimezone(BEIJING).strftime(fmt) if info and info.effective else ""
    exp = info.expires.astimezone(BEIJING).strftime(fmt) if info and info.expires else ""
    return DraftForm(hazard=hazard, level=level, status=alert.status.value, areas=areas,
                     polygon=shape.polygons[0] if shape else (),
                     polygon_desc=shape.desc if shape else "",
                     headline=(info.headline or "") if info else "",
                     description=(info.description or "") if info else "",
                     instruction=(info.instruction or "") if info else "",
                     effective=eff, expires=exp)


class CampaignOver(WarnbusError):
    """The campaign has ended (cancelled, expired): nothing more is sent for it."""

    code = "campaign_over"

    def __init__(self, campaign_id: str, state: CampaignState) -> None:
        super().__init__(f"campaign {campaign_id} is {state.value}")
        self.state = state


class CallsStopped(WarnbusError):
    """A duty officer stopped the campaign's calling: nobody is called for it any more."""

    code = "calls_stopped"

    def __init__(self, campaign_id: str, order: StopOrder) -> None:
        super().__init__(f"the calling of campaign {campaign_id} was stopped")
        self.order = order


async def order_door_to_door(ctx: Context, cid: str, grid_id: str, by: str,
                             links: DoorLinks) -> str:
    """Tell the grid's village head (else township duty officer) to go door to door, with a
    link signed for them and the grid where they enter what the visit found.

    Returns the name of who was told. Idempotent: the delivery ids are deterministic. Only
    for a grid the campaign reaches (NotFoundError), while it has not ended (CampaignOver)
    and its calling has not been stopped (CallsStopped): nobody is sent to knock on doors
    about another warning, one that was lifted, or one whose calling an officer stopped.
    """
    reg = ctx.registry
    grid = reg.data.grids.get(grid_id)
    if grid is None or grid_id not in await ctx.store.grids(cid):
        raise NotFoundError(f"no grid {grid_id} in campaign {cid}")
    over = await ended_state(ctx, cid)
    if over is not None:
        raise CampaignOver(cid, over)
    stopped = await ctx.store.console.calls_stopped(cid)
    if stopped is not None:
        raise CallsStopped(cid, stopped)
    # Whoever is on duty now, the console's overrides and swaps included.
    chain = reg.chain(grid_id, at=ctx.clock.now(), duty=await ctx.duty_book())
    pid = chain[CHAIN_ORDER.index(Role.VILLAGE_HEAD)] or chain[CHAIN_ORDER.index(
        Role.TOWNSHIP_DUTY)]
    person = ctx.person(pid) if pid else None
    if person is None:
        raise NotFoundError(f"grid {grid_id} has no village head or township duty officer")
    meta = await campaign_meta(ctx, cid)
    alert = await latest_alert(ctx, cid)
    level = meta.require_level()
    policy = ctx.rules.policy_for(level)
    now = ctx.clock.now()
    pctx = PlanContext(campaign_id=cid, alert=alert, info=alert.primary_info(), level=level,
                       area=meta.area or area_text(alert), now=now,
                       renderer=ctx.rules.renderer, channels=ctx.channels,
                       ack_url=lambda p: links.url(cid, grid_id, p, now))
    channels = policy.escalation_channels or policy.channels
    deliveries = plan_persons(pctx, [person], channels, Step.DOOR_TO_DOOR, DeliveryKind.ESCALATION,
                              extra={person.id: {"grids": grid.name}})
    await ctx.lanes.enqueue(deliveries)
    await ctx.store.console.order_door(cid, grid_id, DoorOrder(by, now, person.name, person.id))
    return person.name


async def stop_calling(ctx: Context, cid: str, by: str, reason: str) -> int:
    """Stop the campaign's calling (停止叫应): its open grids close as stopped, nobody of it
    is called, redialled or escalated to any more; recorded with who and why (audit, board).
    How many grids closed. CampaignOver once it has ended, CallsStopped if stopped before."""
    over = await ended_state(ctx, cid)
    if over is not None:
        raise CampaignOver(cid, over)
    order = StopOrder(by, ctx.clock.now(), reason)
    closed = await ctx.store.console.stop_calls(cid, order)
    if closed == -1:
        raise CallsStopped(cid, await ctx.store.console.calls_stopped(cid) or order)
    if closed < 0:  # ended (or not started) between the check and the script
        meta = await campaign_meta(ctx, cid)
        raise CampaignOver(cid, meta.state)
    log.info("calling stopped", campaign_id=cid, by=by, grids=closed)
    return closed
