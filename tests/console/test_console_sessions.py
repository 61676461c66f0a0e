"""Sessions end for good on a password reset, a disable and a sign-out (every session of the
user, their live boards within seconds); live boards are capped per session and in total."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest_asyncio
from aiohttp.test_utils import TestClient
from console_kit import PASSWORD, attempt, console_client, from_address, login_token, sign_in

from tests.engine.helpers import Harness, cap_alert
from warnbus.flow.credentials import ENGINE
from warnbus.flow.intake import accept
from warnbus.web.console.base import CONSOLE, Console, ConsoleSettings
from warnbus.web.console.streams import StreamSlots

_META = re.compile(r'<meta name="csrf" content="([^"]*)"')
NEW_PASSWORD = "another-long-password"


@pytest_asyncio.fixture
async def web(redis_url: str) -> AsyncIterator[tuple[TestClient, Harness, str]]:  # type: ignore[type-arg]
    async with console_client(redis_url) as (client, h):
        con: Console = client.server.app[CONSOLE]
        await con.save_settings(ConsoleSettings(sse_interval_s=0.2))
        cid = (await accept(h.ctx, cap_alert(), ENGINE)).campaign_id
        await h.drain()
        yield client, h, cid


async def _signed(http: aiohttp.ClientSession, user: str, password: str = PASSWORD) -> str:
    status, text = await attempt(http, user, password, await login_token(http))
    assert status == 303, text
    r = await http.get("/console/", headers={"Accept": "text/html"})
    m = _META.search(await r.text())
    assert r.status == 200 and m
    return m.group(1)


async def _open_board(http: Any, cid: str) -> aiohttp.ClientResponse:
    r = await http.get(f"/console/campaigns/{cid}/events")
    assert r.status == 200, await r.text()
    assert (await asyncio.wait_for(r.content.readline(), 5)).startswith(b"event: state")
    return r


async def _ends(stream: aiohttp.ClientResponse, within: float = 5.0) -> bytes:
    """The rest of a live stream, which must end by itself within `within` seconds."""
    rest = await asyncio.wait_for(stream.content.read(), within)
    assert b"event: end" in rest and "请重新登录".encode() in rest
    return rest


async def _reset(client: TestClient, name: str, **fields: str) -> None:  # type: ignore[type-arg]
    s = await sign_in(client, "root")
    roles = {"dora": "drafter"}[name]
    r = await client.post(f"/console/admin/users/{name}", data={
        "_csrf": s.csrf, "role": roles, **fields}, allow_redirects=False)
    assert r.status == 303


async def _status(http: Any) -> int:
    return (await http.get("/console/")).status


async def test_a_password_reset_ends_every_session_and_its_live_board(web) -> None:  # type: ignore[no-untyped-def]
    client, _h, cid = web
    async with from_address(client, "127.0.0.2") as phone, \
            from_address(client, "127.0.0.3") as desk:
        await _signed(phone, "dora")
        await _signed(desk, "dora")
        board = await _open_board(desk, cid)
        await _reset(client, "dora", password=NEW_PASSWORD)
        await _ends(board)
        assert await _status(phone) == 401 and await _status(desk) == 401
        assert (await attempt(desk, "dora", PASSWORD, await login_token(desk)))[0] == 401
        await _signed(desk, "dora", NEW_PASSWORD)
        assert await _status(desk) == 200


async def test_a_disable_ends_every_session_and_enabling_does_not_revive_them(web) -> None:  # type: ignore[no-untyped-def]
    client, _h, cid = web
    async with from_address(client, "127.0.0.2") as desk:
        await _signed(desk, "dora")
        board = await _open_board(desk, cid)
        await _reset(client, "dora", disabled="1")
        await _ends(board)
        assert await _status(desk) == 401
        assert (await attempt(desk, "dora", PASSWORD, await login_token(desk)))[0] == 401
        await _reset(client, "dora")  # enabled again: the old cookie stays dead
        desk.cookie_jar.clear()
        await _signed(desk, "dora")
        assert await _status(desk) == 200


async def test_a_sign_out_ends_every_session_of_the_user_and_their_live_boards(web) -> None:  # type: ignore[no-untyped-def]
    client, _h, cid = web
    async with from_address(client, "127.0.0.2") as phone, \
            from_address(client, "127.0.0.3") as desk:
        csrf = await _signed(phone, "dora")
        await _signed(desk, "dora")
        board = await _open_board(desk, cid)
        r = await phone.post("/console/logout", data={"_csrf": csrf}, allow_redirects=False)
        assert r.status == 303
        await _ends(board)
        assert await _status(desk) == 401 and await _status(phone) == 401
        # Another user's session is untouched.
        await sign_in(client, "alan")
        assert await _status(client) == 200


async def test_live_boards_are_capped_per_session_per_user_and_in_total(web) -> None:  # type: ignore[no-untyped-def]
    client, _h, cid = web
    con: Console = client.server.app[CONSOLE]
    con.streams = StreamSlots(per_session=2, per_user=3, total=4)
    async with from_address(client, "127.0.0.2") as one, \
            from_address(client, "127.0.0.3") as again, \
            from_address(client, "127.0.0.4") as alan:
        await _signed(one, "dora")
        await _signed(again, "dora")  # the same user signed in a second time
        await _signed(alan, "alan")
        boards = [await _open_board(one, cid), await _open_board(one, cid)]
        r = await one.get(f"/console/campaigns/{cid}/events")
        message = (await r.json())["error"]["message"]
        assert r.status == 429 and r.headers["Retry-After"]
        assert "本次登录已打开2个实时看板" in message and "上限" in message
        boards.append(await _open_board(again, cid))
        r = await again.get(f"/console/campaigns/{cid}/events")
        assert r.status == 429 and "该账户已打开3个实时看板" in (await r.json())["error"]["message"]
        boards.append(await _open_board(alan, cid))
        r = await alan.get(f"/console/campaigns/{cid}/events")
        assert r.status == 503 and "实时看板连接已满" in (await r.json())["error"]["message"]
        assert con.streams.open == 4
        boards[0].close()  # a board closed frees its place
        for _ in range(100):
            if con.streams.open < 4:
                break
            await asyncio.sleep(0.05)
        boards.append(await _open_board(alan, cid))
        for b in boards[1:]:
            b.close()
