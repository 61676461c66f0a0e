"""停止叫应: an approver stops the calling of any campaign, with the reason; nobody of it is
called, redialled or escalated to any more, and the board and the record say who and why.

A feed's warning could not be stopped from the console at all: its redials and escalations
ran to the county duty officer whatever the desk knew.
"""

from __future__ import annotations

from urllib.parse import unquote

from console_kit import sign_in

from tests.engine.helpers import cap_alert
from warnbus.domain.models import AckVia, DeliveryKind, MsgType, Reference
from warnbus.domain.states import GridState
from warnbus.flow.acks import record_ack
from warnbus.flow.credentials import ENGINE
from warnbus.flow.intake import accept
from warnbus.flow.record import alert_view

HTML = {"Accept": "text/html"}


async def test_an_approver_stops_every_call_of_a_feeds_campaign(web) -> None:  # type: ignore[no-untyped-def]
    client, h = web
    alert = cap_alert(codes=("430623101000",))
    cid = (await accept(h.ctx, alert, ENGINE)).campaign_id
    await h.drain()
    store = h.ctx.store
    grids = await store.grids(cid)
    confirmed = sorted(grids)[0]
    await record_ack(h.ctx, cid, h.ctx.registry.data.grids[confirmed].primary, AckVia.DTMF)

    async def stop(csrf: str, reason: str) -> tuple[int, str]:
        r = await client.post(f"/console/campaigns/{cid}/stop", allow_redirects=False,
                              data={"_csrf": csrf, "reason": reason})
        return r.status, unquote(r.headers.get("Location", ""))

    s = await sign_in(client, "dora")
    assert (await stop(s.csrf, "误报"))[0] == 403  # a drafter may not
    s = await sign_in(client, "alan")
    assert (await stop(s.csrf, " "))[1].endswith("msg=停止叫应须填写原因")
    assert await store.console.calls_stopped(cid) is None
    status, location = await stop(s.csrf, "气象台电话告知为误报")
    assert status == 303 and location.endswith(f"msg=已停止叫应，{len(grids) - 1}个网格不再呼叫")
    after = await store.grids(cid)
    assert after[confirmed].state is GridState.CONFIRMED
    assert {g.state for gid, g in after.items() if gid != confirmed} == {GridState.STOPPED}
    stops = [e for e in await store.audit(cid) if e["ev"] == "stop"]
    assert [(e["by"], e["x"]) for e in stops] == [("alan", "气象台电话告知为误报")]
    assert (await alert_view(h.ctx, alert.alert_id))["counts"]["pending"] == 0
    # The redials and the whole chain would run to 1,200 s: nothing of it is sent.
    calls = [d for d in h.sent() if d.kind in DeliveryKind.CALLS]
    for _ in range(8):
        h.clock.advance(200)
        await h.drain()
    assert [d for d in h.sent() if d.kind in DeliveryKind.CALLS] == calls
    page = await (await client.get(f"/console/campaigns/{cid}", headers=HTML)).text()
    assert "已停止叫应：Alan于" in page and "原因：气象台电话告知为误报" in page
    assert 'id="stop-btn"' not in page and "没有待确认的网格（已停止叫应）" in page
    again = (await stop(s.csrf, "再次停止"))[1]
    assert "由alan停止叫应" in again and len(
        [e for e in await store.audit(cid) if e["ev"] == "stop"]) == 1
    r = await client.post(f"/console/campaigns/{cid}/door", allow_redirects=False,
                          data={"_csrf": s.csrf, "grid": sorted(grids)[1]})
    assert unquote(r.headers["Location"]).endswith("msg=该预警已停止叫应，未安排入户叫应")
    # A confirmation that comes anyway still closes its grid as confirmed.
    late = sorted(grids)[1]
    await record_ack(h.ctx, cid, h.ctx.registry.data.grids[late].primary, AckVia.SMS)
    assert (await store.grids(cid))[late].state is GridState.CONFIRMED
    # The 解除 still reaches everyone who was warned.
    cancel = cap_alert("43062304100000_20260715063000_2", msg_type=MsgType.CANCEL,
                       codes=("430623101000",),
                       references=(Reference(alert.sender, alert.identifier, "x"),))
    await accept(h.ctx, cancel, ENGINE)
    await h.drain()
    assert any(d.kind is DeliveryKind.CANCEL for d in h.sent())
    assert (await stop(s.csrf, "已解除"))[1].endswith("msg=该预警已解除，无需停止叫应")


async def _stop_then_update(client, h, first: tuple[str, ...], then: tuple[str, ...]):  # type: ignore[no-untyped-def]
    """A warning for `first`, its calling stopped by an approver, then an Update for `then`
    (after an Update for the first township alone when `first` has more): the grids it
    calls or puts back. Nothing more is called, even as the chain's time passes."""
    alert = cap_alert(codes=first)
    cid = (await accept(h.ctx, alert, ENGINE)).campaign_id
    await h.drain()
    last = alert
    if len(first) > 1:  # narrowed first: township 102 dropped
        last = cap_alert("43062304100000_20260715055000_2", msg_type=MsgType.UPDATE,
                         codes=first[:1],
                         references=(Reference(alert.sender, alert.identifier, "x"),))
        await accept(h.ctx, last, ENGINE)
        await h.drain()
    before = {g: v.state for g, v in (await h.ctx.store.grids(cid)).items()}
    s = await sign_in(client, "alan")
    r = await client.post(f"/console/campaigns/{cid}/stop", allow_redirects=False,
                          data={"_csrf": s.csrf, "reason": "误报"})
    assert r.status == 303
    calls = [d for d in h.sent() if d.kind in DeliveryKind.CALLS]
    update = cap_alert("43062304100000_20260715060000_3", msg_type=MsgType.UPDATE, codes=then,
                       references=(Reference(last.sender, last.identifier, "x"),))
    await accept(h.ctx, update, ENGINE)
    await h.drain()
    for _ in range(8):  # no first wave, no redial, no escalation
        h.clock.advance(200)
        await h.drain()
    assert [d for d in h.sent() if d.kind in DeliveryKind.CALLS] == calls
    return cid, before, await h.ctx.store.grids(cid)


async def test_an_update_after_the_stop_calls_nobody_in_the_areas_it_adds(web) -> None:  # type: ignore[no-untyped-def]
    client, h = web
    # The bureau's feed widens its warning to township 102 after the stop.
    cid, before, grids = await _stop_then_update(client, h, ("430623101000",),
                                                 ("430623101000", "430623102000"))
    added = set(grids) - set(before)
    assert added, "township 102 has grids"
    assert {grids[g].state for g in added} == {GridState.STOPPED}
    page = await (await client.get(f"/console/campaigns/{cid}", headers=HTML)).text()
    assert "没有待确认的网格（已停止叫应）" in page


async def test_an_area_put_back_after_the_stop_is_not_called_again(web) -> None:  # type: ignore[no-untyped-def]
    client, h = web
    both = ("430623101000", "430623102000")
    _cid, before, grids = await _stop_then_update(client, h, both, both)
    dropped = {g for g, st in before.items() if st is GridState.DROPPED}
    assert dropped, "township 102 was dropped"
    assert {grids[g].state for g in dropped} == {GridState.STOPPED}
