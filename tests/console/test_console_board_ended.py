"""A board that is over says so: after a Cancel (解除), or past the alert's expiry, nobody is
called any more, and nothing on the board, the grid pages, the desk or the record says
calling is going on.

A lifted board showed its open grids with their last calling colour (已升级, 未送达 ...) and
listed them as pending; an expired one (the engine leaves its grids as they stood) showed
persons 叫应中 and grids 叫应中, and the desk counted them as calling. The header's version
(the snapshot's `head`) follows everything the header shows and nothing else.
"""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import unquote

from console_kit import sign_in

from tests.engine.helpers import T0, cap_alert
from warnbus.domain.models import AckVia, MsgType, Reference, Severity
from warnbus.flow.acks import record_ack
from warnbus.flow.credentials import ENGINE
from warnbus.flow.intake import accept
from warnbus.web.console.board import CALLING, snapshot

HTML = {"Accept": "text/html"}
TOWNS = ("430623101000", "430623102000")
#: Words that say somebody is being called, or waits to be.
CALLING_WORDS = ("叫应中", "下一步", "未送达", "已发送", "已送达", "入户中", "尚未呼叫",
                 "起叫，已")


def _text(html_: str) -> str:
    return re.sub(r"<[^>]+>", "", html_)


async def _started(h, hours: int = 12):  # type: ignore[no-untyped-def]
    alert = cap_alert(codes=TOWNS, hours=hours)
    cid = (await accept(h.ctx, alert, ENGINE)).campaign_id
    await h.drain()
    return alert, cid


def _nobody_called(snap: dict) -> None:  # type: ignore[type-arg]
    c = snap["counts"]
    assert c.get("p_pending", 0) == 0 and c.get("p_escalated", 0) == 0, c
    assert c["g_calling"] == 0 and c.get("site_calling", 0) == 0, c
    assert c.get("g_escalated", 0) == 0 and c.get("g_door", 0) == 0, c
    assert not [g for g, st in snap["grids"].items() if st in (*CALLING, "escalated", "door")]
    # The parts still add up to the totals (grids, then persons).
    grid_parts = ("confirmed", "taken_over", "escalated", "unreached", "door", "visited",
                  "stopped", "ended", "closed", "calling")
    assert sum(c.get(f"g_{k}", 0) for k in grid_parts) == c["g_total"], c
    person_parts = ("pending", "confirmed", "escalated", "unreached", "closed")
    assert sum(c.get(f"p_{k}", 0) for k in person_parts) == c["p_total"], c


async def _board_says_nobody_is_called(client, h, cid: str, state: str) -> str:  # type: ignore[no-untyped-def]
    """Check the pending list, the board and a grid's page; the grid page's text."""
    r = await client.get(f"/console/campaigns/{cid}/chase")
    chase = await r.text()
    assert r.headers["X-Waiting"] == "0" and 'class="chase' not in chase, chase
    assert f"该预警{state}，叫应已结束" in chase, chase
    page = await (await client.get(f"/console/campaigns/{cid}", headers=HTML)).text()
    assert f'<span id="cstate">{state}</span>' in page
    assert 'id="ended"' in page and f"该预警{state}" in _text(page)
    for button in ("cancel-btn", "stop-btn"):  # nothing to lift or stop any more
        assert f'id="{button}"' not in page
    # A grid nobody confirmed, on its own page: closed, its people not called.
    grid = next(g for g, st in (await snapshot(h.ctx, cid))["grids"].items() if st == "ended")
    raw = await (await client.get(f"/console/campaigns/{cid}/grids/{grid}", headers=HTML)).text()
    assert "安排入户</button>" not in raw  # nobody is sent door to door any more
    text = _text(raw)
    assert "未确认·已结束" in text
    for word in CALLING_WORDS:
        assert word not in text.split("呼叫记录")[0], (word, text)
    return text


