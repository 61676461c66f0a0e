"""No grid stays open with nothing to move it (issue 16, item 1).

A village head answers for every grid of the village: the first grid that reaches them may be
confirmed by them before the next one arrives. That next grid must close at once (on main it
stayed `escalated` for good: its messages had the ids of those already sent, and the deadline
found the village head confirmed). The sweeper's check repairs what is left open anyway, and
an Update that gives a kept officer another grid puts it on their timeline.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
from prometheus_client import REGISTRY

from tests.engine.helpers import Harness, cap_alert, make_harness
from warnbus.domain.models import AckVia, DeliveryKind, Level, MsgType, Reference
from warnbus.domain.states import GridState
from warnbus.flow.acks import record_ack
from warnbus.flow.credentials import ENGINE
from warnbus.flow.escalation import Deadline, decode_timer, redial_offsets
from warnbus.flow.intake import accept
from warnbus.flow.record import alert_view
from warnbus.flow.repair import check_grids
from warnbus.state import keys

TOWNSHIP = "430623101000"


@pytest_asyncio.fixture
async def h(redis_url: str) -> AsyncIterator[Harness]:
    harness = await make_harness(redis_url)
    yield harness
    await harness.app.close()


def _village_with_two_primaries(h: Harness) -> tuple[str, str, str]:
    """Two grids of one village with different primaries (grid A, grid B) and its head."""
    reg = h.ctx.registry
    for village in sorted({g.village for g in reg.data.grids.values()
                           if g.village.startswith(TOWNSHIP[:9])}):
        grids = sorted(reg.grids_of_village(village))
        by_primary = {reg.data.grids[g].primary: g for g in grids}
        if len(by_primary) >= 2:
            a, b = sorted(by_primary.values())[:2]
            head = reg.chain(a, at=h.clock.now())[2]
            assert head and head == reg.chain(b, at=h.clock.now())[2]
            return a, b, head
    raise AssertionError("no village with two primaries")


async def _deadlines(h: Harness) -> dict[tuple[str, int], tuple[bytes, float]]:
    out = {}
    for m, score in await h.ctx.redis.zrange(keys.TIMERS, 0, -1, withscores=True):
        t = decode_timer(m)
        if isinstance(t, Deadline):
            out[(t.person_id, t.step)] = (m, score)
    return out


def _repaired(why: str) -> float:
    return REGISTRY.get_sample_value("warnbus_grids_repaired_total", {"why": why}) or 0.0


async def test_a_grid_escalated_to_a_village_head_who_confirmed_closes_at_once(h: Harness
                                                                               ) -> None:
    a, b, head = _village_with_two_primaries(h)
    res = await accept(h.ctx, cap_alert(codes=(TOWNSHIP,)), ENGINE)
    await h.drain()
    cid, t0 = res.campaign_id, h.clock.now()
    # Grid B's officer got the first wave 30 s after grid A's (a provider's rate, a chunk
    # later): everything of grid B comes 30 s later.
    primary_b = h.ctx.registry.data.grids[b].primary
    member, due = (await _deadlines(h))[(primary_b, 0)]
    await h.ctx.redis.zadd(keys.TIMERS, {member: due + 30}, xx=True)
    await h.ctx.redis.hset(keys.campaign(cid).first, primary_b, str(t0 + 30))
    policy = h.ctx.rules.policy_for(Level.RED)
    times, chain_at = redial_offsets(policy)
    head_at = chain_at + (policy.step_s or 0)  # the backup's deadline: the village head
    # Redials, the backups, the village head: grid A's at these offsets, grid B's 30 s later.
    for offset in sorted({*times, chain_at, *(x + 30 for x in (*times, chain_at)), head_at}):
        h.clock.set(t0 + offset)
        await h.drain()
    grids = await h.ctx.store.grids(cid)
    assert (grids[a].state, grids[a].holder) == (GridState.ESCALATED, head)
    assert (grids[b].level, grids[b].holder) == (1, h.ctx.registry.data.grids[b].backup)
    assert (await record_ack(h.ctx, cid, head, AckVia.DTMF)).recorded
    calls_to_head = [d for d in h.sent() if d.target_id == head]
    h.clock.set(t0 + head_at + 30)  # grid B's backup's deadline: on to the village head
    await h.drain()
    grids = await h.ctx.store.grids(cid)
    assert grids[a].state is GridState.TAKEN_OVER
    assert (grids[b].state, grids[b].holder) == (GridState.TAKEN_OVER, head), \
        "a grid handed to someone who has confirmed is theirs, confirmed"
    assert [d for d in h.sent() if d.target_id == head] == calls_to_head, "nothing sent again"
    audit = [r for r in await h.ctx.store.audit(cid) if r.get("ev") == "escalate"
             and r.get("g") == b and r.get("to") == head]
    assert audit and audit[-1]["s"] == GridState.TAKEN_OVER
    h.clock.advance(3600)
    await h.drain()
    assert not [g for g in (await h.ctx.store.grids(cid)).values()
                if g.state in GridState.OPEN and g.holder == head]


async def test_the_check_repairs_a_grid_whose_holder_confirmed_and_one_with_no_deadline(
        h: Harness) -> None:
    res = await accept(h.ctx, cap_alert(codes=(TOWNSHIP,)), ENGINE)
    await h.drain()
    cid = res.campaign_id
    reg = h.ctx.registry
    grids = await h.ctx.store.grids(cid)
    first, second = sorted(grids)[:2]
    lost = reg.data.grids[second].primary
    # Grid 1 as an older version left it: a village head confirmed (for another grid), then
    # grid 1 was escalated to them.
    head = reg.chain(first, at=h.clock.now())[2]
    assert head is not None
    ck = keys.campaign(cid)
    await h.ctx.redis.hset(ck.holds, head, "")
    assert (await record_ack(h.ctx, cid, head, AckVia.LINK)).recorded
    await h.ctx.redis.hset(ck.grids, first, f"escalated|2|{head}")
    await h.ctx.redis.hset(ck.holds, head, f"{first}:2")
    await h.ctx.redis.hincrby(ck.meta, "g_calling", -1)
    await h.ctx.redis.hincrby(ck.meta, "g_escalated", 1)
    # Grid 2: its officer's deadlines are gone (the last second of an AOF lost them).
    for (person, _step), (member, _due) in (await _deadlines(h)).items():
        if person == lost:
            await h.ctx.redis.zrem(keys.TIMERS, member)
    before = (_repaired("confirmed"), _repaired("overdue"))
    got = await check_grids(h.ctx)
    assert got["confirmed"] == 1
    assert (await h.ctx.store.grids(cid))[first].state is GridState.TAKEN_OVER
    assert got["overdue"] == 0, "not overdue yet: its timeline has not run out"
    policy = h.ctx.rules.policy_for(Level.RED)
    _times, chain_at = redial_offsets(policy)
    h.clock.advance(chain_at + 2 * h.ctx.settings.engine.lease_s + 1)
    await h.drain()
    held = [g for g in (await h.ctx.store.grids(cid)).values() if g.holder == lost]
    assert held and all(g.state is GridState.CALLING for g in held), "nothing moved them"
    got = await check_grids(h.ctx)
    assert got["overdue"] == len(held)
    assert (_repaired("confirmed"), _repaired("overdue")) == (before[0] + 1,
                                                              before[1] + len(held))
    await h.drain()
    backup = reg.data.grids[second].backup
    now = (await h.ctx.store.grids(cid))[second]
    assert (now.state, now.level, now.holder) == (GridState.ESCALATED, 1, backup)
    assert [d for d in h.sent() if d.target_id == backup and d.kind is DeliveryKind.ESCALATION]
    assert (await _deadlines(h)).get((backup, 10)), "and the backup has a deadline"
    view = await alert_view(h.ctx, res.alert_id)
    assert view["counts"]["pending"] == sum(
        1 for g in (await h.ctx.store.grids(cid)).values() if g.state in GridState.OPEN)


async def test_an_update_giving_a_kept_officer_another_grid_puts_it_on_their_timeline(
        h: Harness) -> None:
    reg = h.ctx.registry
    # An officer with two grids of one village; the first alert's polygon lies inside one.
    two = next(p for p in sorted(reg.data.persons) if len(reg.grids_held_by(p)) == 2
               and reg.data.grids[reg.grids_held_by(p)[0]].village.startswith(TOWNSHIP[:9]))
    g1, g2 = reg.grids_held_by(two)
    ring = reg.data.grids[g1].polygon
    lat = sum(p[0] for p in ring[:-1]) / (len(ring) - 1)
    lon = sum(p[1] for p in ring[:-1]) / (len(ring) - 1)
    d = 0.0003
    dot = ((lat - d, lon - d), (lat - d, lon + d), (lat + d, lon + d), (lat + d, lon - d),
           (lat - d, lon - d))
    first = cap_alert("A_1", codes=(), polygon=dot)
    res = await accept(h.ctx, first, ENGINE)
    await h.drain()
    cid = res.campaign_id
    assert g1 in await h.ctx.store.grids(cid) and g2 not in await h.ctx.store.grids(cid)
    update = cap_alert("A_2", msg_type=MsgType.UPDATE, codes=(TOWNSHIP,), references=(
        Reference(first.sender, first.identifier, "2026-07-15T05:30:00+08:00"),))
    await accept(h.ctx, update, ENGINE)
    await h.drain()
    grids = await h.ctx.store.grids(cid)
    assert g2 in grids, "the Update's new grid of a kept officer is set up"
    target = await h.ctx.store.target(cid, two)
    assert target is not None and set(target.grids) == {g1, g2}
    policy = h.ctx.rules.policy_for(Level.RED)
    _times, chain_at = redial_offsets(policy)
    h.clock.advance(chain_at + 1)
    await h.drain()
    grids = await h.ctx.store.grids(cid)
    assert grids[g2].level == 1 and grids[g1].level == 1, "both moved on with the officer"


async def test_a_grid_put_back_to_an_officer_who_confirmed_meanwhile_is_confirmed(h: Harness
                                                                                  ) -> None:
    """An officer holds grids A and B; an Update drops B, the officer confirms (for A), a
    later Update puts B back: B comes back confirmed by them (after the merge of main's
    reopen_grids it came back calling, and their deadline, finding them confirmed, left it
    so until the sweeper's check)."""
    res = await accept(h.ctx, cap_alert(codes=(TOWNSHIP,)), ENGINE)
    await h.drain()
    cid = res.campaign_id
    grids = await h.ctx.store.grids(cid)
    reg = h.ctx.registry.data
    held: dict[str, list[str]] = {}
    for g, v in sorted(grids.items()):
        if v.state is GridState.CALLING:
            held.setdefault(reg.grids[g].primary, []).append(g)
    officer, (_kept, gid, *_more) = next((p, gs) for p, gs in held.items() if len(gs) >= 2)
    now = h.clock.now()
    await h.ctx.store.close_grids(cid, [gid], GridState.DROPPED, [], now)
    assert (await record_ack(h.ctx, cid, officer, AckVia.DTMF)).recorded
    assert await h.ctx.store.reopen_grids(cid, [(gid, officer)], now) == 1
    back = (await h.ctx.store.grids(cid))[gid]
    assert (back.state, back.holder) == (GridState.CONFIRMED, officer)
    meta = await h.ctx.store.meta(cid)
    now_grids = (await h.ctx.store.grids(cid)).values()
    assert meta is not None and all(meta.grid_count(st) == sum(1 for v in now_grids
                                                             if v.state is st)
                                    for st in (GridState.CALLING, GridState.CONFIRMED,
                                               GridState.DROPPED))
