"""Helpers of the fault tests: worker processes started and SIGKILLed by a test, on real servers.

A module with a unique name (the test folders have no `__init__.py`), imported by the tests.
Workers run `warnbus serve --role worker,timer` with the recording test channel, so a test sees
every send of every process in the Redis list `channels.testing.RECORD_KEY`, in order.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
from redis.asyncio import Redis

from channels.testing import RECORD_KEY
from warnbus.state import keys
from warnbus.state.queue import decode_entry

FAST_POLICY = Path(__file__).resolve().parents[1] / "fixtures" / "policy-fast.toml"
#: The sites' policy in seconds too: a campaign's sites close as soon as its grids.
FAST_SITES = FAST_POLICY.with_name("sites-fast.toml")
TERMINAL = frozenset({"sent", "delivered", "failed", "dead", "cancelled"})
_dec = msgspec.msgpack.Decoder(list)


def write_config(tmp: Path, redis_url: str, *, delay: float, concurrency: int = 8,
                 lease_s: float = 2.0, name: str = "warnbus.toml", after: float = 0.0) -> Path:
    """A worker configuration: the fast policy on the real clock, recording test channels
    (`delay`: before the provider accepts a send, `after`: until its answer comes back)."""
    chans = "\n".join(
        f'[channels.{n}]\ntype = "test"\nmedium = "{n}"\nrecord_url = "{redis_url}"\n'
        f"delay_s = {delay}\nafter_s = {after}\n" for n in ("voice", "sms", "wecom", "loudspeaker"))
    cfg = tmp / name
    cfg.write_text(
        f'redis_url = "{redis_url}"\nmqtt_url = "mqtt://127.0.0.1:9"\npolicy = "{FAST_POLICY}"\n'
        f'sites = "{FAST_SITES}"\n'
        'ack_secret = "0123456789abcdef0123456789abcdef"\n'
        f"[engine]\nconcurrency = {concurrency}\nlease_s = {lease_s}\nsweep_s = 0.5\n"
        "tick_s = 0.1\n" + chans,
        encoding="utf-8")
    return cfg


@dataclass
class Worker:
    """One engine process (worker and timer roles) in its own process group."""

    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def kill(self) -> None:
        """SIGKILL the whole group, as a power cut or the OOM killer would."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def tracebacks(self) -> str:
        text = self.log.read_text(encoding="utf-8", errors="replace")
        return text if "Traceback" in text else ""


def start_worker(cfg: Path, tmp: Path, name: str, roles: str = "worker,timer") -> Worker:
    log = tmp / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "warnbus.runtime.cli", "serve", "--config", str(cfg),
             "--role", roles],
            stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, "WARNBUS_LOG_LEVEL": "warning"}, start_new_session=True)
    return Worker(proc, log)


async def recorded(redis: Redis, start: int = 0) -> list[list[object]]:
    """Sends recorded by the test channels: [id, channel, address, kind, step, text, pid]."""
    return [_dec.decode(b) for b in await redis.lrange(RECORD_KEY, start, -1)]


async def wait_for(cond: Callable[[], Awaitable[bool]], within: float, what: str,
                   diagnose: Callable[[], Awaitable[str]] | None = None, *,
                   moving: Callable[[], Awaitable[object]] | None = None,
                   every: float = 0.1) -> None:
    """Wait until `cond()`; fail after `within` seconds, naming `what` (and `diagnose()`).

    With `moving` (what the work has done so far: counts of sends, audit entries, ...),
    `within` counts from the last time its value changed: work that goes on, however slowly
    a loaded machine lets it, is waited for; work that stops (a process that never
    reconnects, a delivery lost) fails `within` seconds after its last step. The test's
    timeout bounds the whole.
    """
    end = time.monotonic() + within
    seen = await moving() if moving is not None else None
    while True:
        if await cond():
            return
        if moving is not None and (now := await moving()) != seen:
            seen, end = now, time.monotonic() + within
        if time.monotonic() >= end:
            break
        await asyncio.sleep(every)
    detail = await diagnose() if diagnose is not None else ""
    still = f" (nothing moved for {within}s: {seen})" if moving is not None else ""
    raise AssertionError(f"timed out after {within}s waiting for {what}{still}. {detail}")


async def progress(redis: Redis, *campaigns: str) -> tuple[int, ...]:
    """What the engine has done so far: sends recorded, and each campaign's audit entries
    (every attempt, step, escalation and timer writes one). Cheap: a few lengths."""
    pipe = redis.pipeline(transaction=False)
    pipe.llen(RECORD_KEY)
    for cid in campaigns:
        pipe.xlen(keys.campaign(cid).audit)
    return tuple(int(n) for n in await pipe.execute())


async def lane_ids(redis: Redis, lanes: list[str]) -> set[str]:
    ids: set[str] = set()
    for lane in lanes:
        for _id, fields in await redis.xrange(lane):
            ids.update(d.id for d in decode_entry(fields))
    return ids


async def open_work(store: object, campaign_id: str) -> dict[str, int]:
    """Deliveries of a campaign not in a terminal state, by state (empty when all done)."""
    states = await store.delivery_states(campaign_id)  # type: ignore[attr-defined]
    out: dict[str, int] = {}
    for st in states.values():
        if st not in TERMINAL:
            out[st] = out.get(st, 0) + 1
    return out


def duplicates_by_segment(rows: list[list[object]], cuts: list[int]) -> list[int]:
    """Second sends of an id, attributed to the kill that preceded them (cuts: llen at kills)."""
    seen: set[object] = set()
    per = [0] * (len(cuts) + 1)
    for i, row in enumerate(rows):
        if row[0] in seen:
            seg = sum(1 for c in cuts if c <= i)
            per[seg] += 1
        seen.add(row[0])
    return per


def cap_xml(identifier: str, codes: tuple[str, ...], *, sent: datetime | None = None,
            hours: int = 6, sender: str = "430623@qx.example.cn", msg_type: str = "Alert",
            references: str = "") -> bytes:
    """A red rainstorm CAP 1.2 alert for township codes, sent now (for HTTP tests)."""
    sent = (sent or datetime.now(UTC)).replace(microsecond=0)
    fmt = "%Y-%m-%dT%H:%M:%S+00:00"
    geo = "".join(f"<geocode><valueName>TOWNSHIP</valueName><value>{c}</value></geocode>"
                  for c in codes)
    refs = f"<references>{references}</references>" if references else ""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">'
        f"<identifier>{identifier}</identifier><sender>{sender}</sender>"
        f"<sent>{sent.strftime(fmt)}</sent><status>Actual</status><msgType>{msg_type}</msgType>"
        f"<scope>Public</scope>{refs}<info><language>zh-CN</language><category>Met</category>"
        "<event>暴雨</event><urgency>Immediate</urgency><severity>Extreme</severity>"
        "<certainty>Likely</certainty>"
        f"<expires>{(sent + timedelta(hours=hours)).strftime(fmt)}</expires>"
        "<senderName>华容县气象台</senderName><headline>华容县气象台发布暴雨红色预警信号</headline>"
        "<description>预计未来3小时降雨量将达100毫米以上。</description>"
        "<parameter><valueName>level</valueName><value>红色</value></parameter>"
        f"<area><areaDesc>华容县</areaDesc>{geo}</area></info></alert>"
    ).encode()


def save_figures(figures: dict[str, object]) -> None:
    """Print a test's measured figures; append them to $WARNBUS_FAULT_RESULTS when set."""
    line = json.dumps(figures, ensure_ascii=False)
    print("FIGURES", line)
    if path := os.environ.get("WARNBUS_FAULT_RESULTS"):
        with open(path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
