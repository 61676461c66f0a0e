"""What an Update and a Cancel send: the change an Update announces, the 解除 of the area it
drops, and the 解除 of a whole warning.

Read-only: `plan_update` and `plan_cancel` read the campaign's state and plan deliveries,
the lifecycle (`flow.lifecycle`) writes and queues them, and the console's preview shows the
same plans before anything is published, so a preview promises what is really sent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from warnbus.domain.meta import CampaignMeta, MessageMeta
from warnbus.domain.models import (
    LEVEL_NAMES_ZH,
    Alert,
    Delivery,
    DeliveryKind,
    Level,
    Person,
    Role,
    Target,
    TargetKind,
)
from warnbus.domain.states import GridState, TargetState
from warnbus.domain.steps import Step
from warnbus.domain.targets import area_id
from warnbus.flow.matching import match_alert
from warnbus.flow.planner import PlanContext, area_text, plan_areas, plan_persons
from warnbus.flow.ports import LevelPolicyLike, MatchLike
from warnbus.registry import Registry
from warnbus.runtime.context import Context

#: Most regions an area text names; more end with 等N处.
NAMES_MAX = 10
_BEIJING_OFFSET_S = 8 * 3600

AckUrl = Callable[[str], str | None]
#: The roles of a first wave's targets: grid officers and the called people of sites.
FIRST_WAVE_ROLES = frozenset({Role.PRIMARY, Role.SITE})


def area_names(registry: Registry, villages: Iterable[str], limit: int = NAMES_MAX) -> str:
    """Villages as people name them: a township all of whose villages are listed by its
    name, other villages by theirs, in code order; beyond `limit` names, 等N处."""
    chosen = set(villages)
    regions = registry.data.regions
    names: list[str] = []
    towns_done: set[str] = set()
    for code in sorted(chosen):
        town = registry.township_of(code)
        if town in towns_done:
            continue
        kids = registry.children_of(town) if town else ()
        if town and kids and chosen.issuperset(kids):
            towns_done.add(town)
            names.append(regions[town].name)
        else:
            names.append(regions[code].name if code in regions else code)
    if len(names) > limit:
        return "、".join(names[:limit]) + f"等{len(names)}处"
    return "、".join(names)


def _when(ts: float) -> str:
    t = datetime.fromtimestamp(ts + _BEIJING_OFFSET_S, UTC)
    return f"{t.month}月{t.day}日{t.hour}时" + (f"{t.minute:02d}分" if t.minute else "")


def describe_changes(registry: Registry, before: CampaignMeta, level: Level,
                     villages: Sequence[str], expires_at: float | None) -> str:
    """What an Update changes against the message it updates, as one sentence:
    "变化：级别由橙色升为红色；新增区域：东山镇；不再包括：治河渡镇；有效期延至7月15日20时30分。"."""
    parts: list[str] = []
    old = before.level
    if old is not None and old is not level:
        verb = "升为" if level.rank < old.rank else "降为"
        parts.append(f"级别由{LEVEL_NAMES_ZH[old]}{verb}{LEVEL_NAMES_ZH[level]}")
    was, now = set(before.villages), set(villages)
    if now - was:
        parts.append(f"新增区域：{area_names(registry, now - was)}")
    if was - now:
        parts.append(f"不再包括：{area_names(registry, was - now)}")
    if expires_at != before.expires_at:
        if expires_at is None:
            parts.append("有效期：至另行通知")
        elif before.expires_at is None:
            parts.append(f"有效期至{_when(expires_at)}")
        else:
            verb = "延至" if expires_at > before.expires_at else "提前至"
            parts.append(f"有效期{verb}{_when(expires_at)}")
    if not parts:
        return "变化：级别、区域、有效期不变，内容更新。"
    return "变化：" + "；".join(parts) + "。"


def message_meta(alert: Alert, level: Level, villages: Sequence[str], targets: int
                 ) -> MessageMeta:
    """What the campaign's meta keeps of the message it carries now."""
    info = alert.primary_info()
    expires = alert.expires_at()
    return MessageMeta(latest=alert.alert_id, level=level,
                       headline=(info.headline or "") if info else "", area=area_text(alert),
                       expires_at=expires.timestamp() if expires else None,
                       villages=tuple(villages), targets=targets)


def reach_count(targets: Sequence[Target], villages: Sequence[str],
                policy: LevelPolicyLike) -> int:
    """What the campaign sends to: persons, plus one area per village for loudspeakers."""
    persons = sum(1 for t in targets if t.kind is TargetKind.PERSON)
    return persons + (len(villages) if policy.device_channels else 0)


def persons_of(ctx: Context, targets: Iterable[Target]) -> list[Person]:
    """The registry's persons of `targets` (devices and unknown persons left out)."""
    out = []
    for t in targets:
        p = ctx.person(t.id) if t.kind is TargetKind.PERSON else None
        if p is not None:
            out.append(p)
    return out


