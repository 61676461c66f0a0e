"""Sign-in that cannot be abused: throttled per address and per account and address, never a
lock a stranger can put on an approver, locks visible and lifted by an admin, bounded state.

Other machines are other loopback addresses (127.0.0.x): the server sees each as a client.
"""

from __future__ import annotations

import asyncio
import secrets
from http.cookies import SimpleCookie

from aiohttp.test_utils import TestClient
from console_kit import PASSWORD, attempt, from_address, login_token, sign_in
from yarl import URL

from tests.engine.helpers import Harness
from tests.timing import worst_lag
from warnbus.state import keys
from warnbus.web.console.base import CONSOLE, Console
from warnbus.web.console.passwords import HasherBusy, PasswordHasher
from warnbus.web.console.throttle import Backoff, SignInGuard, SignInLimits, client_address

ATTACKER, APPROVER, OTHER = "127.0.0.2", "127.0.0.3", "127.0.0.4"
NO_LIMIT = Backoff(free=10**9, base_s=1, cap_s=1)


def _con(client: TestClient) -> Console:  # type: ignore[type-arg]
    return client.server.app[CONSOLE]


async def _fails(h: Harness) -> dict[str, str]:
    raw = await h.ctx.redis.hgetall(keys.CONSOLE_LOGIN_FAILS)
    return {k.decode(): v.decode() for k, v in raw.items() if k != b"~"}


async def test_a_flood_from_one_address_is_throttled_the_approver_signs_in_from_another(  # type: ignore[no-untyped-def]
        web) -> None:
    client, _h = web
    async with from_address(client, ATTACKER) as bad, from_address(client, APPROVER) as good:
        token = await login_token(bad)
        names = ["alan"] * 50 + [f"guess{i}" for i in range(150)]
        got = await asyncio.gather(*(attempt(bad, n, "wrong-password", token) for n in names))
        statuses = [st for st, _text in got]
        # The address had its free failures, then only "too frequent": no more checks.
        limits = _con(client).guard.limits
        assert statuses.count(401) <= limits.address.free
        assert statuses.count(429) >= len(names) - limits.address.free
        assert all("尝试过于频繁" in text or "账户已锁定" in text for st, text in got if st == 429)
        # The real approver, from their own address, at once, on the first try.
        status, text = await attempt(good, "alan", PASSWORD, await login_token(good))
        assert status == 303, text


async def test_a_burst_against_the_approver_locks_only_the_stranger_out(web) -> None:  # type: ignore[no-untyped-def]
    client, h = web
    limits = _con(client).guard.limits
    async with from_address(client, ATTACKER) as bad, from_address(client, APPROVER) as good:
        token = await login_token(bad)
        for _ in range(limits.lock_after):  # every wrong password it may try, waiting it out
            h.clock.advance(limits.pair.cap_s)
            status, _text = await attempt(bad, "alan", "wrong-password", token)
            assert status == 401
        status, text = await attempt(bad, "alan", PASSWORD, token)  # even the right one
        assert status == 429 and "账户已锁定，15 分钟后再试" in text
        # Meanwhile the approver mistypes once from their own address: a short wait at most,
        # never the lock, however many failures the account has seen.
        gtoken = await login_token(good)
        status, _text = await attempt(good, "alan", "typo-password", gtoken)
        assert status == 401
        status, text = await attempt(good, "alan", PASSWORD, gtoken)
        assert status == 429 and "尝试过于频繁" in text and "锁定" not in text
        h.clock.advance(limits.account.cap_s)
        status, text = await attempt(good, "alan", PASSWORD, gtoken)
        assert status == 303, text
        # The stranger is still locked; the lock ends by itself.
        status, text = await attempt(bad, "alan", PASSWORD, token)
        assert status == 429 and "账户已锁定" in text
        h.clock.advance(limits.lock_s)
        status, _text = await attempt(bad, "alan", PASSWORD, token)
        assert status == 303


