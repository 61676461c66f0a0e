"""alert + targets + policy + step -> deliveries. The only place that fans out.

Pure: no I/O. Delivery ids are deterministic (campaign, message, target, channel, step), so
planning the same step twice yields the same deliveries and the queue drops the repeats.

What a channel is comes from its `ChannelInfo` (`PlanContext.channels`), never from the name a
deployment gave it: the person field it sends to, or that it sends to areas; its medium picks
the message template. A channel this process does not know is not planned.

Steps (first wave, redials, chain levels, notices) are `warnbus.domain.steps.Step`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import msgspec

from warnbus.domain.models import (
    Alert,
    Delivery,
    DeliveryKind,
    Info,
    Level,
    Person,
    TargetKind,
    delivery_ids,
)
from warnbus.domain.steps import Step
from warnbus.domain.targets import area_id
from warnbus.flow.ports import Renderer
from warnbus.flow.routes import routed
from warnbus.plugin import PERSON_FIELD, ChannelInfo, Medium

_URL_MARK = "\x00ACKURL\x00"
_MEDIA = frozenset(Medium)
#: Most characters of the area text of a message (more than any channel sends).
AREA_TEXT_MAX = 2_000


def area_text(alert: Alert) -> str:
    """The area as people read it: the areaDesc of the disseminated info, joined.

    At most AREA_TEXT_MAX characters: the list ends with "等" after the last area that fits
    (1,000 areas of long names would otherwise make a text no message can carry).
    """
    info = alert.primary_info()
    if info is None:
        return ""
    names: list[str] = []
    size = -1
    for a in info.areas:
        if not a.desc:
            continue
        size += len(a.desc) + 1
        if size >= AREA_TEXT_MAX:
            return "、".join(names) + "等" if names else a.desc[: AREA_TEXT_MAX - 1] + "…"
        names.append(a.desc)
    return "、".join(names)


@dataclass(frozen=True)
class PlanContext:
    """What every delivery of one planning call shares."""

    campaign_id: str
    alert: Alert
    info: Info | None
    level: Level
    area: str
    now: float
    renderer: Renderer
    channels: Mapping[str, ChannelInfo]  # what each configured channel is, by name
    ack_url: Callable[[str], str | None] | None = None  # person_id -> signed ack link
    #: Until when a person's delivery is retried: the step's deadline (None: see
    #: `Delivery.retry_until`). Areas wait for as long as the alert is valid.
    until: float | None = None
    #: Template values every delivery of the call shares: an Update's {changes}, the area a
    #: dropped area's 解除 names ("lifted"); a person's own `extra` comes on top.
    values: Mapping[str, str] = field(default_factory=dict)
    #: Makes the call's delivery ids its own where one (target, channel, step) gets several
    #: messages of one alert: the overdue notices about different persons to one officer.
    id_salt: str = ""

    @cached_property
    def alert_id(self) -> str:
        return self.alert.alert_id  # a hash each time: computed once per planning call

    @cached_property
    def delivery_id(self) -> Callable[[str, str, int], str]:
        if self.id_salt:
            return delivery_ids(self.campaign_id, f"{self.alert_id}\x1e{self.id_salt}")
        return delivery_ids(self.campaign_id, self.alert_id)

    @cached_property
    def drill(self) -> bool:
        return self.alert.is_drill

    @cached_property
    def expires_at(self) -> float | None:
        when = self.alert.expires_at()
        return when.timestamp() if when else None


def plan_persons(
    ctx: PlanContext,
    persons: Sequence[Person],
    channels: Sequence[str],
    step: Step,
    kind: DeliveryKind,
    *,
    extra: Mapping[str, Mapping[str, str]] | None = None,
    confirm: bool | None = None,
) -> list[Delivery]:
    """One delivery per person and channel that the person has an address for (per person
    and route: `flow.routes.routed`).

    `extra` gives per-person template values (e.g. the grids of an escalation); a person with
    extra values gets a text of their own, everyone else shares one rendering per channel.
    `confirm`: whether the messages ask for a confirmation (None: as `kind` does,
    `DeliveryKind.CONFIRMING`); only those that ask carry the person's ack link. Each text
    is rendered within its channel's `max_length`.
    """
    asks = kind in DeliveryKind.CONFIRMING if confirm is None else confirm
    base_text: dict[str, str] = {}
    out: list[Delivery] = []
    code = int(step)
    # One signed link per person, shared by their channels (signing is an HMAC each).
    urls = {p.id: ctx.ack_url(p.id) for p in persons} if ctx.ack_url and asks else {}
    # A route (several accounts behind one name of the policy) gets each person once, over
    # one of its channels, spread by their rates (`flow.routes`).
    for channel, people in routed(ctx.channels, channels, persons):
        info = ctx.channels.get(channel)
        if info is None or info.target is not TargetKind.PERSON:
            continue  # not configured here, or a channel to areas (`plan_areas`)
        field_of = PERSON_FIELD[info.address]
        for person in people:
            address = field_of(person)
            if not address:
                continue
            url = urls.get(person.id)
            own = extra.get(person.id) if extra else None
            if own is not None:
                text = _render(ctx, kind, channel, info, url, own, asks)
            else:
                if channel not in base_text:
                    # Rendered once with a mark for the link, fitted as if the link were there.
                    base_text[channel] = _render(ctx, kind, channel, info,
                                                 _URL_MARK if url else None, {}, asks,
                                                 len(url) - len(_URL_MARK) if url else 0)
                text = base_text[channel]
                if url:
                    text = text.replace(_URL_MARK, url)
            out.append(_delivery(ctx, person.id, TargetKind.PERSON, channel, code, kind,
                                 address, text, person.region, url, asks, ctx.until))
    return out


def plan_fallback(ctx: PlanContext, person: Person, channel: str, step: Step,
                  kind: DeliveryKind, tried: Sequence[str]) -> Delivery | None:
    """The same message to `person` over `channel` after the channels `tried` failed at
    `step`; None when the person has no address for it.

    Its id is its own, never that of the step's delivery on `channel` (its twin): a fallback
    merged into an id that exists vanished. Whether the twin already reached the person (or
    is under way), so that the fallback is skipped, and recorded as skipped, is decided when
    it is claimed (claim.lua)."""
    got = plan_persons(ctx, [person], [channel], step, kind)
    if not got:
        return None
    key = f"{channel}<{','.join(tried)}"  # deterministic: a replay plans the same fallback
    return msgspec.structs.replace(got[0], id=ctx.delivery_id(person.id, key, int(step)),
                                   tried=tuple(tried))


def plan_areas(
    ctx: PlanContext, villages: Sequence[str], channel: str, kind: DeliveryKind
) -> list[Delivery]:
    """One loudspeaker delivery per area (village code), not per device: the broker fans out.
    Areas are sent at the first wave's step (a speaker is never redialled or escalated).
    Nothing for a channel to persons, or for one this process does not know."""
    info = ctx.channels.get(channel)
    if info is None or info.target is not TargetKind.DEVICE:
        return []
    text = _render(ctx, kind, channel, info, None, {}, False)
    step = int(Step.first_wave())
    return [
        _delivery(ctx, area_id(code), TargetKind.DEVICE, channel, step, kind, code, text, code)
        for code in villages
    ]


def _delivery(
    ctx: PlanContext, target_id: str, target_kind: TargetKind, channel: str, step: int,
    kind: DeliveryKind, address: str, text: str, region: str, ack_url: str | None = None,
    confirm: bool = False, until: float | None = None,
) -> Delivery:
    alert_id = ctx.alert_id
    return Delivery(
        id=ctx.delivery_id(target_id, channel, step),
        campaign_id=ctx.campaign_id, alert_id=alert_id, target_id=target_id,
        target_kind=target_kind, channel=channel, step=step, kind=kind, level=ctx.level,
        address=address, text=text, created_at=ctx.now, drill=ctx.drill, ack_url=ack_url,
        region=region, expires_at=ctx.expires_at, confirm=confirm, retry_until=until,
    )


def _render(
    ctx: PlanContext, kind: DeliveryKind, channel: str, info: ChannelInfo, url: str | None,
    extra: Mapping[str, str], confirm: bool, longer: int = 0,
) -> str:
    # Templates named after a medium are that medium's: an SMS channel a deployment called
    # "voice" gets the SMS texts, not the call's.
    medium = info.medium
    own = medium if channel in _MEDIA and channel != medium else channel
    values = {**ctx.values, **extra} if ctx.values else extra
    text = ctx.renderer.render(
        kind, own, ctx.alert, ctx.info, ctx.level, medium=medium, area=ctx.area,
        ack_url=url, extra=values, confirm=confirm,
        # `longer`: how much longer than `url` the text's real link is (a mark stands for it).
        max_length=None if info.max_length is None else info.max_length - longer,
    )
    if longer and url is not None and url not in text:
        # The medium shows no link (a call, a WeCom card): the whole room is the text's.
        return _render(ctx, kind, channel, info, url, extra, confirm)
    return text
