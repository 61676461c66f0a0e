"""The key layout works on a Redis Cluster: proved on what the engine really sends.

A representative workload (HTTP accept, plan, first wave on every channel, ack link, SMS
reply and provider callbacks, redials and escalation, Update, Cancel, sweepers, the feed
poller and its lease, the CAP feed, the console, rate-limit buckets) runs on a real
redis-server while a MONITOR connection records every command. The server then names the
keys of each command (`COMMAND GETKEYS`) and the test asserts, as a Redis Cluster would:

- every multi-key command (EVALSHA, XREADGROUP over several lanes, ...) has its keys in one
  hash slot;
- no MULTI/EXEC block spans slots (pipelines without MULTI may: cluster clients split them);
- a Lua script only touches keys passed to it in KEYS (never a key name built inside Lua).
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis
from redis.crc import key_slot

from tests.console.console_kit import PASSWORD, sign_in
from tests.engine.helpers import make_harness
from tests.engine.redis_monitor import Monitor, analyse, parse_line, quote
from warnbus.domain.feedback import FeedbackKind, Report
from warnbus.domain.models import AckVia, DeliveryKind, Level
from warnbus.domain.states import GridState
from warnbus.feeds import FeedPoller
from warnbus.feeds import state as feed_state
from warnbus.flow.breaker import State
from warnbus.flow.escalation import redial_offsets
from warnbus.flow.routes import RoutedChannels
from warnbus.plugin import ProviderStatus
from warnbus.runtime.app import token_hash
from warnbus.runtime.config import FeedSettings, LimitSettings, TokenSettings
from warnbus.runtime.services import ManagedService
from warnbus.state import keys, numberlimits, queue, ratelimit, registrybook, scripts, store
from warnbus.state.registrybook import RegistryBook
from warnbus.web.api import make_web_app
from warnbus.web.console import drafts as console_drafts
from warnbus.web.console import throttle as console_throttle
from warnbus.web.console.auth import Users
from warnbus.web.console.base import CONSOLE

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "cap"
TOKEN = "cluster-slot-feed-token"
_CSRF = re.compile(r'name="_csrf" value="([^"]+)"')

# Every Lua script the project registers, by where it lives: the state layer's .lua files
# (`scripts.LOADED`) and the few scripts other modules keep. A new register_script() call must
# be added here (test_every_registered_script_is_listed) so that it is checked too.
# importing them loads their scripts
_STATE_MODULES = (store, queue, ratelimit, registrybook, numberlimits)
SCRIPTS: dict[str, str] = {
    **{f"state.{n}": sc.source for n, sc in scripts.LOADED.items()},
    "feeds.state._HOLD": feed_state._HOLD,
    "feeds.state._RELEASE": feed_state._RELEASE,
    "web.console.drafts._MOVE": console_drafts._MOVE,
    "web.console.throttle.ADMIT": console_throttle.ADMIT,
    "web.console.throttle.SETTLE": console_throttle.SETTLE,
    "web.console.throttle.UNLOCK": console_throttle.UNLOCK,
}
REGISTERED = re.compile(r"register_script\(\s*([A-Za-z_][\w.]*)\s*\)")


def sha(source: str) -> bytes:
    return hashlib.sha1(source.encode()).hexdigest().encode()


# --------------------------------------------------------------------------- the parser


def test_parse_line_reads_clients_escapes_and_binary() -> None:
    c = parse_line(b'+1795374118.002908 [0 127.0.0.1:48528] "EVALSHA" "18d7" "1" "a" '
                   b'"x\\x00\\"y\\n\\\\z\\xff \\r\\t\\a\\b] \\"q"\r\n')
    assert (c.db, c.client, c.name, c.from_lua) == (0, "127.0.0.1:48528", "EVALSHA", False)
    assert c.args == (b"EVALSHA", b"18d7", b"1", b"a", b'x\x00"y\n\\z\xff \r\t\a\b] "q')
    assert c.at == pytest.approx(1795374118.002908)
    lua = parse_line(b'1.5 [3 lua] "HSET" "wb:{c:cp_1}:meta" "state" "active"')
    assert lua.from_lua and lua.db == 3 and lua.args[1] == b"wb:{c:cp_1}:meta"
    v6 = parse_line(b'1.5 [0 [::1]:6379] "GET" "k"')
    assert v6.client == "[::1]:6379" and v6.args == (b"GET", b"k")
    unix = parse_line(b'1.5 [12 unix:/run/redis.sock] "PING"')
    assert unix.client == "unix:/run/redis.sock" and unix.db == 12 and unix.args == (b"PING",)
    assert parse_line(b'1.5 [0 lua] "SET" "" "\\xe5\\x8f\\xab"').args == (b"SET", b"",
                                                                            "叫".encode())


@pytest.mark.parametrize("bad", [
    b"", b"OK", b'1.5 "GET" "k"', b'1.5 [0 lua]', b'1.5 [0 lua] GET', b'1.5 [0 lua] "GET',
    b'1.5 [0 lua] "GET" "k" ', b'1.5 [0 lua] "GET""k"', b'1.5 [0 lua] "a\\q"',
    b'1.5 [0 lua] "a\\x4"', b'1.5 [0 lua] "a\\xzz"', b'1.5 [x lua] "GET"', b'1.5 [0 lua] "a\\',
])
def test_parse_line_refuses_what_is_not_a_monitor_line(bad: bytes) -> None:
    with pytest.raises(ValueError):
        parse_line(bad)


def test_parse_line_round_trips_random_bytes() -> None:
    rnd = random.Random(7)
    for _ in range(300):
        args = [bytes(rnd.randrange(256) for _ in range(rnd.randrange(0, 40)))
                for _ in range(rnd.randrange(1, 6))]
        line = b'1.0 [0 127.0.0.1:1] ' + b" ".join(quote(a) for a in args)
        assert parse_line(line).args == tuple(args)


async def test_parser_reads_what_the_real_server_writes(redis: Redis, redis_url: str) -> None:
    values = [bytes(range(256)), '叫应 "确认" \\ ] "'.encode(), b"", b'"', b"\\x41", b"\r\n",
              bytes(random.Random(3).randrange(256) for _ in range(5000))]
    async with Monitor(redis_url) as mon:
        for i, v in enumerate(values):
            await redis.set(f"k{i} \"{{x}}\"".encode(), v)
        commands = await mon.stop()
    sets = [c for c in commands if c.name == "SET"]
    assert [c.args[2] for c in sets] == values
    assert [c.args[1] for c in sets] == [f"k{i} \"{{x}}\"".encode() for i in range(len(values))]


# --------------------------------------------------------------------------- Lua, statically


def test_every_registered_script_is_listed() -> None:
    """Each register_script(X) in the code names a script this module checks, and every .lua
    file of the engine is loaded (the state layer registers those through `scripts.load`)."""
    found: set[str] = set()
    for path in [*sorted((REPO / "warnbus").rglob("*.py")),
                 *sorted((REPO / "channels").rglob("*.py"))]:
        if path == REPO / "warnbus" / "state" / "scripts.py":
            continue  # BoundScript registers what `scripts.load` loaded
        for name in REGISTERED.findall(path.read_text()):
            found.add(name.rsplit(".", 1)[-1])
    listed = {name.rsplit(".", 1)[-1] for name in SCRIPTS}
    assert found, "register_script calls were found"
    assert found <= listed, f"scripts not covered by the cluster test: {found - listed}"
    files = {f"{p.stem}" for p in (REPO / "warnbus").rglob("*.lua")} - {"helpers"}
    assert files == {name.rsplit(".", 1)[-1] for name in scripts.LOADED}, "a .lua file not loaded"


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_lua_never_builds_a_key_name(name: str) -> None:
    src = SCRIPTS[name]
    assert f"{keys.PREFIX}:" not in src, "a key name written in Lua"
    assert not re.search(r"KEYS\[[^\]]+\]\s*\.\.|\.\.\s*KEYS\[", src), "a key name built from KEYS"
    # The first argument of every keyed call is KEYS[n] or a helper's parameter holding one.
    for cmd, first in re.findall(r"redis\.p?call\(\s*'([A-Za-z]+)'\s*(?:,\s*([^,)]+))?", src):
        if cmd.upper() in ("TIME",):
            continue
        assert first and not first.startswith(("ARGV", "'", '"')), f"{cmd} {first}"


# --------------------------------------------------------------------------- the workload


async def _console(client: TestClient, h) -> None:  # type: ignore[no-untyped-def,type-arg]
    """Sign-in (one failure first), a red draft approved by a second person, a board page,
    a grid's page, a door-to-door order and its result, a stop of the calling."""
    users = Users(h.ctx.redis)
    await users.create("dora", "Dora", ("drafter",), PASSWORD)
    await users.create("alan", "Alan", ("approver",), PASSWORD)
    r = await client.get("/console/login")
    token = _CSRF.search(await r.text())
    assert token
    await client.post("/console/login", data={"_csrf": token.group(1), "username": "dora",
                                              "password": "wrong-password", "next": "/console/"},
                      allow_redirects=False)
    await client.server.app[CONSOLE].guard.unlock("dora")  # what the admin page's unlock does
    csrf = (await sign_in(client, "dora")).csrf
    form = {"_csrf": csrf, "kind": "alert", "hazard": "rainstorm", "level": "red",
            "status": "Actual", "headline": "华容县应急管理局发布暴雨红色预警",
            "description": "预计未来3小时降雨量将达100毫米以上。",
            "instruction": "危险区域人员立即转移。",
            "effective": "2026-07-15T13:30", "expires": "2026-07-15T19:30",
            "area": "430623105000", "confirmed": "1"}
    r = await client.post("/console/compose", data=form, allow_redirects=False)
    assert r.status == 303 and "/drafts/df_" in r.headers["Location"], await r.text()
    draft = r.headers["Location"].split("/drafts/")[1].split("?")[0]
    csrf = (await sign_in(client, "alan")).csrf
    r = await client.post(f"/console/drafts/{draft}/approve", data={"_csrf": csrf},
                          allow_redirects=False)
    assert r.status == 303 and "/campaigns/cp_" in r.headers["Location"], await r.text()
    cid = r.headers["Location"].split("/campaigns/")[1].split("?")[0].split("/")[0]
    await h.drain()
    r = await client.get(f"/console/campaigns/{cid}", headers={"Accept": "text/html"})
    assert r.status == 200
    r = await client.get("/console/", headers={"Accept": "text/html"})
    assert r.status == 200
    grid = sorted(await h.ctx.store.grids(cid))[0]
    r = await client.get(f"/console/campaigns/{cid}/grids/{grid}", headers={"Accept": "text/html"})
    assert r.status == 200
    for path, data in (("door", {"grid": grid}),
                       ("door/result", {"grid": grid, "outcome": "told", "note": ""}),
                       ("stop", {"reason": "误报"})):
        r = await client.post(f"/console/campaigns/{cid}/{path}", allow_redirects=False,
                              data={"_csrf": csrf, **data})
        assert r.status == 303, path
    await h.drain()


