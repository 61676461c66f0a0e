"""What the live board shows: persons, grids, sites and loudspeakers, each counted on its
own, each grid's colour, per township and village.

Grid colours refine the engine's grid state: a grid still calling its officer shows how far
the officer's messages got (not yet sent, sent, delivered); a grid someone was sent door to
door for shows that until the visit's result closes it; closed grids keep their outcome.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from warnbus.domain.meta import CampaignMeta
from warnbus.domain.states import CampaignState, GridState, GridView, TargetState
from warnbus.domain.targets import area_id, device_id
from warnbus.errors import NotFoundError
from warnbus.runtime.context import Context
from warnbus.state.boardreads import Live
from warnbus.state.consolebook import StopOrder
from warnbus.web.console.html import CAMPAIGN_STATE_ZH
from warnbus.web.console.people import person_counts

#: The board's grid colours, in legend order (labels: html.GRID_STATE_ZH).
BOARD_STATES = ("pending", "sent", "delivered", "confirmed", "taken_over", "escalated",
                "unreached", "door", "visited", "stopped", "ended", "closed")
#: The prefix of the sites' counts (p_ persons, g_ grids, s_ loudspeakers).
SITE = "site"
#: Display states of grids still calling their first officer.
CALLING = ("pending", "sent", "delivered")
#: Display states of grids nobody has answered for yet (the pending list shows them).
WAITING = ("pending", "sent", "delivered", "escalated", "unreached", "door")

#: A grid still calling its primary officer shows how far the officer's messages got.
_HOLDER_DISPLAY: dict[str, str] = {TargetState.ACKED: "confirmed",
                                   TargetState.DELIVERED: "delivered", TargetState.SENT: "sent"}
_AS_IS = frozenset({GridState.CONFIRMED, GridState.TAKEN_OVER, GridState.ESCALATED,
                    GridState.UNREACHED, GridState.VISITED, GridState.STOPPED})


def grid_display(g: GridView, tstate: Mapping[str, str], door: bool = False,
                 over: bool = False) -> str:
    """A grid's colour on the board; `door`: someone was sent door to door for it; `over`:
    the campaign is over (`ended_as`), so nobody is called for it any more."""
    st = g.state
    if st is GridState.CANCELLED or (over and st in GridState.OPEN):
        return "ended"  # lifted or expired while nobody had confirmed: no calling colour
    if door and not over and st in GridState.VISITABLE:
        return "door"  # until the visit's result closes it (nobody goes once it is over)
    if st in _AS_IS:
        return st.value
    if st is GridState.DROPPED:
        return "closed"
    if g.level > 0:  # calling a later person of its chain
        return "escalated"
    return _HOLDER_DISPLAY.get(tstate.get(g.holder, ""), "pending")


async def campaign_meta(ctx: Context, cid: str) -> CampaignMeta:
    meta = await ctx.store.meta(cid)
    if meta is None:
        raise NotFoundError(f"no campaign {cid}")
    return meta


def ended_as(meta: CampaignMeta, now: float) -> CampaignState | None:
    """How the campaign is over (`CampaignMeta.ended_as`)."""
    return meta.ended_as(now)


def state_zh(meta: CampaignMeta, now: float) -> str:
    """The campaign's state in the console's words, an expiry not yet recorded included."""
    return CAMPAIGN_STATE_ZH[ended_as(meta, now) or meta.state]


def speaker_counts(ctx: Context, meta: CampaignMeta, live: Live) -> dict[str, int]:
    """The loudspeakers of the villages the campaign reaches: in all, in villages whose area
    command went out, played (reported playing), silent (commanded, not reported)."""
    reg = ctx.registry
    out = {"total": 0, "commanded": 0, "played": 0, "silent": 0}
    if meta.drill:  # drills never reach the public loudspeakers
        return out
    for v in meta.villages:
        devices = reg.devices_of_village(v)
        out["total"] += len(devices)
        if live.tstate.get(area_id(v)) not in TargetState.REACHED:
            continue
        out["commanded"] += len(devices)
        played = sum(1 for d in devices if live.tstate.get(device_id(d)) is TargetState.DELIVERED)
        out["played"] += played
        out["silent"] += len(devices) - played
    return out


def displays(live: Live, doors: Mapping[str, object], over: bool = False) -> dict[str, str]:
    return {gid: grid_display(g, live.tstate, gid in doors, over)
            for gid, g in live.grids.items()}


def head_version(meta: CampaignMeta, over: bool, messages: Sequence[str],
                 stop: StopOrder | None) -> str:
    """A short digest of everything the board's header shows (level, state, area, headline,
    the alert's text and the message history, expiry, the stop of the calling): the live
    stream sends it, and a page whose header has another fetches the new one (the header is
    too big to send on every turn)."""
    what = (meta.state.value, over, meta.level.value if meta.level else "", meta.drill,
            meta.headline, meta.area, meta.latest_alert_id, meta.cancelled_by, meta.expires_at,
            meta.ended_at, meta.t0 or meta.created_at, sorted(messages),
            (stop.by, stop.at, stop.reason) if stop else None)
    return hashlib.sha256(msgspec.json.encode(what)).hexdigest()[:16]


async def head_of(ctx: Context, cid: str, meta: CampaignMeta) -> str:
    """The header's version (`head_version`) of a campaign now."""
    (ids,) = await ctx.store.messages.alert_ids([cid])
    stop = await ctx.store.console.calls_stopped(cid)
    return head_version(meta, ended_as(meta, ctx.clock.now()) is not None, ids, stop)