async def test_a_browser_that_signed_in_before_is_not_held_back_by_its_address(web) -> None:  # type: ignore[no-untyped-def]
    client, h = web
    limits = _con(client).guard.limits
    proxy = "127.0.0.5"  # everyone behind one reverse proxy or office NAT: one address
    async with from_address(client, proxy) as known, from_address(client, proxy) as bad, \
            from_address(client, proxy) as new:
        planted = SimpleCookie()
        planted["wb_device"] = "A" * 32  # planted (or copied from elsewhere): never trusted
        planted["wb_device"]["path"] = "/console/login"
        known.cookie_jar.update_cookies(planted, URL(str(client.make_url("/"))))
        status, _text = await attempt(known, "alan", PASSWORD, await login_token(known))
        assert status == 303
        device = next(c.value for c in known.cookie_jar if c.key == "wb_device")
        assert device != "A" * 32 and len(device) == 32
        known.cookie_jar.clear(lambda c: c.key == "wb_console")  # the session ends, not the trust
        # A stranger behind the same address: throttles the address, locks alan there.
        token = await login_token(bad)
        await asyncio.gather(*(attempt(bad, f"guess{i}", "wrong-password", token)
                               for i in range(limits.address.free)))
        for _ in range(limits.lock_after):
            h.clock.advance(limits.address.cap_s)
            await attempt(bad, "alan", "wrong-password", token)
        status, text = await attempt(new, "alan", PASSWORD, await login_token(new))
        assert status == 429 and "账户已锁定" in text  # a browser never used: as the address
        # Alan's own browser: at once.
        status, text = await attempt(known, "alan", PASSWORD, await login_token(known))
        assert status == 303, text
        # It is judged by its own failures (free ones, then a backoff), no one else's.
        token = await login_token(known)
        known.cookie_jar.clear(lambda c: c.key == "wb_console")
        for _ in range(limits.pair.free):
            assert (await attempt(known, "alan", "typo-password", token))[0] == 401
        status, text = await attempt(known, "alan", PASSWORD, token)
        assert status == 429 and "尝试过于频繁，2 秒后再试" in text
        h.clock.advance(limits.pair.base_s)
        assert (await attempt(known, "alan", PASSWORD, token))[0] == 303


async def test_unknown_names_are_throttled_like_real_ones(web) -> None:  # type: ignore[no-untyped-def]
    client, h = web
    limits = _con(client).guard.limits
    async with from_address(client, ATTACKER) as bad:
        token = await login_token(bad)
        for name in ("alan", "nobody"):  # a real and an unknown name answer alike
            texts = []
            for _ in range(limits.lock_after + 1):
                texts.append((await attempt(bad, name, "wrong-password", token))[1])
                h.clock.advance(limits.pair.cap_s)
            assert "账户已锁定" in texts[-1] and "用户名或密码错误" in texts[0]
            h.clock.advance(limits.window_s + 1)


async def test_admin_unlocks_an_account_and_the_unlock_is_audited(web) -> None:  # type: ignore[no-untyped-def]
    client, h = web
    limits = _con(client).guard.limits
    async with from_address(client, OTHER) as dora:
        token = await login_token(dora)
        for _ in range(limits.lock_after):  # dora locks herself out with typos
            await attempt(dora, "dora", "typo-password", token)
            h.clock.advance(limits.pair.cap_s)
        status, text = await attempt(dora, "dora", PASSWORD, token)
        assert status == 429 and "账户已锁定" in text
        s = await sign_in(client, "root")
        page = await (await client.get("/console/admin", headers={"Accept": "text/html"})).text()
        assert f"15分钟内失败{limits.lock_after}次" in page and "/admin/users/dora/unlock" in page
        r = await client.post("/console/admin/users/dora/unlock", data={"_csrf": s.csrf},
                              allow_redirects=False)
        assert r.status == 303
        status, text = await attempt(dora, "dora", PASSWORD, token)
        assert status == 303, text
    page = await (await client.get("/console/admin", headers={"Accept": "text/html"})).text()
    assert "Root 解除登录锁定 Dora（dora）" in page  # who, and when (the line starts with the time)
    r = await client.post("/console/admin/users/nobody/unlock", data={"_csrf": s.csrf})
    assert r.status == 404
    s = await sign_in(client, "alan")
    r = await client.post("/console/admin/users/dora/unlock", data={"_csrf": s.csrf})
    assert r.status == 403


async def test_concurrent_attempts_cannot_slip_past_a_limit(web) -> None:  # type: ignore[no-untyped-def]
    client, h = web
    limits = _con(client).guard.limits
    async with from_address(client, ATTACKER) as bad:
        token = await login_token(bad)
        got = await asyncio.gather(*(attempt(bad, "anna", "wrong-password", token)
                                     for _ in range(40)))
    statuses = [st for st, _ in got]
    assert statuses.count(401) == limits.pair.free and statuses.count(429) == 40 - limits.pair.free
    fails = await _fails(h)
    assert fails[f"p:anna|{ATTACKER}"].split("|")[0] == str(limits.pair.free)
    assert fails[f"a:{ATTACKER}"].split("|")[0] == str(limits.pair.free)
    # The guard alone, many more at once: exactly `free` admitted, and counted.
    guard = SignInGuard(h.ctx.redis, h.clock)
    who = await guard.attempt("alan", OTHER)
    verdicts = await asyncio.gather(*(guard.admit(who) for _ in range(300)))
    assert sum(v.admitted for v in verdicts) == guard.limits.pair.free
    assert (await _fails(h))["u:alan"].split("|")[0] == str(guard.limits.pair.free)