async def _registry_change(h) -> None:  # type: ignore[no-untyped-def]
    """A registry change staged, applied (as the console and the CLI do), and picked up."""
    book = RegistryBook(h.ctx.redis)
    data = h.ctx.registry.data
    pid = sorted(data.persons)[0]
    changed = msgspec.structs.replace(data, persons={
        **data.persons, pid: msgspec.structs.replace(data.persons[pid], note="核对")})
    stage = await book.stage(changed, base_version=0, by="root", source="t", report=b"{}",
                             year=None)
    staged = await book.staged(stage)
    assert staged is not None
    await book.apply(staged.data, expected=0, by="root", source="t",
                     base=await book.files_sha(), at=0.0, year=None, summary="", diff=b"{}")
    await book.drop_stage(stage)
    assert await h.app.engine.registry.refresh()
    assert await book.history()


async def run_workload(url: str) -> dict[str, int]:
    """Everything the engine does to Redis in a campaign's life, on the server at `url`."""
    h = await make_harness(url)
    h.app.tokens = (TokenSettings("met", token_hash(TOKEN), roles=("feed", "officer"),
                                  senders=("430623@qx.example.cn",)),)
    # A provider rate on SMS, so the dispatcher takes tokens from its shared bucket.
    sms = h.channels["sms"]
    sms.info = msgspec.structs.replace(sms.info, rate_per_s=5000.0)
    # Tencent voice's per-number limits on voice: each call takes from a number's record, and
    # the redials past 2 in 10 minutes are re-routed.
    h.ctx.channels = RoutedChannels.build(
        {n: c.info for n, c in h.channels.items()}, {},
        {"voice-account": LimitSettings(channels=("voice",), preset="tencent-voice")})
    client = TestClient(TestServer(make_web_app(h.app)))
    await client.start_server()
    seen: dict[str, int] = {}
    try:
        auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/cap+xml"}
        r = await client.post("/api/v1/alerts", data=(FIXTURES / "rainstorm-red.xml").read_bytes(),
                              headers=auth)
        assert r.status == 202, await r.text()
        res = await r.json()
        cid, aid = res["campaign_id"], res["alert_id"]
        await h.drain()  # plan, first wave, dispatch on every channel
        for ch in ("voice", "sms", "wecom", "loudspeaker"):
            seen[ch] = len(h.sent(ch))
            assert h.sent(ch), ch
        for path in (f"/api/v1/alerts/{aid}", f"/api/v1/alerts/{aid}/record", "/metrics",
                     "/cap/feed.atom", f"/cap/alerts/{aid}.xml"):
            r = await client.get(path, headers={"Authorization": f"Bearer {TOKEN}"})
            assert r.status == 200, (path, r.status)
        # Acks: the signed link (through the public rate limit), an SMS reply, a console ack.
        sms = [d for d in h.sent("sms") if d.ack_url]
        r = await client.post(sms[0].ack_url.replace("http://test", ""))
        assert (await r.json())["status"] == "recorded"
        sink = h.app.engine.sink
        person = h.ctx.person(sms[1].target_id)
        assert person is not None and person.phone
        assert await sink.confirm_from("sms", person.phone, AckVia.SMS) == [cid]
        # Feedback after the ack: an SMS report, and a report gone overdue.
        assert await sink.report_from("sms", person.phone, AckVia.SMS,
                                      Report(FeedbackKind.EVACUATED, count=35)) == [cid]
        assert await h.ctx.store.feedback.overdue(cid, sms[0].target_id, "", h.clock.now()) == 1
        # Provider callbacks: delivered, failed (re-planned on the next channel), playout.
        await sink.delivery_status(cid, sms[2].id, sms[2].target_id, ProviderStatus.DELIVERED)
        await sink.delivery_status(cid, sms[3].id, sms[3].target_id, ProviderStatus.FAILED,
                                   "30003")
        area = h.sent("loudspeaker")[0]
        dev = h.ctx.registry.devices_of_village(area.address)[0]
        await sink.delivery_status(cid, area.id, f"dev:{dev}", ProviderStatus.DONE)
        await h.drain()
        # Redials, then escalation along the chain.
        policy = h.ctx.rules.policy_for(Level.RED)
        t0 = h.clock.now()
        times, escalate_at = redial_offsets(policy)
        for offset in (*times, escalate_at, escalate_at + (policy.ack_deadline_s or 60)):
            h.clock.set(t0 + offset)
            await h.drain()
        kinds = {d.kind for d in h.sent()}
        assert {DeliveryKind.REDIAL, DeliveryKind.ESCALATION} <= kinds, kinds
        # A provider down past a delivery's deadline: its breaker refuses, the delivery
        # gives up unsent (a replayed one here, already sent: the script changes nothing).
        voice = h.channels["voice"]
        breaker = h.app.engine.dispatcher.breakers.get(voice.info.breaker_key)
        breaker.record_many(h.clock.now(), 0, 1000)
        assert breaker.state is State.OPEN
        await h.ctx.lanes.enqueue([h.sent("voice")[0]])
        await h.drain()
        # Sweepers of every role (nothing is stuck, but their commands must be cluster-safe).
        eng = h.app.engine
        await eng.inbox_once(reclaim_idle_ms=0)
        for ch in h.channels:
            await eng.dispatcher.sweep(ch)
        await eng.ticker.sweep()
        # The feed poller and its lease, reading this engine's own CAP feed (all duplicates).
        feed = FeedSettings(name="self.feed", url=str(client.make_url("/cap/feed.atom")),
                            senders=("430623@qx.example.cn",),
                            allow_private=True)  # this engine, on 127.0.0.1
        poller = FeedPoller(h.ctx, feed)
        try:
            assert await poller.state.hold("tok-1", 30)
            assert not await poller.state.hold("tok-2", 30)
            res_poll = await poller.poll_once()
            assert res_poll.outcome == "ok", res_poll
            await poller.state.release("tok-1")
        finally:
            await poller.aclose()
        # A grid an Update dropped, put back by a later one.
        grid, view = next((g, v) for g, v in (await h.ctx.store.grids(cid)).items()
                          if v.state in GridState.OPEN)
        await h.ctx.store.close_grids(cid, [grid], GridState.DROPPED, [view.holder],
                                      h.clock.now())
        assert await h.ctx.store.reopen_grids(cid, [(grid, view.holder)], h.clock.now()) == 1
        # Update (more townships), then Cancel, through the API.
        for name in ("rainstorm-red-update.xml", "rainstorm-red-cancel.xml"):
            r = await client.post("/api/v1/alerts", data=(FIXTURES / name).read_bytes(),
                                  headers=auth)
            assert r.status == 202, await r.text()
            assert (await r.json())["campaign_id"] == cid
            await h.drain()
        assert {DeliveryKind.UPDATE, DeliveryKind.CANCEL} <= {d.kind for d in h.sent()}
        meta = await h.ctx.store.meta(cid)
        assert meta and meta.state == "cancelled"
        await _console(client, h)
        await _registry_change(h)
        # Expiry of what is left (the console alert), then one more tick of everything.
        h.clock.advance(7 * 24 * 3600)
        await h.drain()
    finally:
        await client.close()
        await h.app.close()
    return seen


