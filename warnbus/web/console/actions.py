"""What console buttons do to the engine: publish a draft, order door-to-door visits.

Both go the engine's one way: a draft becomes a `models.Alert` and enters through
`intake.accept`; a door-to-door order is planned by the planner and queued like any message.
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
from warnbus.flow.intake import Accepted, accept
from warnbus.flow.planner import PlanContext, area_text, plan_persons
from warnbus.runtime.context import Context
from warnbus.state.consolebook import DoorOrder, Provenance
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
)
from warnbus.web.console.drafts import Draft, Drafts
from warnbus.web.console.html import BEIJING, CAMPAIGN_STATE_ZH

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


async def why_not_continue(ctx: Context, cid: str) -> str | None:
    """Why the console may not update or cancel campaign `cid` (for the officer), or None:
    the thread must be the console's own (its sender's) and must not have ended.

    NotFoundError for no such campaign."""
    alert = await latest_alert(ctx, cid)
    if alert.sender != console_sender(ctx.settings, ctx.registry):
        return "只能更新或解除本控制台发布的预警"
    state = await ended_state(ctx, cid)
    if state is not None:
        return f"该预警{CAMPAIGN_STATE_ZH.get(state, '已结束')}，不能再更新或解除"
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
    if draft.kind != "alert":
        why = await why_not_continue(ctx, draft.campaign_id)
        if why is not None:
            raise await _failed(drafts, draft, f"未发布：{why}。")
    try:
        references: tuple[Reference, ...] = ()
        if draft.kind != "alert":
            prev = await latest_alert(ctx, draft.campaign_id)
            references = (Reference(prev.sender, prev.identifier, prev.sent.isoformat()),)
        ident = await new_identifier(ctx, settings, rng)
        alert = build_alert(ctx, draft.form, settings, ident, msg_type=KIND_TYPE[draft.kind],
                            references=references)
        res = await accept(ctx, alert, of_console(console_sender(ctx.settings, ctx.registry)))
    except WarnbusError as e:
        raise await _failed(drafts, draft, refusal_reason(e)) from e
    except Exception as e:
        # Not a refusal the engine explains (e.g. Redis failed mid-way): the alert may or may
        # not have been accepted. Say exactly that, never "published".
        log.exception("console publish failed", draft=draft.id, identifier=ident)
        raise await _failed(drafts, draft, f"发布时出错（{type(e).__name__}），无法确认预警是否已被"
                                           "受理：请在值守台核对后再处理") from e
    if not res.created:
        log.warning("console identifier already taken", draft=draft.id, identifier=ident,
                    alert_id=res.alert_id, campaign_id=res.campaign_id)
        raise await _failed(drafts, draft, f"标识符 {ident} 已被另一条预警占用，本预警未发布，"
                                           "未发出任何消息。请重新起草并提交。")
    now = ctx.clock.now()
    await drafts.move(draft.id, "publishing", "published", alert_id=res.alert_id,
                      campaign_id=res.campaign_id, approved_by=approved_by,
                      approved_at=now if approved_by else 0)
    await ctx.store.console.record_provenance(res.campaign_id, res.alert_id, Provenance(
        draft.id, draft.kind, draft.drafted_by, approved_by, now))
    return res


#: What an intake refusal means, for the officer (the detail, naming the field, follows).
REFUSAL_ZH = {"invalid": "内容不符合要求", "malformed": "内容格式错误", "too_large": "内容过长",
              "forbidden": "无权发布", "unauthorized": "无权发布",
              "outside_registry": "预警区域内没有台账中的网格",
              "unknown_reference": "找不到要更新或解除的预警", "not_found": "找不到要更新或解除的预警"}


def refusal_reason(e: WarnbusError) -> str:
    """Why the engine refused a console message, in Chinese, with the engine's detail."""
    return f"未发布（{REFUSAL_ZH.get(e.code, '引擎拒绝受理')}）：{e.message}"


async def _failed(drafts: Drafts, draft: Draft, reason: str) -> PublishError:
    await drafts.move(draft.id, "publishing", "failed", reason=reason)
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


async def order_door_to_door(ctx: Context, cid: str, grid_id: str, by: str) -> str:
    """Tell the grid's village head (else township duty officer) to go door to door.

    Returns the name of who was told. Idempotent: the delivery ids are deterministic. Only
    for a grid the campaign reaches (NotFoundError), while it has not ended (CampaignOver):
    nobody is sent to knock on doors about another warning, or one that was lifted.
    """
    reg = ctx.registry
    grid = reg.data.grids.get(grid_id)
    if grid is None or grid_id not in await ctx.store.grids(cid):
        raise NotFoundError(f"no grid {grid_id} in campaign {cid}")
    over = await ended_state(ctx, cid)
    if over is not None:
        raise CampaignOver(cid, over)
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
    pctx = PlanContext(campaign_id=cid, alert=alert, info=alert.primary_info(), level=level,
                       area=meta.area or area_text(alert), now=ctx.clock.now(),
                       renderer=ctx.rules.renderer, channels=ctx.channels)
    channels = policy.escalation_channels or policy.channels
    deliveries = plan_persons(pctx, [person], channels, Step.DOOR_TO_DOOR, DeliveryKind.ESCALATION,
                              extra={person.id: {"grids": grid.name}})
    await ctx.lanes.enqueue(deliveries)
    await ctx.store.console.order_door(cid, grid_id, DoorOrder(by, ctx.clock.now(), person.name))
    return person.name
