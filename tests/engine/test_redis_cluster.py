"""The queue, the Lua transitions and the leases on a real 3-master Redis Cluster.

A small cluster is started from the Debian redis-server (`--cluster-enabled yes` x3, then
`redis-cli --cluster create`), and the engine's Redis code runs through redis-py's
`RedisCluster` client: lanes (one XREADGROUP over a channel's lanes), every campaign Lua
script, timers, rate buckets, the feed lease. The engine itself keeps its plain client
(test_cluster_slots.py proves every command it sends is cluster-safe); this shows the
commands also run on a cluster, and that the old lane names did not.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import RedisClusterException

from tests.conftest import IN_CI
from tests.waits import until_sync
from warnbus.domain.meta import MessageMeta
from warnbus.domain.models import (
    Ack,
    AckVia,
    Attempt,
    Delivery,
    DeliveryKind,
    Level,
    Outcome,
    Role,
    Target,
    TargetKind,
    delivery_id_for,
)
from warnbus.domain.states import CampaignState, DeliveryReport, DeliveryState, GridState
from warnbus.feeds.state import FeedState
from warnbus.flow.escalation import Deadline, encode_timer
from warnbus.state import keys
from warnbus.state.queue import Lanes, Timers
from warnbus.state.ratelimit import RateLimiter
from warnbus.state.store import SendRecord, Store

NOW = 1_784_093_400.0


def _free_port() -> int:
    """A free port whose cluster bus port (+10000) is free too."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port >= 55000:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """Three masters, no replicas; yields the port of one node."""
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if not server or not cli:
        message = "redis-server and redis-cli are needed: apt-get install redis-server"
        if IN_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    base = tmp_path_factory.mktemp("cluster")
    ports = [_free_port() for _ in range(3)]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for port in ports:
            d = Path(base / str(port))
            d.mkdir()
            procs.append(subprocess.Popen(
                [server, "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                 "--cluster-config-file", str(d / "nodes.conf"), "--dir", str(d), "--save", "",
                 "--appendonly", "no", "--logfile", str(d / "redis.log")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for port in ports:
            until_sync(lambda p=port: _cli(cli, p, "ping") == "PONG", f"node {port} up",
                       within=20, every=0.05)
        create = subprocess.run(
            [cli, "--cluster", "create", *[f"127.0.0.1:{p}" for p in ports], "--cluster-yes"],
            capture_output=True, text=True, timeout=60, check=False)
        assert create.returncode == 0, create.stdout + create.stderr
        for port in ports:
            until_sync(lambda p=port: "cluster_state:ok" in _cli(cli, p, "cluster", "info"),
                       f"node {port} in a healthy cluster", within=20, every=0.05)
        yield ports[0]
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def _cli(cli: str, port: int, *args: str) -> str:
    out = subprocess.run([cli, "-p", str(port), *args], capture_output=True, text=True,
                         timeout=10, check=False)
    return out.stdout.strip()


@pytest_asyncio.fixture
async def rc(cluster: int) -> AsyncIterator[Any]:
    client = RedisCluster(host="127.0.0.1", port=cluster)
    await client.initialize()
    await client.flushall(target_nodes=RedisCluster.PRIMARIES)
    try:
        yield client
    finally:
        await client.aclose()


def _delivery(cid: str, person: str, channel: str, level: Level) -> Delivery:
    aid = f"al_{level.value}"  # one message per level: distinct delivery ids
    return Delivery(delivery_id_for(cid, aid, person, channel, 0), cid, aid, person,
                    TargetKind.PERSON, channel, 0, DeliveryKind.WARNING, level, "+8613800000000",
                    "暴雨红色预警", NOW)


async def test_lanes_and_campaign_scripts_run_on_a_cluster(rc: Any) -> None:
    store, lanes, timers = Store(rc), Lanes(rc, ["sms", "voice"]), Timers(rc)
    await lanes.setup()
    await timers.setup()
    # Two campaigns, chosen to live on different nodes' slots.
    cids = ["cp_cluster_a", "cp_cluster_b"]
    assert key_slot(keys.campaign(cids[0]).meta.encode()) != key_slot(
        keys.campaign(cids[1]).meta.encode())
    people = ["p1", "p2"]
    for cid in cids:
        await store.start(cid, MessageMeta(latest="al_1", level=Level.RED, headline="h", area="a",
                                           expires_at=None, villages=(), targets=2),
                          root="al_1", sender="s", event="暴雨", drill=False, now=NOW)
        await store.put_targets(cid, [Target(p, TargetKind.PERSON, "430623101001", Role.PRIMARY,
                                             (f"g{p}",)) for p in people], NOW)
        assert await store.init_grids(cid, [(f"g{p}", p) for p in people], NOW) == 2
    deliveries = [_delivery(c, p, ch, lv) for c in cids for p in people
                  for ch in ("sms", "voice") for lv in (Level.RED, Level.YELLOW)]
    assert await lanes.enqueue(deliveries) == len(deliveries)
    # Two channels x two priorities: four entries, each holding one lane's deliveries.
    assert sum((await lanes.depth()).values()) == 4
    # One XREADGROUP over all of a channel's lanes: one slot, so the cluster serves it.
    entries = await lanes.read("sms", "w1", 100, 0)
    assert len(entries) == len(deliveries) // 2
    assert entries[0].delivery.level is Level.RED  # most urgent first
    by_c: dict[str, list[Delivery]] = {}
    for e in entries:
        by_c.setdefault(e.delivery.campaign_id, []).append(e.delivery)
    claimed = await store.claim(by_c, NOW, 30.0)
    assert all(code == 1 for codes in claimed.values() for code, _n in codes), claimed
    await store.record([SendRecord(d, Attempt(d.id, 1, d.channel, NOW, Outcome.ACCEPTED, "SM1"),
                               DeliveryState.SENT) for ds in by_c.values() for d in ds], NOW)
    await lanes.done(entries)
    assert await lanes.reclaim("voice", "w2", 0) == []  # nothing read yet on voice
    voice = await lanes.read("voice", "w1", 100, 0)
    assert len(await lanes.reclaim("voice", "w2", 0)) == len(voice)  # a dead worker's entries
    d = by_c[cids[0]][0]
    assert await store.status(cids[0], d.id, d.target_id, DeliveryReport.DELIVERED, "", NOW) == 1
    ack = Ack(cids[0], "p1", NOW + 5, AckVia.SMS)
    assert (await store.ack(ack))[0] == 1
    assert (await store.ack(ack))[0] == 2
    assert (await store.grids(cids[0]))["gp1"].state is GridState.CONFIRMED
    assert await store.advance(cids[0], "p2", [("gp2", 0, 1, "b2")], NOW + 200) == [True]
    assert await store.close_grids(cids[1], ["gp1", "gp2"], GridState.CANCELLED, [], NOW) == 2
    assert await store.finish(cids[1], CampaignState.CANCELLED, NOW)
    assert [r["ev"] for r in await store.audit(cids[0])].count("ack") == 1
    # Timers: the promote script moves due members between two keys of one slot ({t}).
    member = encode_timer(Deadline(cids[0], "p2", 0))
    await timers.schedule([(member, NOW + 60)])
    assert await timers.promote((NOW, 0.0, 0.0)) == 0
    assert await timers.promote((NOW + 60, 0.0, 0.0)) == 1
    due = await timers.read_due("t1", 10, 0)
    assert [t.member for t in due] == [member]
    await timers.done(due)
    assert await timers.pending() == 0


async def test_buckets_and_leases_run_on_a_cluster(rc: Any) -> None:
    await RateLimiter(rc).acquire("sms", 1000.0, 50)
    assert int(await rc.exists(keys.rate_bucket("sms"))) == 1
    feed = FeedState(rc, "met.hunan")
    assert await feed.hold("tok-1", 30)
    assert not await feed.hold("tok-2", 30)
    await feed.release("tok-1")
    assert await feed.hold("tok-2", 30)


async def test_the_old_lane_names_are_refused_by_a_cluster(rc: Any) -> None:
    old = {f"wb:q:sms:{p}": ">" for p in range(4)}
    assert len({key_slot(k.encode()) for k in old}) > 1
    with pytest.raises(RedisClusterException, match="same key slot"):
        await rc.xreadgroup(keys.GROUP, "w1", old, count=1)


async def test_the_registry_book_runs_on_a_cluster(rc: Any) -> None:
    """Applied registry versions (one tag, {reg}): the apply script, the load's transaction,
    staged imports and the history, through a cluster client."""
    from warnbus.registry import default_registry_path, load_registry
    from warnbus.state.registrybook import RegistryBook

    data = load_registry(default_registry_path()).data
    book = RegistryBook(rc)
    await book.set_files_sha("files")
    assert await book.load() is None
    stage = await book.stage(data, base_version=0, by="root", source="t", report=b"{}",
                             year=2026)
    staged = await book.staged(stage)
    assert staged is not None and staged.data == data
    assert await book.apply(staged.data, expected=0, by="root", source="t",
                            base=await book.files_sha(), at=NOW, year=2026, summary="s",
                            diff=b"{}") == 1
    got = await book.load()
    assert got is not None and got[0].version == 1 and got[0].base == "files"
    assert got[1] == data
    assert [e.version for _id, e in await book.history()] == [1]
    await book.drop_stage(stage)