async def test_every_multi_key_operation_stays_in_one_slot(
    redis_factory: Callable[..., ManagedService],
) -> None:
    server = redis_factory()
    async with Monitor(server.url) as mon:
        await run_workload(server.url)
        commands = await mon.stop()
    redis = Redis.from_url(server.url)
    try:
        report = await analyse(redis, commands)
    finally:
        await redis.aclose()
    assert not report.findings, "\n".join([
        f"{len(report.cross_slot)} cross-slot commands, {len(report.cross_slot_multi)} cross-slot "
        f"MULTI blocks, {len(report.outside_keys)} Lua key problems, {len(report.unresolved)} "
        "commands whose keys are unknown; examples:",
        *sorted(set(report.cross_slot))[:8], *report.cross_slot_multi[:5],
        *report.outside_keys[:10], *report.unresolved[:10]])
    # The workload did exercise what matters (so that a pass means something).
    assert report.commands > 1000
    for name in ("XREADGROUP", "XAUTOCLAIM", "EVALSHA", "XADD", "XACK", "ZADD", "HSETNX"):
        assert report.names[name], name
    assert report.multi_key["XREADGROUP"], "lanes of a channel are read in one call"
    assert report.multi_key["EVALSHA"]
    assert report.transactions == 0 or not report.cross_slot_multi
    ran = {s for s, n in report.scripts.items() if n}
    missing = sorted(name for name, src in SCRIPTS.items() if sha(src) not in ran)
    assert not missing, f"scripts the workload never ran (with their inner commands): {missing}"
    lua_keys = {c.name for c in commands if c.from_lua}
    assert {"HSET", "XADD", "SADD", "ZREM"} <= lua_keys