async def test_no_redis_key_per_name_and_the_state_stays_bounded(web) -> None:  # type: ignore[no-untyped-def]
    client, h = web
    before = set(await h.ctx.redis.keys("*"))
    async with from_address(client, ATTACKER) as bad:
        token = await login_token(bad)
        for _ in range(0, 1000, 50):
            await asyncio.gather(*(attempt(bad, secrets.token_hex(8), "wrong-password", token)
                                   for _ in range(50)))
        await asyncio.gather(*(attempt(bad, "x" * n, "p", token) for n in (1, 33, 10_000)),
                             attempt(bad, "bad name|*", "p", token))
    added = set(await h.ctx.redis.keys("*")) - before
    assert added == {keys.CONSOLE_LOGIN_FAILS.encode()}
    assert 0 < await h.ctx.redis.ttl(keys.CONSOLE_LOGIN_FAILS) <= 900
    assert not any("x" * 33 in f or "bad name" in f for f in await _fails(h))
    # Admitted failures from many addresses for many names: the hash keeps at most its cap.
    guard = SignInGuard(h.ctx.redis, h.clock, SignInLimits(
        address=NO_LIMIT, pair=NO_LIMIT, account=NO_LIMIT, lock_after=10**9, max_entries=300))
    for i in range(1000):
        await guard.admit(await guard.attempt(secrets.token_hex(6), f"10.0.{i // 250}.{i % 250}"))
    assert await h.ctx.redis.hlen(keys.CONSOLE_LOGIN_FAILS) <= 300 + 1 + 3
    # Entries are forgotten once their window has passed: the sampling cursor walks the
    # whole hash over successive admissions.
    h.clock.advance(guard.limits.window_s + 1)
    for _ in range(100):
        await guard.admit(await guard.attempt(secrets.token_hex(6), OTHER))
    fails = await _fails(h)
    oldest = min(int(v.split("|")[1]) for v in fails.values()) / 1000
    assert oldest >= h.clock.now() - guard.limits.window_s and len(fails) == 1 + 2 * 100


async def test_user_names_are_bounded_before_anything_is_named_after_them(web) -> None:  # type: ignore[no-untyped-def]
    client, _h = web
    s = await sign_in(client, "root")
    for name in ("a", "x" * 33, "王五", "bad name", "a|b", "a*"):
        r = await client.post("/console/admin/users", data={
            "_csrf": s.csrf, "username": name, "display": "X", "password": "long-enough-pw",
            "role": "drafter"})
        assert "用户名须为2-32个字符" in await r.text(), name
    assert sorted(u.name for u in await _con(client).users.all()) == [
        "alan", "anna", "both", "dora", "root"]
    assert client_address("2001:db8:1:2:3:4:5:6") == "2001:db8:1:2::/64"
    assert client_address("::ffff:10.1.2.3") == "10.1.2.3" and client_address(None) == "-"


async def test_the_loop_stays_responsive_during_a_sign_in_flood(web) -> None:  # type: ignore[no-untyped-def]
    client, _h = web
    con = _con(client)
    # No throttle at all: every attempt reaches a password check (an unknown name hashes a
    # dummy), which is what a flood from many addresses would cause.
    con.guard.limits = SignInLimits(address=NO_LIMIT, pair=NO_LIMIT, account=NO_LIMIT,
                                    lock_after=10**9)
    token = await login_token(client)
    loop = asyncio.get_running_loop()
    done = asyncio.Event()

    async def flood(worker: int) -> list[int]:
        # Back to back from each of a few clients: what a script would send (all at once,
        # the test's own client would stall the loop it shares with the server).
        return [(await attempt(client, f"u{worker}-{i}", "wrong-password", token))[0]
                for i in range(5)]

    watcher = asyncio.create_task(worst_lag(done))
    started = loop.time()
    statuses = [st for got in await asyncio.gather(*(flood(w) for w in range(8))) for st in got]
    elapsed = loop.time() - started
    done.set()
    worst = await watcher
    assert statuses.count(401) == 40  # every one was checked (no throttle here), off the loop
    assert elapsed > 40 * 0.005  # the checks really ran (scrypt takes far longer than this)
    assert worst < 0.1, f"the event loop stalled {worst * 1000:.0f} ms"


async def test_the_hasher_runs_a_bounded_number_and_refuses_beyond() -> None:
    hasher = PasswordHasher(threads=1, waiting=2)
    results = await asyncio.gather(*(hasher.check("pw-of-someone", None) for _ in range(6)),
                                   return_exceptions=True)
    assert sum(isinstance(x, HasherBusy) for x in results) == 3
    assert all(x is False for x in results if not isinstance(x, HasherBusy))
    stored = await hasher.hash("s3cret-password")
    assert await hasher.check("s3cret-password", stored) and not hasher.full()
    # While strangers fill the open lane, a known browser's check has a thread of its own.
    flood = [asyncio.create_task(hasher.check("guess-password", None)) for _ in range(3)]
    await asyncio.sleep(0)
    assert hasher.full()
    assert await hasher.check("s3cret-password", stored, known=True)
    await asyncio.gather(*flood)
