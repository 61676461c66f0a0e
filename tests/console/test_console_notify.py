"""The approvers on duty get a WeCom message (a group robot's webhook) for each new alert and
each draft waiting for approval, once over every process, when the configuration asks for it.

A feed alert reached the desk only if someone had it open; nothing told an approver who was
away from it that a warning had come in or that a draft waited for them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer
from console_kit import console_client, red_form, sign_in

from tests.engine.helpers import Harness, cap_alert
from warnbus.flow.credentials import ENGINE, of_feed
from warnbus.flow.intake import accept
from warnbus.runtime.config import ConsoleConfig, FeedSettings, Secret
from warnbus.state import keys
from warnbus.web.console.notify import DutyNotifier

FEED = FeedSettings(name="qx-met", url="http://127.0.0.1:9/index.atom",
                    senders=("430623@qx.example.cn",))


class Robot:
    """A WeCom group robot: keeps what is posted to it, answers as WeCom does."""

    def __init__(self, errcode: int = 0) -> None:
        self.posts: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.errcode = errcode
        app = web.Application()
        app.router.add_post("/cgi-bin/webhook/send", self._send)
        self.server = TestServer(app, host="127.0.0.1")

    async def _send(self, request: web.Request) -> web.Response:
        assert request.query["key"] == "robot-key"
        await self.posts.put(await request.json())
        return web.json_response({"errcode": self.errcode, "errmsg": "ok"})

    def url(self) -> str:
        return str(self.server.make_url("/cgi-bin/webhook/send")) + "?key=robot-key"

    async def next(self) -> dict[str, Any]:
        async with asyncio.timeout(15):
            return await self.posts.get()


@pytest_asyncio.fixture
async def robot() -> AsyncIterator[Robot]:
    r = Robot()
    await r.server.start_server()
    yield r
    await r.server.close()


def _configure(url: str) -> Any:
    def configure(h: Harness) -> None:
        h.app.settings = msgspec.structs.replace(h.app.settings, console=ConsoleConfig(
            notify_webhook=Secret(url), notify_mention=("alan_wx", "ann_wx")))
    return configure


async def test_a_feed_alert_and_a_draft_reach_the_duty_group(redis_url: str, robot: Robot) -> None:
    async with console_client(redis_url, _configure(robot.url())) as (client, h):
        alert = cap_alert(codes=("430623101000",))
        cid = (await accept(h.ctx, alert, of_feed(FEED))).campaign_id
        post = await robot.next()  # the console's own poller, running beside the web app
        text = post["text"]["content"]
        assert post["msgtype"] == "text" and post["text"]["mentioned_list"] == ["alan_wx", "ann_wx"]
        info = alert.primary_info()
        assert info is not None
        assert f"【新预警·发布】红色{info.headline}" in text
        assert "来源：数据源 qx-met（自动接入）" in text
        assert f"/console/campaigns/{cid}" in text
        # A drafter submits a red alert: it waits for an approver, who is told.
        s = await sign_in(client, "dora")
        r = await client.post("/console/compose", data=red_form(s.csrf), allow_redirects=False)
        assert r.status == 303
        text = (await robot.next())["text"]["content"]
        assert "【待审批·新预警】红色华容县应急管理局发布暴雨红色预警" in text
        assert "起草：dora" in text
        assert "/console/drafts/df_" in text
        # Another process's notifier sends none of them again.
        other = DutyNotifier(h.ctx, robot.url(), (), "http://desk", h.clock.now())
        try:
            assert await other.poll_once() == 0
        finally:
            await other.aclose()
        assert robot.posts.empty()


async def test_only_what_came_after_the_start_and_a_refusal_is_survived(
        redis_url: str, robot: Robot) -> None:
    async with console_client(redis_url) as (_client, h):  # no webhook: no poller
        await accept(h.ctx, cap_alert(codes=("430623101000",)), ENGINE)
        h.clock.advance(600)  # the process (re)starts ten minutes later
        late = DutyNotifier(h.ctx, robot.url(), (), "http://desk", h.clock.now())
        try:
            assert await late.poll_once() == 0  # the day's alerts are not repeated
            assert not await h.ctx.redis.keys(keys.console_notified("*"))
            robot.errcode = 93000  # WeCom: invalid webhook key
            await accept(h.ctx, cap_alert("43062304100000_20260715134000_2",
                                          codes=("430623102000",)), ENGINE)
            assert await late.poll_once() == 0  # refused: logged, the desk goes on
            assert (await robot.next())["msgtype"] == "text"
            assert await late.poll_once() == 0  # and not retried over and over
        finally:
            await late.aclose()