def test_lane_keys_of_one_channel_share_a_slot() -> None:
    from warnbus.state.queue import PRIORITIES

    for ch in ("sms", "voice", "wecom", "loudspeaker", "a:b", "x{y}z"):
        lanes = [keys.lane(ch, p) for p in PRIORITIES]
        assert len(set(lanes)) == len(PRIORITIES)
        assert len({key_slot(k.encode()) for k in lanes}) == 1, lanes


# --------------------------------------------------------------------------- the checker can fail


async def test_the_checker_reports_what_a_cluster_refuses(redis: Redis, redis_url: str) -> None:
    """Cross-slot commands, a cross-slot MULTI and a key built inside Lua are all reported."""
    r: Any = redis
    bad_lua = r.register_script("redis.call('SET', KEYS[1] .. ':copy', ARGV[1]); return 1")
    good_lua = r.register_script("return redis.call('GET', KEYS[1])")
    async with Monitor(redis_url) as mon:
        await r.mset({"{a}x": 1, "{a}y": 2})  # one slot: fine
        await r.delete("wb:one", "wb:two")  # two slots
        await bad_lua(keys=["{a}x"], args=["v"])
        await good_lua(keys=["{a}x"])
        pipe = r.pipeline(transaction=True)
        pipe.incr("{a}x")
        pipe.incr("wb:elsewhere")
        await pipe.execute()
        pipe = r.pipeline(transaction=False)  # a plain pipeline may span slots
        pipe.get("wb:one")
        pipe.get("wb:two")
        await pipe.execute()
        commands = await mon.stop()
    report = await analyse(redis, commands)
    assert len(report.cross_slot) == 1 and "DEL" in report.cross_slot[0]
    assert len(report.cross_slot_multi) == 1 and "wb:elsewhere" in report.cross_slot_multi[0]
    assert len(report.outside_keys) == 1 and "{a}x:copy" in report.outside_keys[0]
    assert report.transactions == 1 and not report.unresolved
    assert report.multi_key["MSET"] == 1 and report.multi_key["EVALSHA"] == 0


async def test_old_lane_names_fail_the_check(redis: Redis, redis_url: str,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Before lanes shared a tag, reading a channel's lanes in one XREADGROUP spanned slots."""
    from warnbus.state.queue import Lanes

    monkeypatch.setattr(keys, "lane", lambda channel, priority: f"wb:q:{channel}:{priority}")
    lanes = Lanes(redis, ["sms"])
    await lanes.setup()
    async with Monitor(redis_url) as mon:
        await lanes.read("sms", "c1", 10, 0)
        commands = await mon.stop()
    report = await analyse(redis, commands)
    assert [x for x in report.cross_slot if "XREADGROUP" in x and "wb:q:sms:0" in x]
