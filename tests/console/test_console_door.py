"""Door to door: an order sends someone out only for a grid of the campaign, while it is
live; the grid closes on the visit's result, not on the order.

The order messages the grid's village head with the campaign's warning; posted for a grid the
campaign does not reach, it would send that warning to a village it is not about, and for a
cancelled campaign the console said 已通知…入户叫应 while the engine dropped the message. The
order had no result: the grid closed (上级已确认) when the village head confirmed the call,
whatever the visit found. Now the person sent enters the result through a link signed for
them and that grid, or an officer enters it at the console; the grid closes on it.
"""

from __future__ import annotations

import base64
import re
from urllib.parse import unquote

from console_kit import sign_in

from tests.engine.helpers import cap_alert
from warnbus.domain.doors import DoorOutcome, DoorVia
from warnbus.domain.models import AckVia, MsgType, Reference
from warnbus.domain.states import GridState
from warnbus.flow.acks import record_ack
from warnbus.flow.credentials import ENGINE
from warnbus.flow.intake import accept
from warnbus.state import keys
from warnbus.web.console.base import CONSOLE
from warnbus.web.console.board import snapshot


async def test_door_to_door_only_in_a_grid_of_a_live_campaign(web) -> None:  # type: ignore[no-untyped-def]
    client, h = web
    alert = cap_alert(codes=("430623101000",))
    cid = (await accept(h.ctx, alert, ENGINE)).campaign_id
    await h.drain()
    s = await sign_in(client, "dora")
    ours = sorted(await h.ctx.store.grids(cid))[0]
    beyond = next(g for g in sorted(h.ctx.registry.data.grids)
                  if h.ctx.registry.data.grids[g].village.startswith("430623103"))

    async def order(grid: str) -> tuple[int, str]:
        r = await client.post(f"/console/campaigns/{cid}/door", allow_redirects=False,
                              data={"_csrf": s.csrf, "grid": grid})
        return r.status, unquote(r.headers.get("Location", ""))

    assert (await order(beyond))[0] == 404
    cancel = cap_alert("43062304100000_20260715053000_2", msg_type=MsgType.CANCEL,
                       codes=("430623101000",),
                       references=(Reference(alert.sender, alert.identifier, "x"),))
    await accept(h.ctx, cancel, ENGINE)
    await h.drain()
    sent = len(h.sent())
    status, location = await order(ours)
    assert status == 303 and location.endswith("msg=该预警已解除，未安排入户叫应"), location
    await h.drain()
    assert len(h.sent()) == sent
    assert not await h.ctx.redis.hgetall(keys.console_campaign(cid)), "no order recorded"


# --------------------------------------------------------------------------- door-to-door results


def _link_of(h, person: str) -> str:  # type: ignore[no-untyped-def]
    """The door link in the door-to-door message to `person` (its path)."""
    texts = [d.text for d in h.sent() if d.target_id == person and d.step == 95]
    links = {m.group(0) for t in texts for m in re.finditer(r"/door/[A-Za-z0-9_.-]+", t)}
    assert len(links) == 1, texts
    return links.pop()


async def _ordered(client, h, s, after: tuple[float, ...] = ()):  # type: ignore[no-untyped-def]
    """A red campaign in township 101 and a door-to-door order for its first grid, placed
    once the clock moved on by each of `after` (seconds) in turn."""
    alert = cap_alert(codes=("430623101000",))
    cid = (await accept(h.ctx, alert, ENGINE)).campaign_id
    await h.drain()
    for step in after:
        h.clock.advance(step)
        await h.drain()
    grid = sorted(await h.ctx.store.grids(cid))[0]
    r = await client.post(f"/console/campaigns/{cid}/door", allow_redirects=False,
                          data={"_csrf": s.csrf, "grid": grid})
    assert r.status == 303
    await h.drain()
    return alert, cid, grid


