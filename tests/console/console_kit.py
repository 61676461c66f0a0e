"""Shared by the console tests: an engine harness with the console mounted, users, sign-in."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import aiohttp
from aiohttp.test_utils import TestClient

from tests.engine.helpers import Harness, make_harness, web_client
from warnbus.web.console.auth import Users

PASSWORD = "correct-horse-battery"
#: user name -> roles. `both` may draft and approve, but never approve their own draft.
USERS = {
    "dora": ("drafter",),
    "alan": ("approver",),
    "anna": ("approver",),
    "both": ("drafter", "approver"),
    "root": ("admin",),
}
_CSRF = re.compile(r'name="_csrf" value="([^"]+)"')
_META = re.compile(r'<meta name="csrf" content="([^"]*)"')


@contextlib.asynccontextmanager
async def console_client(
    redis_url: str, configure: Callable[[Harness], None] | None = None
) -> AsyncIterator[tuple[TestClient, Harness]]:  # type: ignore[type-arg]
    """The API with the console on a fresh harness, with the test users; `configure` first."""
    h = await make_harness(redis_url)
    if configure is not None:
        configure(h)
    await add_users(h)
    async with web_client(h) as client:
        yield client, h


@dataclass
class Signed:
    client: TestClient  # type: ignore[type-arg]
    csrf: str


async def add_users(h: Harness) -> None:
    users = Users(h.ctx.redis)
    for name, roles in USERS.items():
        await users.create(name, name.title(), roles, PASSWORD)


async def sign_in(client: TestClient, user: str, password: str = PASSWORD) -> Signed:  # type: ignore[type-arg]
    """Sign in on `client` (dropping any earlier session); return the session's CSRF token."""
    client.session.cookie_jar.clear()
    return Signed(client, await open_session(client, user, password))


async def open_session(http: aiohttp.ClientSession | TestClient, user: str,  # type: ignore[type-arg]
                       password: str = PASSWORD) -> str:
    """Sign in through the form on `http` (its cookie jar keeps the session); the session's
    CSRF token."""
    status, text = await attempt(http, user, password, await login_token(http))
    assert status == 303, text
    r = await http.get("/console/", headers={"Accept": "text/html"})
    m = _META.search(await r.text())
    assert r.status == 200 and m and m.group(1)
    return m.group(1)


async def campaigns(h: Harness) -> list[str]:
    """The campaign ids, oldest first."""
    return [x.decode() for x in await h.ctx.redis.zrange("wb:campaigns", 0, -1)]


def red_form(csrf: str, level: str = "red", **extra: str) -> dict[str, str]:
    data = {"_csrf": csrf, "kind": "alert", "hazard": "rainstorm", "level": level,
            "status": "Actual", "headline": "华容县应急管理局发布暴雨红色预警",
            "description": "预计未来3小时降雨量将达100毫米以上。",
            "instruction": "危险区域人员立即转移。",
            "effective": "2026-07-15T13:30", "expires": "2026-07-15T19:30",
            "area": "430623101000", "confirmed": "1"}
    data.update(extra)
    return data


@contextlib.asynccontextmanager
async def from_address(client: TestClient, address: str) -> AsyncIterator[aiohttp.ClientSession]:  # type: ignore[type-arg]
    """A browser on another loopback address (127.0.0.2, ...): the server sees it as the
    client's address, as it would see another machine."""
    server = client.server
    connector = aiohttp.TCPConnector(local_addr=(address, 0))
    async with aiohttp.ClientSession(f"http://{server.host}:{server.port}", connector=connector,
                                     cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


async def login_token(http: aiohttp.ClientSession | TestClient) -> str:  # type: ignore[type-arg]
    """The sign-in form's double-submit token (its cookie stays in `http`'s jar)."""
    r = await http.get("/console/login")
    token = _CSRF.search(await r.text())
    assert token, "the sign-in form carries a CSRF token"
    return token.group(1)


async def attempt(http: aiohttp.ClientSession | TestClient, user: str, password: str,  # type: ignore[type-arg]
                  token: str) -> tuple[int, str]:
    """One sign-in attempt: the status (303 signed in) and the page's text."""
    r = await http.post("/console/login", data={"_csrf": token, "username": user,
                                                "password": password, "next": "/console/"},
                        allow_redirects=False)
    return r.status, await r.text()
