"""Authorisation of the console: every route checks sign-in and role; CSRF on every POST."""

from __future__ import annotations

import pytest
from console_kit import PASSWORD, USERS, red_form, sign_in

from tests.engine.helpers import cap_alert
from warnbus.flow.credentials import ENGINE
from warnbus.flow.intake import accept
from warnbus.web.console import ROUTES, ensure_admin
from warnbus.web.console.auth import Users
from warnbus.web.console.passwords import check_password, hash_password


def _path(path: str, cid: str) -> str:
    return "/console" + path.format(cid=cid, id="df_0000", name="dora", gid="g_0000")


async def test_every_route_refuses_the_wrong_role_and_the_anonymous(web) -> None:  # type: ignore[no-untyped-def]
    client, h = web
    cid = (await accept(h.ctx, cap_alert(), ENGINE)).campaign_id
    await h.drain()
    checked = 0
    for user, roles in USERS.items():
        signed = await sign_in(client, user)
        for method, path, handler in ROUTES:
            need = handler.roles  # type: ignore[attr-defined]
            if not need or set(need) & set(roles):
                continue
            data = {"_csrf": signed.csrf}
            r = await client.request(method, _path(path, cid), data=data if method == "POST"
                                     else None, allow_redirects=False)
            assert r.status == 403, f"{user} {method} {path}: {r.status}"
            checked += 1
    assert checked > 20
    client.session.cookie_jar.clear()
    for method, path, _handler in ROUTES:
        r = await client.request(method, _path(path, cid), allow_redirects=False)
        assert r.status == 401, f"anonymous {method} {path}: {r.status}"
        r = await client.get(_path(path, cid), headers={"Accept": "text/html"},
                             allow_redirects=False)
        if method == "GET":
            assert r.status == 302 and "/console/login" in r.headers["Location"]


async def test_post_without_or_with_a_wrong_csrf_token_is_403(web) -> None:  # type: ignore[no-untyped-def]
    client, h = web
    signed = await sign_in(client, "dora")
    form = red_form(signed.csrf, level="yellow")
    for bad in (None, "forged", ""):
        data = dict(form)
        data.pop("_csrf")
        if bad is not None:
            data["_csrf"] = bad
        r = await client.post("/console/compose", data=data, allow_redirects=False)
        assert r.status == 403
    assert not await h.ctx.redis.zcard("wb:campaigns")
    r = await client.post("/console/compose/preview", data=form, headers={
        "X-CSRF-Token": "nope"})
    assert r.status == 403
    # A token of another session does not work either.
    other = await sign_in(client, "both")
    await sign_in(client, "dora")
    r = await client.post("/console/compose", data=red_form(other.csrf, level="yellow"),
                          allow_redirects=False)
    assert r.status == 403


async def test_sign_in_cookie_flags_wrong_password_and_lock_out(web) -> None:  # type: ignore[no-untyped-def]
    client, _h = web
    r = await client.get("/console/login")
    text = await r.text()
    token = text.split('name="_csrf" value="')[1].split('"')[0]
    r = await client.post("/console/login", data={"_csrf": token, "username": "dora",
                                                  "password": "wrong"})
    assert r.status == 401 and "用户名或密码错误" in await r.text()
    r = await client.post("/console/login", data={"_csrf": "x", "username": "dora",
                                                  "password": PASSWORD})
    assert r.status == 403  # the sign-in form has its own CSRF token (double submit)
    r = await client.get("/console/login")
    token = (await r.text()).split('name="_csrf" value="')[1].split('"')[0]
    r = await client.post("/console/login", data={
        "_csrf": token, "username": "dora", "password": PASSWORD, "next": "https://evil.example/"},
        allow_redirects=False)
    assert r.status == 303 and r.headers["Location"] == "/console/"  # no open redirect
    cookie = r.headers["Set-Cookie"] if "wb_console" in r.headers["Set-Cookie"] else ""
    for c in r.headers.getall("Set-Cookie"):
        if c.startswith("wb_console="):
            cookie = c
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/console" in cookie
    r = await client.get("/console/login")
    token = (await r.text()).split('name="_csrf" value="')[1].split('"')[0]
    for _ in range(3):
        r = await client.post("/console/login", data={"_csrf": token, "username": "anna",
                                                      "password": "guess"})
        assert r.status == 401
    r = await client.post("/console/login", data={"_csrf": token, "username": "anna",
                                                  "password": PASSWORD})
    # Held back for a while, even with the right password; the page says how long.
    assert r.status == 429 and "尝试过于频繁，2 秒后再试" in await r.text()


async def test_sign_out_ends_the_session(web) -> None:  # type: ignore[no-untyped-def]
    client, _h = web
    signed = await sign_in(client, "dora")
    sid = next(c for c in client.session.cookie_jar if c.key == "wb_console").value
    r = await client.post("/console/logout", data={"_csrf": signed.csrf}, allow_redirects=False)
    assert r.status == 303
    client.session.cookie_jar.update_cookies({"wb_console": sid})
    r = await client.get("/console/")
    assert r.status == 401


async def test_root_redirects_to_the_console(web) -> None:  # type: ignore[no-untyped-def]
    client, _h = web
    r = await client.get("/", allow_redirects=False)
    assert r.status == 302 and r.headers["Location"] == "/console/"


async def test_passwords_are_scrypt_hashes_and_admin_bootstrap(redis) -> None:  # type: ignore[no-untyped-def]
    stored = hash_password("s3cret-password")
    assert stored.startswith("scrypt$") and "s3cret" not in stored
    assert check_password("s3cret-password", stored)
    assert not check_password("s3cret-passworD", stored)
    assert not check_password("x", "garbage")
    generated = await ensure_admin(redis)
    assert generated and len(generated) >= 12
    assert await ensure_admin(redis) is None  # printed once: an existing admin is left alone
    admin = await Users(redis).verify("admin", generated)
    assert admin is not None and admin.has("admin")
    await redis.flushall()
    assert await ensure_admin(redis, "from-the-environment") is None
    assert await Users(redis).verify("admin", "from-the-environment") is not None


@pytest.mark.parametrize("user", ["dora", "alan"])
async def test_admin_pages_are_for_admins(web, user: str) -> None:  # type: ignore[no-untyped-def]
    client, _h = web
    await sign_in(client, user)
    r = await client.get("/console/admin", headers={"Accept": "text/html"})
    assert r.status == 403 and "需要管理权限" in await r.text()