async def test_a_lifted_board_calls_nobody(web) -> None:  # type: ignore[no-untyped-def]
    client, h = web
    alert, cid = await _started(h)
    live = await h.ctx.store.board.live(cid)
    first = sorted(live.grids)[0]
    officer = live.grids[first].holder
    await record_ack(h.ctx, cid, officer, AckVia.CONSOLE, by="alan", reason="电话回拨")
    h.clock.advance(500)  # past the redials to the backups: grids escalated
    await h.drain()
    before = await snapshot(h.ctx, cid)
    assert before["counts"]["g_escalated"] > 0 and before["counts"]["p_pending"] > 0
    # A grid visited door to door: its result is in the record as the board says it.
    s = await sign_in(client, "both")
    visited = next(g for g, st in before["grids"].items() if st == "escalated")
    for path, data in (("door", {}), ("door/result", {"outcome": "told", "note": "已告知转移"})):
        r = await client.post(f"/console/campaigns/{cid}/{path}", allow_redirects=False,
                              data={"_csrf": s.csrf, "grid": visited, **data})
        assert r.status == 303, path
    cancel = cap_alert("43062304100000_20260715053000_2", msg_type=MsgType.CANCEL, codes=TOWNS,
                       sent=T0 + timedelta(minutes=9),
                       references=(Reference(alert.sender, alert.identifier, "x"),))
    await accept(h.ctx, cancel, ENGINE)
    await h.drain()
    snap = await snapshot(h.ctx, cid)
    _nobody_called(snap)
    assert snap["grids"][first] == "confirmed"  # what was confirmed stays confirmed
    assert snap["counts"]["g_ended"] == snap["counts"]["g_total"] - 2  # confirmed, visited
    assert snap["counts"]["p_confirmed"] == 1
    assert snap["head"] != before["head"]
    assert snap["grids"][visited] == "visited"
    await _board_says_nobody_is_called(client, h, cid, "已解除")
    printed = _text(await (await client.get(f"/console/campaigns/{cid}/print",
                                            headers=HTML)).text())
    assert "已当面告知：已告知转移" in printed and "待反馈" not in printed, printed


async def test_an_expired_board_calls_nobody_even_before_the_expiry_is_recorded(web) -> None:  # type: ignore[no-untyped-def]
    client, h = web
    _alert, cid = await _started(h, hours=1)
    h.clock.advance(400)  # redials going on
    await h.drain()
    running = await snapshot(h.ctx, cid)
    assert running["counts"]["p_pending"] > 0
    s = await sign_in(client, "both")
    # Somebody is sent door to door for a grid: 入户中 while the warning runs.
    door = sorted(running["grids"])[0]
    r = await client.post(f"/console/campaigns/{cid}/door", allow_redirects=False,
                          data={"_csrf": s.csrf, "grid": door})
    assert r.status == 303 and "msg=已通知" in unquote(r.headers["Location"])
    assert (await snapshot(h.ctx, cid))["grids"][door] == "door"
    printed = _text(await (await client.get(f"/console/campaigns/{cid}/print",
                                            headers=HTML)).text())
    assert "待反馈" in printed  # the warning runs: its result may still come
    desk = _text(await (await client.get("/console/", headers=HTML)).text())
    assert "叫应中 0" not in desk
    h.clock.advance(3600)  # past the expiry; the expiry timer has not run yet
    meta = await h.ctx.store.meta(cid)
    assert meta is not None and meta.state == "active"
    snap = await snapshot(h.ctx, cid)
    _nobody_called(snap)
    assert snap["over"] and snap["head"] != running["head"]
    assert snap["grids"][door] == "ended"  # nobody goes door to door for it any more
    # An action that came too late says why in the same words (not 该预警进行中).
    for path, data, said in (("door", {"grid": sorted(snap["grids"])[1]}, "未安排入户叫应"),
                             ("stop", {"reason": "雨停"}, "无需停止叫应")):
        r = await client.post(f"/console/campaigns/{cid}/{path}", allow_redirects=False,
                              data={"_csrf": s.csrf, **data})
        assert unquote(r.headers["Location"]).endswith(f"msg=该预警已过期，{said}"), path
    grid = await _board_says_nobody_is_called(client, h, cid, "已过期")
    assert "（备岗网格员）" in grid and "未呼叫" in grid  # and never will be
    desk = _text(await (await client.get("/console/", headers=HTML)).text())
    assert "叫应中 0" in desk and "已过期" in desk, desk
    total = snap["counts"]["g_total"]
    assert f"网格 {total}/{total} 已结束" in desk, desk
    printed = _text(await (await client.get(f"/console/campaigns/{cid}/print",
                                            headers=HTML)).text())
    assert "状态已过期" in printed.replace(" ", "").replace("\n", "")
    assert "未反馈（预警已结束）" in printed and "待反馈" not in printed
    await h.drain()  # the expiry timer: recorded, the board says the same
    _nobody_called(await snapshot(h.ctx, cid))
    await _board_says_nobody_is_called(client, h, cid, "已过期")