async def snapshot(ctx: Context, cid: str) -> dict[str, Any]:
    """Everything the board updates live, small enough to send on every change."""
    meta = await campaign_meta(ctx, cid)
    live = await ctx.store.board.live(cid)
    doors = await ctx.store.console.door_orders(cid)
    over = ended_as(meta, ctx.clock.now()) is not None
    display = displays(live, doors, over)
    towns: dict[str, Counter[str]] = {}
    villages: dict[str, Counter[str]] = {}
    reg = ctx.registry
    for gid, st in display.items():
        grid = reg.data.grids.get(gid)
        if grid is None:
            continue
        towns.setdefault(reg.township_of(grid.village) or "", Counter())[st] += 1
        villages.setdefault(grid.village, Counter())[st] += 1
    # Grids and sites (hazard points, reservoirs, ...) are tracked alike but counted apart.
    sites = {gid: st for gid, st in display.items() if reg.is_site(gid)}
    grids = {gid: st for gid, st in display.items() if gid not in sites}
    grid_counts, site_counts = Counter(grids.values()), Counter(sites.values())
    counts = {f"p_{k}": v for k, v in person_counts(live, over).items()}
    for prefix, part, tally in (("g", grids, grid_counts), (SITE, sites, site_counts)):
        counts |= {f"{prefix}_{k}": v for k, v in tally.items()}
        counts[f"{prefix}_total"] = len(part)
        # Still calling its officer, however far their messages got (未送达, 已发送, 已送达).
        counts[f"{prefix}_calling"] = sum(1 for st in part.values() if st in CALLING)
    counts |= {f"s_{k}": v for k, v in speaker_counts(ctx, meta, live).items()}
    counts["uncontacted"] = meta.uncontacted
    return {
        "state": meta.state.value,
        "level": meta.level.value if meta.level else "",
        "drill": meta.drill,
        "now": ctx.clock.now(),
        "t0": meta.t0 or meta.created_at or 0,
        "ended_at": meta.ended_at or 0,
        "over": over,
        "head": await head_of(ctx, cid, meta),
        "counts": counts,
        "grid_counts": dict(grid_counts),
        "site_counts": dict(site_counts),
        "grids": display,
        "towns": {k: dict(v) for k, v in towns.items()},
        "villages": {k: dict(v) for k, v in villages.items()},
    }


async def silent_speakers(ctx: Context, cid: str, meta: CampaignMeta) -> list[dict[str, str]]:
    """Speakers of areas whose command went out that have not reported playing."""
    villages = meta.villages
    if not villages:
        return []
    tstate = await ctx.store.target_states(cid)
    reg = ctx.registry
    out = []
    for v in villages:
        if tstate.get(area_id(v)) not in TargetState.REACHED:
            continue
        for did in reg.devices_of_village(v):
            if tstate.get(device_id(did)) != TargetState.DELIVERED:
                d = reg.data.devices[did]
                region = reg.data.regions.get(v)
                out.append({"id": did, "name": d.name, "village": region.name if region else v,
                            "grid": d.grid or ""})
    return out


async def drawn_areas(ctx: Context, cid: str, meta: CampaignMeta) -> list[
        tuple[str, tuple[tuple[float, float], ...]]]:
    """(areaDesc, ring) of every polygon of the campaign's latest alert, for its maps."""
    alert_id = meta.latest_alert_id
    if not alert_id:  # accepted, not planned yet: its one alert is stored already
        (ids,) = await ctx.store.messages.alert_ids([cid])
        alert_id = ids[0] if len(ids) == 1 else ""
    alert = await ctx.alert(cid, alert_id) if alert_id else None
    info = alert.primary_info() if alert is not None else None
    return [(a.desc, ring) for a in (info.areas if info else ()) for ring in a.polygons]
