"""An honest board: persons, grids and loudspeakers counted apart; who is still pending, by
name and number, from the first minute; each person's state and next step; every call.

The board used to show 叫应对象 as persons plus loudspeaker areas (and 已发送 above it once the
chain added people), listed nobody before the chain ended (~20 minutes for red), dropped the
earliest calls and those of the village head once a grid moved on, and timed the areas an
Update added from the original alert.
"""

from __future__ import annotations

import re
from datetime import timedelta

from console_kit import sign_in

from tests.engine.helpers import T0, cap_alert
from warnbus.domain.models import AckVia, MsgType, Reference, Status
from warnbus.domain.targets import area_id, device_id
from warnbus.flow.acks import record_ack
from warnbus.flow.credentials import ENGINE
from warnbus.flow.intake import accept
from warnbus.web.console.board import snapshot
from warnbus.web.console.html import bj

HTML = {"Accept": "text/html"}
TOWN = "430623101000"


async def _started(h, codes=(TOWN,), **kw):  # type: ignore[no-untyped-def]
    alert = cap_alert(codes=codes, **kw)
    cid = (await accept(h.ctx, alert, ENGINE)).campaign_id
    await h.drain()
    return alert, cid


def _cards(text: str) -> dict[str, str]:
    """The pending list's cards by grid id."""
    parts = re.split(r'(?=<div class="chase )', text)
    out = {}
    for p in parts:
        m = re.match(r'<div class="chase s-[a-z_]+" data-grid="([^"]+)"', p)
        if m:
            out[m.group(1)] = p
    return out


def _text(html_: str) -> str:
    return re.sub(r"<[^>]+>", "", html_)


async def test_persons_grids_and_loudspeakers_are_counted_apart(web) -> None:  # type: ignore[no-untyped-def]
    client, h = web
    _alert, cid = await _started(h)
    store, reg = h.ctx.store, h.ctx.registry
    live = await store.board.live(cid)
    meta = await store.meta(cid)
    assert meta is not None
    primaries = {t.id for t in (await store.targets(cid)).values() if t.kind == "person"}
    devices = [d for v in meta.villages for d in reg.devices_of_village(v)]
    assert devices, "township 101 has loudspeakers"
    snap = (await snapshot(h.ctx, cid))["counts"]
    assert snap["p_total"] == len(primaries) == len(live.holds)
    assert snap["g_total"] == len(live.grids)
    assert snap["s_total"] == len(devices)
    # The area commands went out (one per village), no speaker has reported playing yet.
    assert snap["s_commanded"] == len(devices) and snap["s_played"] == 0
    # A speaker reports playing: it counts as a loudspeaker, never as a person.
    played = devices[0]
    area = area_id(reg.data.devices[played].region)
    delivery = next(d for d in h.sent("loudspeaker") if d.target_id == area)
    await store.status(cid, delivery.id, device_id(played), "delivered", "", h.clock.now())
    after = (await snapshot(h.ctx, cid))["counts"]
    assert after["s_played"] == 1 and after["p_reached"] == snap["p_reached"]
    # The chain adds the people it calls: each is a person of the campaign, counted once.
    h.clock.advance(500)  # past the redials (180, 280, 380) to the backups (480)
    await h.drain()
    later = (await snapshot(h.ctx, cid))["counts"]
    holds = (await store.board.live(cid)).holds
    assert later["p_total"] == len(holds) > len(primaries)
    assert later["p_added"] == len(holds) - len(primaries)
    assert later["p_reached"] <= later["p_total"]
    assert sum(later.get(f"p_{k}", 0) for k in ("pending", "confirmed", "escalated",
                                                  "unreached", "closed")) == later["p_total"]
    # So do the grids' (one tile per state, the three colours of calling its officer as one).
    assert sum(later.get(f"g_{k}", 0) for k in (
        "calling", "confirmed", "taken_over", "escalated", "unreached", "door", "visited",
        "stopped", "closed")) == later["g_total"] == len(live.grids)
    await sign_in(client, "alan")
    r = await client.get(f"/console/campaigns/{cid}", headers=HTML)
    page = await r.text()
    assert f'data-c="p_total">{later["p_total"]}<' in page and "叫应对象（人）" in page
    assert f'data-c="s_total">{len(devices)}<' in page and "应急广播" in page