async def test_the_grid_closes_on_the_visits_result_not_on_the_order(web) -> None:  # type: ignore[no-untyped-def]
    client, h = web
    s = await sign_in(client, "dora")
    # Redials (180-380 s), the backup (480 s), then the village head holds the grid (660 s).
    _alert, cid, grid = await _ordered(client, h, s, after=(500, 200))
    head = h.ctx.registry.chain(grid, at=h.clock.now())[2]
    assert head
    views = await h.ctx.store.grids(cid)
    assert (views[grid].state, views[grid].holder) == (GridState.ESCALATED, head)
    assert (await snapshot(h.ctx, cid))["grids"][grid] == "door"  # an order closes nothing
    # The village head confirms (a key press on a call): the engine's grid is taken over,
    # the board still says 入户中 until the visit's result.
    assert (await record_ack(h.ctx, cid, head, AckVia.DTMF)).recorded
    assert (await h.ctx.store.grids(cid))[grid].state is GridState.TAKEN_OVER
    assert (await snapshot(h.ctx, cid))["grids"][grid] == "door"
    # They enter what they found through the link in their message.
    path = _link_of(h, head)
    r = await client.get(path, headers={"Accept": "text/html"})
    page = await r.text()
    assert r.status == 200 and h.ctx.registry.data.grids[grid].name in page
    r = await client.post(path, data={"outcome": "moved", "note": "3户转移至村委会"})
    assert r.status == 200 and "已登记入户结果：已转移" in await r.text()
    views = await h.ctx.store.grids(cid)
    assert views[grid].state is GridState.VISITED
    assert (await snapshot(h.ctx, cid))["grids"][grid] == "visited"
    result = (await h.ctx.store.console.door_results(cid))[grid]
    assert (result.outcome, result.note, result.via, result.person) == (
        DoorOutcome.MOVED, "3户转移至村委会", DoorVia.LINK, head)
    audit = [e for e in await h.ctx.store.audit(cid) if e["ev"] in ("door-order", "door")]
    assert [(e["ev"], e["g"]) for e in audit] == [("door-order", grid), ("door", grid)]
    meta = await h.ctx.store.meta(cid)
    assert meta and meta.grid_count(GridState.VISITED) == 1


async def test_a_result_entered_at_the_console(web) -> None:  # type: ignore[no-untyped-def]
    client, h = web
    s = await sign_in(client, "alan")
    _alert, cid, grid = await _ordered(client, h, s)

    async def enter(outcome: str, note: str = "", g: str = grid) -> tuple[int, str]:
        r = await client.post(f"/console/campaigns/{cid}/door/result", allow_redirects=False,
                              data={"_csrf": s.csrf, "grid": g, "outcome": outcome,
                                    "note": note})
        return r.status, unquote(r.headers.get("Location", ""))

    assert (await enter("other"))[1].endswith("msg=选择“其他”时须说明情况")
    assert (await enter("asleep"))[1].endswith("msg=请选择入户结果")
    assert not await h.ctx.store.console.door_results(cid)
    status, location = await enter("nobody_home", "两户无人，已电话联系")
    assert status == 303 and location.endswith("已登记入户结果：无人在家，该网格已结束叫应")
    assert (await h.ctx.store.grids(cid))[grid].state is GridState.VISITED
    result = (await h.ctx.store.console.door_results(cid))[grid]
    assert (result.by, result.via) == ("alan", DoorVia.CONSOLE)
    # A grid its own officer confirmed keeps its state: the result is kept all the same.
    other = sorted(await h.ctx.store.grids(cid))[1]
    await record_ack(h.ctx, cid, h.ctx.registry.data.grids[other].primary, AckVia.SMS)
    assert (await enter("told", "", other))[1].endswith("已登记入户结果：已当面告知")
    assert (await h.ctx.store.grids(cid))[other].state is GridState.CONFIRMED
    outside = next(g for g in sorted(h.ctx.registry.data.grids) if g.startswith("430623103"))
    assert (await enter("told", "", outside))[0] == 404
    # From a grid's page the answer goes back there; only ever to a grid's page.
    for g, back_to in ((grid, f"/console/campaigns/{cid}/grids/{grid}?"),
                       ("../../../admin", f"/console/campaigns/{cid}?")):
        r = await client.post(f"/console/campaigns/{cid}/door/result", allow_redirects=False,
                              data={"_csrf": s.csrf, "grid": g, "outcome": "asleep",
                                    "from": "grid"})
        assert r.headers["Location"].startswith(back_to), r.headers["Location"]


async def test_door_links_are_for_one_person_and_one_grid(web) -> None:  # type: ignore[no-untyped-def]
    client, h = web
    s = await sign_in(client, "dora")
    _alert, cid, grid = await _ordered(client, h, s)
    con = client.server.app[CONSOLE]
    head = h.ctx.registry.chain(grid, at=h.clock.now())[2]
    assert head
    other = sorted(await h.ctx.store.grids(cid))[1]
    now = h.clock.now()
    good = con.doors.token(cid, grid, head, now)
    body, tag = good.split(".")
    raw = base64.urlsafe_b64decode(body + "==")
    moved = base64.urlsafe_b64encode(raw.replace(grid.encode(), other.encode())).rstrip(b"=")
    refused = {
        "an ack link": h.app.links.token(cid, head, now),
        "forged": body + "." + "A" * len(tag),
        "re-pointed at another grid": moved.decode() + "." + tag,
        "expired": con.doors.token(cid, grid, head, now - con.doors.ttl_s - 1),
    }
    for why, token in refused.items():
        for method in ("GET", "POST"):
            r = await client.request(method, f"/door/{token}", data={"outcome": "told"})
            assert r.status == 403, (why, method, r.status)
    assert not await h.ctx.store.console.door_results(cid)
    r = await client.post(f"/door/{good}", data={"outcome": "other"})
    assert r.status == 422 and "选择“其他”时须说明情况" in await r.text()
    assert not await h.ctx.store.console.door_results(cid)