async def test_the_header_version_follows_the_header_only(web) -> None:  # type: ignore[no-untyped-def]
    client, h = web
    alert, cid = await _started(h)
    v0 = (await snapshot(h.ctx, cid))["head"]
    officer = (await h.ctx.store.board.live(cid)).grids[
        sorted((await h.ctx.store.board.live(cid)).grids)[0]].holder
    await record_ack(h.ctx, cid, officer, AckVia.CONSOLE, by="alan", reason="电话回拨")
    h.clock.advance(60)
    await h.drain()
    assert (await snapshot(h.ctx, cid))["head"] == v0  # counts changed, the header did not
    update = cap_alert("43062304100000_20260715054000_2", msg_type=MsgType.UPDATE,
                       codes=TOWNS[:1], sent=T0 + timedelta(minutes=2),
                       severity=Severity.SEVERE, level_zh="橙色",
                       references=(Reference(alert.sender, alert.identifier, "x"),))
    await accept(h.ctx, update, ENGINE)
    await h.drain()
    v1 = (await snapshot(h.ctx, cid))["head"]
    assert v1 != v0
    await sign_in(client, "both")
    r = await client.get(f"/console/campaigns/{cid}/head")
    assert r.status == 200 and r.headers["Cache-Control"] == "no-store"  # it has the CSRF
    head = await r.json()
    assert "lv-orange" in head["head"] and "lv-red" not in head["head"], head["head"]
    assert "橙色预警" in head["alert"] and "更新" in head["history"]
    assert "当前内容" in head["history"] and "已被更新取代" in head["history"]
    assert 'id="cancel-btn"' in head["tools"] and 'id="stop-btn"' in head["tools"]
    page = await (await client.get(f"/console/campaigns/{cid}", headers=HTML)).text()
    assert f'data-head="{v1}"' in page
    # A stop of the calling is in the header too (its banner, no stop button).
    s = await sign_in(client, "both")
    r = await client.post(f"/console/campaigns/{cid}/stop", allow_redirects=False,
                          data={"_csrf": s.csrf, "reason": "雨停"})
    assert r.status == 303
    assert (await snapshot(h.ctx, cid))["head"] != v1
    head = await (await client.get(f"/console/campaigns/{cid}/head")).json()
    assert 'id="stopped"' in head["head"] and 'id="stop-btn"' not in head["tools"]


async def test_the_sites_of_a_warning_that_is_over_are_called_no_more(web) -> None:  # type: ignore[no-untyped-def]
    from test_console_sites_counted_apart import geological

    _client, h = web
    cid = (await accept(h.ctx, geological(), ENGINE)).campaign_id
    await h.drain()
    running = (await snapshot(h.ctx, cid))["counts"]
    assert running["site_total"] > 0 and running["site_calling"] == running["site_total"]
    h.clock.advance(13 * 3600)  # past the expiry (12 hours), its timer not yet run
    snap = await snapshot(h.ctx, cid)
    _nobody_called(snap)
    c = snap["counts"]
    assert c["site_ended"] == c["site_total"] and c["g_ended"] == c["g_total"], c