async def test_the_pending_list_names_everyone_from_the_first_minute(web) -> None:  # type: ignore[no-untyped-def]
    client, h = web
    _alert, cid = await _started(h)
    h.clock.advance(30)
    await h.drain()
    grids = await h.ctx.store.grids(cid)
    reg = h.ctx.registry
    await sign_in(client, "alan")
    r = await client.get(f"/console/campaigns/{cid}/chase")
    cards = _cards(await r.text())
    assert int(r.headers["X-Waiting"]) == len(grids)
    assert len(cards) == min(60, len(grids))
    gid, card = sorted(cards.items())[0]
    officer = reg.data.persons[reg.data.grids[gid].primary]
    assert officer.name in card and f'href="tel:{officer.phone}"' in card
    first_redial = bj(T0.timestamp() + 180, "%H:%M:%S")
    assert f"叫应中 · 第1轮 · 已呼叫3次 · 下一步 {first_redial} 第1次重拨" in _text(card)
    # The backup officer, listed with the grid, has not been called: never "ended".
    backup = reg.data.persons[reg.chain(gid, at=h.clock.now())[1] or ""]
    assert f"{backup.name}（备岗网格员） {backup.phone} 尚未呼叫" in _text(card)
    # Somebody confirms: their grid leaves the list.
    await record_ack(h.ctx, cid, officer.id, AckVia.DTMF)
    r = await client.get(f"/console/campaigns/{cid}/chase")
    assert gid not in _cards(await r.text()) and int(r.headers["X-Waiting"]) == len(grids) - 1


async def test_each_person_says_where_they_stand_and_every_call_is_listed(web) -> None:  # type: ignore[no-untyped-def]
    client, h = web
    _alert, cid = await _started(h)
    reg = h.ctx.registry
    gid = sorted(await h.ctx.store.grids(cid))[0]
    primary, backup, head, township = (reg.data.persons[p] if p else None
                                       for p in reg.chain(gid, at=h.clock.now())[:4])
    assert primary and backup and head and township
    h.clock.advance(500)  # redials at 180, 280, 380; the backup at 480
    await h.drain()
    await sign_in(client, "alan")
    text = _text(await (await client.get(f"/console/campaigns/{cid}/grids/{gid}",
                                         headers=HTML)).text())
    assert f"{primary.name}（网格员）" in text
    assert f"未确认 · 已升级至 {backup.name}（备岗网格员）" in text
    up_at = bj(T0.timestamp() + 500 + 180, "%H:%M:%S")
    assert f"下一步 {up_at} 升级至 {head.name}（村负责人）" in text
    # The chain moves on to the village head, then the township duty officer.
    h.clock.advance(200)
    await h.drain()
    h.clock.advance(200)
    await h.drain()
    text = _text(await (await client.get(f"/console/campaigns/{cid}/grids/{gid}",
                                         headers=HTML)).text())
    # Every call by name, the earliest first, the village head's too after the grid moved on.
    assert f"13:30:00 {primary.name}（网格员）语音电话 首次 → " in text
    assert f"{head.name}（村负责人）语音电话 升级至村负责人 → " in text
    # The history says each escalation in the record's words, not the chain's level number.
    assert f"升级至备岗网格员：{backup.name}" in text and f"升级至村负责人：{head.name}" in text
    assert "（第1级）" not in text
    assert f"{township.name}（乡镇值班员）" in text
    calls = sum(1 for d in h.sent() if d.target_id in (primary.id, backup.id, head.id,
                                                          township.id))
    assert f"呼叫记录（{calls}）" in text


