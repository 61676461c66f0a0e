"""The desk (home page): live campaigns with their progress and source, refreshed by a
bounded stream that also announces each new message and each draft waiting for approval.

Feed alerts arrived silently: the home page was a static list, nothing said a new warning
had come in, and nothing said where one came from.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from console_kit import red_form, sign_in

from tests.engine.helpers import cap_alert
from warnbus.domain.models import MsgType, Reference
from warnbus.flow.credentials import ENGINE, of_feed
from warnbus.flow.intake import accept
from warnbus.runtime.config import FeedSettings
from warnbus.web.console.base import CONSOLE, ConsoleSettings

FEED = FeedSettings(name="qx-met", url="http://127.0.0.1:9/index.atom",
                    senders=("430623@qx.example.cn",))
HTML = {"Accept": "text/html"}


class Events:
    """The events of one open stream, read as they come."""

    def __init__(self, resp: Any) -> None:
        self.resp = resp

    async def next(self, want: str = "desk") -> dict[str, Any]:
        async with asyncio.timeout(10):
            name = ""
            while True:
                raw = await self.resp.content.readline()
                assert raw, "the stream ended"  # (readline at the end returns at once)
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: ") and name == want:
                    data: dict[str, Any] = json.loads(line[6:])
                    return data

    async def until(self, ok: Any, want: str = "desk") -> dict[str, Any]:
        while True:
            got = await self.next(want)
            if ok(got):
                return got


async def test_the_desk_lists_live_campaigns_with_progress_and_source(web) -> None:  # type: ignore[no-untyped-def]
    client, h = web
    feed = cap_alert(codes=("430623101000",))
    cid = (await accept(h.ctx, feed, of_feed(FEED))).campaign_id
    ended = cap_alert("43062304100000_20260715053000_9", codes=("430623102000",))
    gone = (await accept(h.ctx, ended, ENGINE)).campaign_id
    await h.drain()
    await accept(h.ctx, cap_alert("43062304100000_20260715053000_10", msg_type=MsgType.CANCEL,
                                  codes=("430623102000",),
                                  references=(Reference(ended.sender, ended.identifier, "x"),)),
                 ENGINE)
    await h.drain()
    persons = len((await h.ctx.store.board.live(cid)).holds)
    await sign_in(client, "alan")
    page = await (await client.get("/console/", headers=HTML)).text()
    live = page.split('id="live"')[1].split("</div></a></div>")[0]
    assert f'data-cid="{cid}"' in live and f'data-cid="{gone}"' not in live
    assert "数据源 qx-met（自动接入）" in live
    assert f"叫应对象 <b>0</b>/{persons} 人已确认" in live
    assert 'id="notices"' in page and 'id="sound-btn"' in page


async def test_the_stream_announces_new_alerts_and_drafts_to_approvers(web) -> None:  # type: ignore[no-untyped-def]
    client, h = web
    await client.server.app[CONSOLE].save_settings(ConsoleSettings(sse_interval_s=0.1))
    s = await sign_in(client, "alan")
    async with client.get("/console/events") as resp:
        assert resp.status == 200 and resp.content_type == "text/event-stream"
        events = Events(resp)
        first = await events.next()
        assert first["desk"] == {"msgs": [], "drafts": []}
        assert "当前没有进行中的预警" in first["live"]
        alert = cap_alert(codes=("430623101000",))
        cid = (await accept(h.ctx, alert, of_feed(FEED))).campaign_id
        got = await events.until(lambda d: d["desk"]["msgs"])
        (msg,) = got["desk"]["msgs"]
        assert (msg["id"], msg["cid"], msg["type"]) == (alert.alert_id, cid, "Alert")
        assert msg["source"] == "数据源 qx-met（自动接入）" and msg["level"] == "red"
        assert msg["headline"] == "华容县气象台发布暴雨红色预警信号"
        await h.drain()
        got = await events.until(lambda d: f'data-cid="{cid}"' in d["live"])
        # A draft waiting for approval: an approver is told (alan's stream stays open while
        # dora signs in on the same client).
        dora = await sign_in(client, "dora")
        r = await client.post("/console/compose", data=red_form(dora.csrf), allow_redirects=False)
        assert r.status == 303
        got = await events.until(lambda d: d["desk"]["drafts"])
        assert got["desk"]["drafts"][0]["by"] == "dora"
        assert "华容县应急管理局发布暴雨红色预警" in got["drafts"]
    assert s.csrf
    # A drafter sees the list of drafts, but no notice: approving is not theirs.
    async with client.get("/console/events") as resp:
        got = await Events(resp).next()
        assert got["desk"]["drafts"] == [] and "华容县应急管理局发布暴雨红色预警" in got["drafts"]


async def test_open_pages_look_at_redis_once_a_turn_between_them(web) -> None:  # type: ignore[no-untyped-def]
    """Four desks and four boards open (a session's most): the newest messages and the
    board's grids are read once a turn for all of them, not once per page."""
    client, h = web
    interval = 0.2
    await client.server.app[CONSOLE].save_settings(ConsoleSettings(sse_interval_s=interval))
    cid = (await accept(h.ctx, cap_alert(codes=("430623101000",)), ENGINE)).campaign_id
    await h.drain()
    await sign_in(client, "alan")
    async with contextlib.AsyncExitStack() as stack:
        for path, want in (("/console/events", "desk"),
                           (f"/console/campaigns/{cid}/events", "state")) * 4:
            resp = await stack.enter_async_context(client.get(path))
            assert resp.status == 200
            await Events(resp).next(want)  # each page is running
        await h.ctx.redis.config_resetstat()
        await asyncio.sleep(10 * interval)  # a rate: ten turns of every page
        stats = await h.ctx.redis.info("commandstats")
    looks = stats.get("cmdstat_zrevrange", {}).get("calls", 0)  # the newest messages
    grids = stats.get("cmdstat_hgetall", {}).get("calls", 0)  # a board's grids (and more)
    # Each page's own look: ~160 and ~350 (measured). Shared: at most two computations a
    # turn (pages ask at their own moments around the end of a turn).
    assert 0 < looks <= 3 * 10, looks
    assert 0 < grids <= 2 * 10 * 6, grids  # a board's turn reads ~5 hashes, once for all


async def test_a_stream_opened_after_an_action_never_sends_the_state_before_it(web) -> None:  # type: ignore[no-untyped-def]
    """A page served after a stop opened its stream while another stream's snapshot, taken
    before the stop, was still kept for the turn: the fresh page's counts went back to 91
    people calling until the next turn (a CI run of the browser test caught it)."""
    client, h = web
    # One look per minute at most: a kept snapshot would be sent for the whole minute.
    await client.server.app[CONSOLE].save_settings(ConsoleSettings(sse_interval_s=60))
    cid = (await accept(h.ctx, cap_alert(codes=("430623101000",)), ENGINE)).campaign_id
    await h.drain()
    s = await sign_in(client, "alan")
    board = f"/console/campaigns/{cid}/events"
    async with client.get(board) as resp:
        before = await Events(resp).next("state")
    async with client.get("/console/events") as resp:
        assert "已停止叫应" not in (await Events(resp).next())["live"]
    assert before["counts"]["p_pending"] > 0
    r = await client.post(f"/console/campaigns/{cid}/stop", allow_redirects=False,
                          data={"_csrf": s.csrf, "reason": "误报"})
    assert r.status == 303
    async with client.get(board) as resp:
        after = await Events(resp).next("state")
    assert after["counts"].get("p_pending", 0) == 0 and after["counts"]["g_calling"] == 0
    async with client.get("/console/events") as resp:
        assert "已停止叫应" in (await Events(resp).next())["live"]
