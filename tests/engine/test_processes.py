"""Worker processes on one Redis: SIGKILL mid-campaign loses nothing; two share the work."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest
import pytest_asyncio
from redis.asyncio import Redis

from channels.testing import RECORD_KEY
from tests.engine.helpers import Harness, cap_alert, make_harness
from tests.waits import until
from warnbus.domain.models import DeliveryKind
from warnbus.flow.credentials import ENGINE
from warnbus.flow.intake import accept
from warnbus.state.queue import decode_entry

COUNTY = ("430623",)
FAST_POLICY = Path(__file__).resolve().parents[1] / "fixtures" / "policy-fast.toml"


def _config(tmp: Path, redis_url: str, delay: float) -> Path:
    chans = "\n".join(
        f'[channels.{n}]\ntype = "test"\nmedium = "{n}"\nrecord_url = "{redis_url}"\n'
        f"delay_s = {delay}\n" for n in ("voice", "sms", "wecom", "loudspeaker"))
    cfg = tmp / "warnbus.toml"
    cfg.write_text(
        f'redis_url = "{redis_url}"\nmqtt_url = "mqtt://127.0.0.1:9"\npolicy = "{FAST_POLICY}"\n'
        'ack_secret = "0123456789abcdef0123456789abcdef"\n'
        "[engine]\nconcurrency = 8\nlease_s = 2.0\nsweep_s = 0.5\ntick_s = 0.1\n" + chans,
        encoding="utf-8")
    return cfg


def _start(cfg: Path, tmp: Path, name: str) -> subprocess.Popen[bytes]:
    log = (tmp / f"{name}.log").open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "warnbus.runtime.cli", "serve", "--config", str(cfg), "--role",
         "worker,timer"],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "WARNBUS_LOG_LEVEL": "warning"},
        start_new_session=True)


async def _recorded(redis: Redis) -> list[list[object]]:
    dec = msgspec.msgpack.Decoder(list)
    return [dec.decode(b) for b in await redis.lrange(RECORD_KEY, 0, -1)]


@pytest_asyncio.fixture
async def planner(redis_url: str) -> AsyncIterator[Harness]:
    # The in-process harness only accepts and plans; the worker processes send.
    # Worker processes run on the real clock, so the campaign starts now.
    h = await make_harness(redis_url, policy=str(FAST_POLICY), start=time.time())
    yield h
    await h.app.close()


async def _first_wave_ids(h: Harness) -> set[str]:
    """Plan the campaign in-process (deterministic ids) and return what must be sent."""
    now = datetime.fromtimestamp(h.clock.now(), UTC).replace(microsecond=0)
    res = await accept(h.ctx, cap_alert(codes=COUNTY, sent=now), ENGINE)
    await h.app.engine.inbox_once()
    lanes = await h.ctx.lanes.depth()
    ids: set[str] = set()
    for lane in lanes:
        for _id, fields in await h.ctx.redis.xrange(lane):
            ids.update(d.id for d in decode_entry(fields))
    assert len(ids) > 2000, lanes
    assert res.targets > 700
    h.campaign_id = res.campaign_id
    return ids


@pytest.mark.slow
async def test_sigkill_mid_campaign_loses_nothing_and_timers_fire(
    planner: Harness, redis_url: str, tmp_path: Path
) -> None:
    expected = await _first_wave_ids(planner)
    cfg = _config(tmp_path, redis_url, delay=0.004)
    redis = planner.ctx.redis
    a = _start(cfg, tmp_path, "a")
    try:
        await until(lambda: _len_at_least(redis, len(expected) // 3),
                    "a third of the first wave sent", within=60, every=0.1)
        os.killpg(a.pid, signal.SIGKILL)
        a.wait()
        sent_before = await redis.llen(RECORD_KEY)
        assert sent_before < len(expected), "the kill must land mid-campaign"
        b = _start(cfg, tmp_path, "b")
        try:
            async def all_sent() -> bool:
                got = {r[0] for r in await _recorded(redis)}
                return expected <= got
            await until(all_sent, "the second worker to send the whole first wave", within=90,
                        every=0.1, detail=lambda: _diagnose(planner, expected))
            rows = await _recorded(redis)
            ids = [r[0] for r in rows if r[0] in expected]
            dups = len(ids) - len(set(ids))
            # Only deliveries in flight in the killed worker may go twice.
            assert dups <= 8 * 4, dups
            counted = await planner.ctx.store.meta(campaign_id_of(planner))
            assert counted and counted.duplicates >= dups, "every resend is counted"
            # Escalation timers still fire after the restart: redials (step 1) go out.
            async def redialled() -> bool:
                return any(r[3] == DeliveryKind.REDIAL.value for r in await _recorded(redis))
            await until(redialled, "a redial after the restart", within=30, every=0.1)
        finally:
            os.killpg(b.pid, signal.SIGKILL)
            b.wait()
    finally:
        if a.poll() is None:
            os.killpg(a.pid, signal.SIGKILL)


async def _diagnose(h: Harness, expected: set[str]) -> str:
    redis = h.ctx.redis
    got = {r[0] for r in await _recorded(redis)}
    lanes = await h.ctx.lanes.depth()
    pending = {lane: await redis.xpending(lane, "warnbus") for lane in lanes}
    states = await h.ctx.store.delivery_states(h.campaign_id)
    missing = expected - got
    by_state: dict[str, int] = {}
    for d in missing:
        by_state[states.get(d, "none")] = by_state.get(states.get(d, "none"), 0) + 1
    return f"missing {len(missing)} by state {by_state}; lanes {lanes}; pending {pending}"


def campaign_id_of(h: Harness) -> str:
    return h.campaign_id


async def _len_at_least(redis: Redis, n: int) -> bool:
    return int(await redis.llen(RECORD_KEY)) >= n


@pytest.mark.slow
async def test_two_workers_share_the_work_without_duplicates(
    planner: Harness, redis_url: str, tmp_path: Path
) -> None:
    expected = await _first_wave_ids(planner)
    cfg = _config(tmp_path, redis_url, delay=0.002)
    procs = [_start(cfg, tmp_path, f"w{i}") for i in range(2)]
    try:
        async def all_sent() -> bool:
            got = {r[0] for r in await _recorded(planner.ctx.redis)}
            return expected <= got
        await until(all_sent, "the two workers to send the whole first wave", within=90,
                    every=0.1)
        rows = [r for r in await _recorded(planner.ctx.redis) if r[0] in expected]
        assert len(rows) == len(expected), "no delivery sent twice"
        pids = {r[6] for r in rows}
        assert len(pids) == 2, "both workers took a share"
        log_a = (tmp_path / "w0.log").read_text()
        assert "Traceback" not in log_a
    finally:
        for p in procs:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