async def test_an_area_added_by_an_update_is_timed_from_when_it_was_added(web) -> None:  # type: ignore[no-untyped-def]
    client, h = web
    alert, cid = await _started(h)
    h.clock.advance(600)
    update = cap_alert("43062304100000_20260715054000_2", msg_type=MsgType.UPDATE,
                       codes=(TOWN, "430623102000"), sent=T0 + timedelta(minutes=10),
                       references=(Reference(alert.sender, alert.identifier, "x"),))
    await accept(h.ctx, update, ENGINE)
    await h.drain()
    reg = h.ctx.registry
    added = sorted(g for g in await h.ctx.store.grids(cid)
                   if reg.data.grids[g].village.startswith("430623102"))
    assert added
    await sign_in(client, "alan")
    r = await client.get(f"/console/campaigns/{cid}/chase?town=430623102000")
    cards = _cards(await r.text())
    card = _text(cards[added[0]])
    # Called from 13:40, its first redial at 13:43 (not 13:33, which would read as overdue).
    assert "13:40 起叫" in card
    assert f"下一步 {bj(T0.timestamp() + 600 + 180, '%H:%M:%S')} 第1次重拨" in card


async def test_drill_down_from_village_to_grids_and_people(web) -> None:  # type: ignore[no-untyped-def]
    client, h = web
    _alert, cid = await _started(h)
    reg = h.ctx.registry
    village = "430623101001"
    ours = [g for g in reg.grids_of_village(village) if g in await h.ctx.store.grids(cid)]
    await sign_in(client, "alan")
    page = await (await client.get(f"/console/campaigns/{cid}?village={village}",
                                   headers=HTML)).text()
    for gid in ours:
        assert f'/console/campaigns/{cid}/grids/{gid}"' in page
        assert reg.data.persons[reg.data.grids[gid].primary].name in page
    r = await client.get(f"/console/campaigns/{cid}/grids/{ours[0]}?part=panel")
    assert r.status == 200 and 'data-grid="' + ours[0] in await r.text()
    outside = next(g for g in sorted(reg.data.grids) if g.startswith("430623103"))
    r = await client.get(f"/console/campaigns/{cid}/grids/{outside}", headers=HTML)
    assert r.status == 404


async def test_an_exercise_is_marked_on_the_desk_the_board_and_the_records(web) -> None:  # type: ignore[no-untyped-def]
    client, h = web
    _alert, cid = await _started(h, codes=("430623",), status=Status.EXERCISE)
    await sign_in(client, "alan")
    for path in ("/console/", f"/console/campaigns/{cid}", "/console/records",
                 f"/console/campaigns/{cid}/print"):
        page = await (await client.get(path, headers=HTML)).text()
        assert "演练" in page, path
        if path != f"/console/campaigns/{cid}/print":  # the printed title says （演练）
            assert '<span class="drill">演练</span>' in page, path


async def test_a_grid_removed_from_the_registry_while_it_is_called(web) -> None:  # type: ignore[no-untyped-def]
    """The registry drops a grid whose officer is being called: the pending list, the
    township's view and the grid's own page still answer, and name it under its id."""
    from warnbus.domain.models import RegistryData

    client, h = web
    _alert, cid = await _started(h)
    h.clock.advance(30)
    data = h.ctx.registry.data
    gone = sorted(await h.ctx.store.grids(cid))[0]
    officer = data.persons[data.grids[gone].primary]
    await h.app.engine.registry.apply(
        RegistryData(data.regions, {k: v for k, v in data.grids.items() if k != gone},
                     data.persons, data.devices),
        expected=0, by="root", source="test", year=None, summary="", diff=b"{}",
        validated=False)
    await sign_in(client, "alan")
    for path in (f"/console/campaigns/{cid}/chase", f"/console/campaigns/{cid}?town={TOWN}",
                 f"/console/campaigns/{cid}/grids/{gone}",
                 f"/console/campaigns/{cid}/grids/{gone}?part=panel"):
        r = await client.get(path, headers=HTML)
        assert r.status == 200, (path, r.status)
        if "grids" in path:
            text = _text(await r.text())
            assert f"{gone}（已从台账删除）" in text and officer.name in text
            assert "叫应中" in text