def plan_context(ctx: Context, cid: str, alert: Alert, level: Level, *, area: str = "",
                 ack_url: AckUrl | None = None, values: dict[str, str] | None = None
                 ) -> PlanContext:
    """The planner's context for a message of campaign `cid` (area: the message's own, else
    `area`)."""
    return PlanContext(
        campaign_id=cid, alert=alert, info=alert.primary_info(), level=level,
        area=area_text(alert) or area, now=ctx.clock.now(), renderer=ctx.rules.renderer,
        channels=ctx.channels, ack_url=ack_url, values=values or {},
    )


@dataclass(frozen=True)
class UpdatePlan:
    """What an Update does to a running campaign (`plan_update`)."""

    level: Level
    policy: LevelPolicyLike
    #: The sites' policy row of the level: the people called for sites only follow it.
    site_policy: LevelPolicyLike
    match: MatchLike
    added: list[Target]  # new to the campaign: their first wave (the intake plans it in chunks)
    dropped_grids: list[str]  # grids no longer in the area: they close as dropped
    dropped_people: list[str]  # primaries no longer in the area: nobody calls them again
    message: MessageMeta
    pctx: PlanContext
    #: To the people still in the area (new content), the speakers of the area, and the 解除
    #: of the dropped area to whom it had reached.
    deliveries: list[Delivery]
    lifted_people: int = 0
    lifted_villages: int = 0
    #: (grid, primary) of grids an earlier Update dropped that this one puts back: they
    #: reopen and their persons start again among `added` (they had heard the 解除).
    reopened: tuple[tuple[str, str], ...] = ()
    #: Persons in the area before and still (as this Update matches them): an officer given
    #: another grid gets it set up and on their timeline
    #: (`CampaignLifecycle._grow_kept`).
    kept: tuple[Target, ...] = ()

    def policy_of(self, target: Target) -> LevelPolicyLike:
        """The policy a target's calls follow: the sites' for people called for sites only."""
        return self.site_policy if target.role is Role.SITE else self.policy


async def plan_update(ctx: Context, cid: str, alert: Alert, before: CampaignMeta, *,
                      ack_url: AckUrl | None = None) -> UpdatePlan:
    """Plan an Update of campaign `cid` (its meta `before` it): nothing is written.

    - everyone still in the area gets the new content, saying 更新 and what changed (level,
      area, expiry against the message it updates); those who confirmed already get it on
      the notice channels (`cancel_channels`) and are not asked again;
    - those new to the area are `added` (a first wave), and so are those an earlier Update
      dropped whose grids this one puts back (`reopened`: they had heard the 解除);
    - the area it drops gets its 解除: the persons reached there who answer for no grid left
      in the area (once: not again when a later Update leaves it out too), and the speakers
      of the dropped villages that had been reached (not in a drill).

    Sites count as grids here (a campaign tracks them alike); the people called for sites
    only are sent to on the sites' policy row (`UpdatePlan.policy_of`)."""
    rules = ctx.rules
    level = rules.level_of(alert)
    policy = rules.policy_for(level)
    site_policy = rules.site_policy_for(level)
    match = await match_alert(ctx, alert)
    targets = rules.targets(ctx.registry.data, match.grids, match.devices, drill=alert.is_drill,
                            sites=match.sites, hazards=match.hazards)
    old = await ctx.store.targets(cid)
    grids = await ctx.store.grids(cid)
    keep = {t.id for t in targets}
    in_area = {*match.grids, *match.sites}
    old_grids = {g for t in old.values() for g in t.grids
                 if t.kind is TargetKind.PERSON and t.role in FIRST_WAVE_ROLES}
    dropped_grids = sorted(old_grids - in_area)
    newly = {g for g in dropped_grids if g not in grids or grids[g].state is not GridState.DROPPED}
    dropped_people = [t.id for t in old.values() if t.kind is TargetKind.PERSON
                      and t.id not in keep and t.role in FIRST_WAVE_ROLES]
    expires = alert.expires_at()
    expires_at = expires.timestamp() if expires else None
    villages = match.villages
    changes = describe_changes(ctx.registry, before, level, villages, expires_at)
    message = message_meta(alert, level, villages, reach_count(targets, villages, policy))
    pctx = plan_context(ctx, cid, alert, level, ack_url=ack_url, values={"changes": changes})
    first = Step.first_wave()
    acks = await ctx.store.acks(cid)
    back = {g for g in in_area if g in grids and grids[g].state is GridState.DROPPED}
    returning = {t.id for t in targets if t.id in old and t.kind is TargetKind.PERSON
                 and back.intersection(t.grids)}
    reopened = tuple((g, t.id) for t in targets if t.id in returning for g in t.grids
                     if g in back)
    kept = [t for t in targets if t.id in old and t.id not in returning]
    out: list[Delivery] = []
    for pol, group in by_policy(kept, policy, site_policy):
        out += plan_persons(pctx, persons_of(ctx, (t for t in group if t.id not in acks)),
                            pol.channels, first, DeliveryKind.UPDATE)
        out += plan_persons(pctx, persons_of(ctx, (t for t in group if t.id in acks)),
                            pol.cancel_channels, first, DeliveryKind.UPDATE, confirm=False)
    if not alert.is_drill:
        for ch in policy.device_channels:
            out += plan_areas(pctx, villages, ch, DeliveryKind.UPDATE)
    # The 解除 of the dropped area, to whom had been reached there.
    states = await ctx.store.target_states(cid)
    lifted = [t for t in old.values() if t.kind is TargetKind.PERSON and t.id not in keep
              and t.grids and newly.intersection(t.grids) and not in_area.intersection(t.grids)
              and states.get(t.id) in TargetState.REACHED]
    left = set(before.villages) - set(villages)
    gone = sorted(v for v in left if states.get(area_id(v)) in TargetState.REACHED)
    if not left:  # a campaign started before its villages were kept: its dropped grids'
        reg = ctx.registry.data
        left = {reg.grids[g].village if g in reg.grids else reg.sites[g].village
                for g in dropped_grids if g in reg.grids or g in reg.sites} - set(villages)
    # The level lifted there is the one the area had.
    lctx = plan_context(ctx, cid, alert, before.level or level, ack_url=ack_url,
                        values={"lifted": area_names(ctx.registry, left)})
    for pol, group in by_policy(lifted, policy, site_policy):
        out += plan_persons(lctx, persons_of(ctx, group), pol.cancel_channels, first,
                            DeliveryKind.CANCEL, confirm=pol.cancel_confirm)
    if not alert.is_drill:
        for ch in policy.device_channels:
            out += plan_areas(lctx, gone, ch, DeliveryKind.CANCEL)
    added = [t for t in targets if t.id not in old or t.id in returning]
    return UpdatePlan(level, policy, site_policy, match, added, dropped_grids, dropped_people,
                      message,
                      pctx, out, len(lifted), len(gone), reopened, tuple(kept))


