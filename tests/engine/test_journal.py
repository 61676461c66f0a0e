"""The local journal: fsynced records, torn tails, a bound, dead processes' files; and the
confirmations of the API and ack links while Redis is down (202 journaled, then recorded)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from tests.engine.helpers import Harness, cap_alert, make_harness, web_client
from tests.waits import until
from warnbus.domain.models import AckVia
from warnbus.errors import JournalError
from warnbus.flow.credentials import ENGINE
from warnbus.flow.durable import AckOp, Op, StatusOp, replay
from warnbus.flow.intake import accept
from warnbus.runtime.journal import Journal, records
from warnbus.runtime.services import ManagedService


async def test_records_read_back_and_a_torn_tail_ends_the_file(tmp_path: Path) -> None:
    j = Journal(tmp_path, "host-1-ab", 1 << 20)
    await asyncio.gather(*(j.append(f"r{i}".encode()) for i in range(50)))  # group commits
    assert [r.decode() for r in records(j.path)] == [f"r{i}" for i in range(50)]
    with j.path.open("ab") as f:  # power lost in the middle of a write: never acknowledged
        f.write(b"\x00\x00\x00\x09\x12\x34")
    assert len(list(records(j.path))) == 50
    j.close()


async def test_a_full_journal_refuses(tmp_path: Path) -> None:
    j = Journal(tmp_path, "host-2-ab", 100)
    await j.append(b"x" * 50)
    with pytest.raises(JournalError):
        await j.append(b"x" * 50)
    assert len(list(records(j.path))) == 1
    j.close()


async def test_a_dead_process_journal_is_replayed_by_another_and_removed(tmp_path: Path) -> None:
    dead = Journal(tmp_path, "host-3-ab", 1 << 20)
    ops: list[Op] = [AckOp("cp_1", "p1", AckVia.SMS, 1.0), StatusOp("cp_1", "dl_1", "p1",
                                                                     "delivered", 2.0)]
    import msgspec

    for op in ops:
        await dead.append(msgspec.msgpack.encode(op))
    live = Journal(tmp_path, "host-4-cd", 1 << 20)
    await live.append(msgspec.msgpack.encode(AckOp("cp_2", "p2", AckVia.LINK, 3.0)))
    assert live.orphans() == []  # the dead one still holds its lock: it lives
    dead.close()  # its process ends: the lock goes with it
    applied: list[Op] = []

    async def apply(op: Op) -> None:
        applied.append(op)

    assert await replay(live, apply) == 3
    assert applied[0] == AckOp("cp_2", "p2", AckVia.LINK, 3.0) and applied[1:] == ops
    assert not dead.path.exists() and live.path.stat().st_size == 0 and not live.pending
    live.close()


@dataclass(frozen=True)
class Outage:
    """An API process (its journal's replay loop running) on a Redis a test can kill, with
    one planned campaign and a client of its HTTP API."""

    svc: ManagedService
    h: Harness
    cid: str
    client: TestClient  # type: ignore[type-arg]
    token: str


@pytest.fixture
async def outage(redis_factory: Callable[..., ManagedService],
                 tmp_path: Path) -> AsyncIterator[Outage]:
    svc = redis_factory(appendfsync="always")
    h = await make_harness(svc.url, journal_dir=str(tmp_path / "j"),
                           durable_wait_s=0.5)  # type: ignore[arg-type]
    cid = (await accept(h.ctx, cap_alert(codes=("430623101000",)), ENGINE)).campaign_id
    await h.drain()
    async with web_client(h) as client:
        h.app.engine.roles = frozenset({"api"})  # an API process: its journal's replay loop
        await h.app.engine.start()
        yield Outage(svc, h, cid, client, h.app.api_token)


async def test_acks_while_redis_is_down_are_journaled_then_recorded(outage: Outage) -> None:
    svc, h, cid, client, token = (outage.svc, outage.h, outage.cid, outage.client,
                                  outage.token)
    targets = sorted(await h.ctx.store.holders(cid))
    await asyncio.to_thread(svc.kill)
    r = await client.post("/api/v1/acks", json={"campaign_id": cid, "person_id": targets[0],
                                                "reason": "电话回拨确认"},
                          headers={"Authorization": f"Bearer {token}"})
    assert r.status == 202 and (await r.json()) == {"status": "journaled"}
    link = h.app.links.token(cid, targets[1], h.clock.now())
    r = await client.post(f"/ack/{link}", headers={"Accept": "text/html"})
    assert r.status == 200 and "已确认" in await r.text()
    h.ctx.journal.max_bytes = h.ctx.journal.size  # full: nothing more is durable
    r = await client.post(f"/ack/{h.app.links.token(cid, targets[2], h.clock.now())}")
    assert r.status == 503 and (await r.json())["error"]["code"] == "unavailable"
    await asyncio.to_thread(svc.start)

    async def both_acked() -> bool:
        return (await h.ctx.store.is_acked(cid, targets[0])
                and await h.ctx.store.is_acked(cid, targets[1]))

    await until(both_acked, "the journaled confirmations to reach Redis", within=10,
                every=0.1)
    assert not await h.ctx.store.is_acked(cid, targets[2])  # answered 503: not taken
    acks = await h.ctx.store.acks(cid)
    assert acks[targets[0]].via is AckVia.CONSOLE and acks[targets[0]].by == "generated"


async def test_reports_while_redis_is_down_are_journaled_then_recorded(outage: Outage) -> None:
    """A report entered at the console and an SMS report, while Redis is down: journaled
    (202 / kept), then in the feedback history once Redis is back, as of their arrival."""
    from warnbus.domain.feedback import FeedbackKind, Report
    from warnbus.flow.acks import record_ack

    svc, h, cid, client, token = (outage.svc, outage.h, outage.cid, outage.client,
                                  outage.token)
    sms = sorted({d.target_id for d in h.sent("sms") if d.campaign_id == cid})
    entered, texted = sms[0], sms[1]
    await record_ack(h.ctx, cid, entered, AckVia.LINK)
    phone = h.ctx.person(texted).phone
    await asyncio.to_thread(svc.kill)
    at = h.clock.now()
    r = await client.post("/api/v1/feedback", json={
        "campaign_id": cid, "person_id": entered, "kind": "evacuated", "count": 35},
        headers={"Authorization": f"Bearer {token}"})
    assert r.status == 202 and (await r.json()) == {"status": "journaled"}
    sink = h.app.engine.sink
    assert await sink.report_from("sms", phone, AckVia.SMS, Report(FeedbackKind.ZERO),
                                  "SMjournal") == []
    await asyncio.to_thread(svc.start)

    async def both_reported() -> bool:
        try:
            return len(await h.ctx.store.feedback.history(cid)) == 2
        except Exception:  # Redis is starting
            return False

    await until(both_reported, "the journaled reports to reach Redis", within=10, every=0.1)
    history = await h.ctx.store.feedback.history(cid)
    assert sorted((f.person_id, f.report.kind.value, f.via, f.at) for f in history) == sorted(
        [(entered, "evacuated", "console", at), (texted, "zero", "sms", at)])
    assert await h.ctx.store.is_acked(cid, texted)  # the SMS report confirmed them too


async def test_a_report_resent_while_redis_is_down_is_kept_once_when_it_returns(
        outage: Outage) -> None:
    """A provider resends a report (the same call's keys) while Redis is down: each is
    journaled and answered kept; once Redis is back the replay keeps one, by its event id."""
    from warnbus.domain.feedback import FeedbackKind, Report
    from warnbus.flow.acks import record_ack

    svc, h, cid = outage.svc, outage.h, outage.cid
    pid = sorted({d.target_id for d in h.sent("sms") if d.campaign_id == cid})[0]
    await record_ack(h.ctx, cid, pid, AckVia.LINK)
    await asyncio.to_thread(svc.kill)
    sink = h.app.engine.sink
    report = Report(FeedbackKind.EVACUATED, count=35)
    for _ in range(3):
        assert await sink.report(cid, pid, AckVia.DTMF, report, "call|voice|CA1")
    await asyncio.to_thread(svc.start)

    async def kept() -> int:
        try:
            return len(await h.ctx.store.feedback.history(cid))
        except Exception:  # Redis is starting
            return 0

    journal = h.ctx.journal
    assert journal is not None and journal.pending  # all three, journaled
    await until(kept, "the journaled report is recorded", within=10.0, every=0.1)
    await until(lambda: not journal.pending, "the journal is replayed", within=10.0)
    history = await h.ctx.store.feedback.history(cid)
    assert [(f.person_id, f.report.count, f.via) for f in history] == [(pid, 35, "dtmf")]
