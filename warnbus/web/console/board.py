"""What the live board shows: counts, each grid's state, per township, the 未叫醒 list.

Grid colours refine the engine's grid state: a grid still calling its officer shows how far
the officer's messages got (not yet sent, sent, delivered); closed grids keep their outcome.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from warnbus.domain.meta import CampaignMeta
from warnbus.domain.states import AuditEvent, GridState, TargetState
from warnbus.domain.targets import area_id, device_id
from warnbus.errors import NotFoundError
from warnbus.flow.record import alert_view
from warnbus.runtime.context import Context
from warnbus.state.consolebook import DoorOrder
from warnbus.state.store import GridView

BOARD_STATES = ("pending", "sent", "delivered", "confirmed", "taken_over", "escalated",
                "unreached", "closed")
_ATTEMPT_ZH = {"accepted": "已受理", "delivered": "已送达", "failed-temp": "暂时失败",
               "failed-perm": "失败"}


#: A grid still calling its primary officer shows how far the officer's messages got.
_HOLDER_DISPLAY: dict[str, str] = {TargetState.ACKED: "confirmed",
                                   TargetState.DELIVERED: "delivered", TargetState.SENT: "sent"}


def grid_display(g: GridView, tstate: Mapping[str, str]) -> str:
    st = g.state
    if st in (GridState.CONFIRMED, GridState.TAKEN_OVER, GridState.ESCALATED,
              GridState.UNREACHED):
        return st.value
    if st is GridState.DROPPED:
        return "closed"
    if g.level > 0:  # cancelled while escalated
        return "escalated"
    return _HOLDER_DISPLAY.get(tstate.get(g.holder, ""), "pending")


async def campaign_meta(ctx: Context, cid: str) -> CampaignMeta:
    meta = await ctx.store.meta(cid)
    if meta is None:
        raise NotFoundError(f"no campaign {cid}")
    return meta


async def snapshot(ctx: Context, cid: str) -> dict[str, Any]:
    """Everything the board updates live, small enough to send on every change."""
    meta = await campaign_meta(ctx, cid)
    grids = await ctx.store.grids(cid)
    tstate = await ctx.store.target_states(cid)
    display = {gid: grid_display(g, tstate) for gid, g in grids.items()}
    towns: dict[str, Counter[str]] = {}
    villages: dict[str, Counter[str]] = {}
    reg = ctx.registry
    for gid, st in display.items():
        grid = reg.data.grids.get(gid)
        if grid is None:
            continue
        towns.setdefault(reg.township_of(grid.village) or "", Counter())[st] += 1
        villages.setdefault(grid.village, Counter())[st] += 1
    counts: dict[str, int] = {}
    if meta.root:
        counts = dict((await alert_view(ctx, meta.root))["counts"])
    return {
        "state": meta.state.value,
        "level": meta.level.value if meta.level else "",
        "counts": counts,
        "grid_counts": {k: v for k, v in Counter(display.values()).items()},
        "grids": display,
        "towns": {k: dict(v) for k, v in towns.items()},
        "villages": {k: dict(v) for k, v in villages.items()},
    }


@dataclass
class Chase:
    """One grid of the 未叫醒 list, with who was called how often."""

    grid_id: str
    grid: str
    village: str
    state: str
    officers: list[dict[str, str]]
    attempts: list[dict[str, str]] = field(default_factory=list)
    door: DoorOrder | None = None


async def chase_list(ctx: Context, cid: str, *, states: tuple[str, ...] = (
        "unreached", "escalated")) -> list[Chase]:
    """Grids still unconfirmed after their first deadline (escalated) or for good (unreached)."""
    grids = await ctx.store.grids(cid)
    want = [g for g in grids.values() if g.state.value in states]
    if not want:
        return []
    reg = ctx.registry
    acks = await ctx.store.acks(cid)
    doors = await ctx.store.console.door_orders(cid)
    people: dict[str, list[str]] = {}
    out: list[Chase] = []
    for g in sorted(want, key=lambda x: x.grid_id):
        grid = reg.data.grids.get(g.grid_id)
        # A grid removed from the registry while the campaign held it is still a 叫应 nobody
        # answered: listed under its id, with the person last called for it.
        ids = [p for p in ((grid.primary, grid.backup) if grid else ()) + (g.holder,) if p]
        officers = []
        for pid in dict.fromkeys(ids):
            p = ctx.person(pid)
            a = acks.get(pid)
            officers.append({"id": pid, "name": p.name if p else pid,
                             "role": p.role.value if p else "", "phone": (p.phone or "") if p
                             else "", "acked": a.via.value if a else ""})
            people.setdefault(pid, []).append(g.grid_id)
        village = reg.data.regions.get(grid.village) if grid else None
        out.append(Chase(g.grid_id, grid.name if grid else f"{g.grid_id}（已从台账删除）",
                         village.name if village else (grid.village if grid else ""),
                         g.state.value, officers, door=doors.get(g.grid_id)))
    by_person: dict[str, list[dict[str, str]]] = {}
    for ev in await ctx.store.audit(cid):
        if ev.get("ev") == AuditEvent.ATTEMPT and ev.get("tg") in people:
            by_person.setdefault(ev["tg"], []).append({
                "at": ev.get("at", ""), "ch": ev.get("ch", ""), "n": ev.get("n", ""),
                "k": ev.get("k", ""), "o": _ATTEMPT_ZH.get(ev.get("o", ""), ev.get("o", "")),
                "tg": ev["tg"]})
    for c in out:
        for o in c.officers:
            c.attempts += by_person.get(o["id"], [])
        c.attempts.sort(key=lambda a: float(a["at"] or 0))
    return out


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