def by_policy(targets: Iterable[Target], policy: LevelPolicyLike,
               site_policy: LevelPolicyLike) -> list[tuple[LevelPolicyLike, list[Target]]]:
    """`targets` in two groups: on the level's policy, and the people of sites only on the
    sites' (empty groups left out)."""
    ts = list(targets)
    groups = [(policy, [t for t in ts if t.role is not Role.SITE]),
              (site_policy, [t for t in ts if t.role is Role.SITE])]
    return [(pol, group) for pol, group in groups if group]


async def plan_cancel(ctx: Context, cid: str, alert: Alert, meta: CampaignMeta, *,
                      ack_url: AckUrl | None = None) -> list[Delivery]:
    """The 解除 of campaign `cid` (its meta `meta`): to everyone reached who still answered
    for the area (those an Update dropped had their 解除 then), on the level's
    `cancel_channels`, asking a confirmation only when the policy's `cancel_confirm` says
    so (the people of sites only: on the sites' policy row); and to the speakers of the
    villages reached. Nothing is written."""
    level = meta.require_level()
    policy = ctx.rules.policy_for(level)
    site_policy = ctx.rules.site_policy_for(level)
    states = await ctx.store.target_states(cid)
    grids = await ctx.store.grids(cid)
    targets = await ctx.store.targets(cid)
    dropped = {g for g, v in grids.items() if v.state is GridState.DROPPED}

    def lifted_before(pid: str) -> bool:
        t = targets.get(pid)
        return t is not None and bool(t.grids) and dropped.issuperset(t.grids)

    def role(pid: str) -> Role | None:
        t = targets.get(pid)
        return t.role if t is not None else None

    reached = [Target(pid, TargetKind.PERSON, "", role(pid)) for pid, st in states.items()
               if st in TargetState.REACHED and not lifted_before(pid)]
    pctx = plan_context(ctx, cid, alert, level, area=meta.area, ack_url=ack_url)
    out: list[Delivery] = []
    for pol, group in by_policy(reached, policy, site_policy):
        out += plan_persons(pctx, persons_of(ctx, group), pol.cancel_channels,
                            Step.first_wave(), DeliveryKind.CANCEL, confirm=pol.cancel_confirm)
    villages = [v for v in meta.villages if states.get(area_id(v)) in TargetState.REACHED]
    for ch in policy.device_channels:
        out += plan_areas(pctx, villages, ch, DeliveryKind.CANCEL)
    return out
