"""Crashes at exact points of the engine's steps, made deterministic in-process.

A SIGKILL lands wherever it lands; these tests put the crash exactly between two writes of
one step (by making the second write fail like a dead process would), then let another
worker reclaim the step, and check that the replay finishes the job.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
import pytest_asyncio
from faultkit import FAST_POLICY, FAST_SITES

from tests.engine.helpers import Harness, cap_alert, make_harness
from warnbus.domain.models import Delivery, DeliveryKind
from warnbus.flow.credentials import ENGINE
from warnbus.flow.escalation import Deadline, decode_timer
from warnbus.flow.intake import accept
from warnbus.flow.record import record_rows
from warnbus.plugin import ProviderStatus

TOWNSHIP = ("430623101000",)


class Killed(BaseException):
    """Stands for the process dying at this point: nothing after it runs, no handler of
    errors takes it (the ticker leaves one timer's own failure to the sweep and goes on)."""


@pytest_asyncio.fixture
async def h(redis_url: str) -> AsyncIterator[Harness]:
    harness = await make_harness(redis_url, policy=str(FAST_POLICY), sites=str(FAST_SITES))
    yield harness
    await harness.app.close()


async def _deadline_timers(h: Harness) -> set[tuple[str, int]]:
    out = set()
    for m in await h.ctx.redis.zrange("wb:{t}:timers", 0, -1):
        t = decode_timer(m)
        if isinstance(t, Deadline):
            out.add((t.person_id, t.step))
    return out


async def test_kill_between_escalation_cas_and_its_messages(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    res = await accept(h.ctx, cap_alert(codes=TOWNSHIP), ENGINE)
    await h.drain()
    h.clock.advance(3.1)  # past the ack deadline: the redial goes out
    await h.drain()
    h.clock.advance(2.5)  # past the redial window: the chain starts at the next tick

    real = h.ctx.lanes.enqueue
    calls = 0

    async def dies_on_first_escalation(deliveries: Sequence[Delivery], **kw: Any) -> int:
        nonlocal calls
        if any(d.kind is DeliveryKind.ESCALATION for d in deliveries):
            calls += 1
            if calls == 1:
                raise Killed
        return await real(deliveries, **kw)

    monkeypatch.setattr(h.ctx.lanes, "enqueue", dies_on_first_escalation)
    ticker = h.app.engine.ticker
    with pytest.raises(Killed):
        await ticker.tick()
    monkeypatch.setattr(h.ctx.lanes, "enqueue", real)
    # Another worker reclaims the unacknowledged due timers and handles them again.
    await ticker.handle(await h.ctx.timers.reclaim("other-worker", 0))
    await h.drain()
    grids = await h.ctx.store.grids(res.campaign_id)
    moved = {g.holder for g in grids.values() if g.level == 1}
    assert moved, "the chain started"
    called = {d.target_id for d in h.sent() if d.kind is DeliveryKind.ESCALATION}
    timers = {p for p, step in await _deadline_timers(h) if step == 10}
    assert moved <= called, f"{len(moved - called)} escalated-to people never called"
    assert moved <= timers, f"{len(moved - timers)} without an ack deadline"


async def test_kill_between_claim_and_record_resends_once_and_counts_it(h: Harness) -> None:
    """A worker that claimed and sent, then died before recording: one counted resend."""
    res = await accept(h.ctx, cap_alert(codes=TOWNSHIP), ENGINE)
    eng = h.app.engine
    await eng.inbox_once()
    entries = await h.ctx.lanes.read("sms", "doomed", 20, 0)
    assert entries
    claims = await h.ctx.store.claim({res.campaign_id: [e.delivery for e in entries]},
                                     h.clock.now(), h.ctx.settings.engine.lease_s)
    assert all(code == 1 for code, _n in claims[res.campaign_id])
    # ... the doomed worker sends them now and dies before `record`.
    h.clock.advance(h.ctx.settings.engine.lease_s + 1)
    reclaimed = await h.ctx.lanes.reclaim("sms", "survivor", 0)
    assert len(reclaimed) == len(entries)
    await eng.dispatcher.process("sms", reclaimed)
    await h.drain()
    meta = await h.ctx.store.meta(res.campaign_id)
    assert meta and meta.duplicates == len(entries)
    ids = [d.id for d in h.sent("sms") if d.kind is DeliveryKind.WARNING]
    assert len(ids) == len(set(ids)), "the survivor sent each once"


async def test_a_call_whose_worker_died_before_its_record_is_in_the_record(h: Harness) -> None:
    """Claimed, handed to the provider (which accepted), and the worker died before recording
    it: the record shows the call with its outcome unknown at once; after the survivor's
    resend, both calls; a provider's report settles the state of another one."""
    res = await accept(h.ctx, cap_alert(codes=TOWNSHIP), ENGINE)
    cid = res.campaign_id
    eng = h.app.engine
    await eng.inbox_once()
    entries = await h.ctx.lanes.read("sms", "doomed", 20, 0)
    assert len(entries) >= 3
    claims = await h.ctx.store.claim({cid: [e.delivery for e in entries]}, h.clock.now(),
                                     h.ctx.settings.engine.lease_s)
    assert all(code == 1 for code, _n in claims[cid])
    for e in entries:  # ... the provider accepts every one, and the worker dies
        await h.channels["sms"].send(e.delivery)
    ids = {e.delivery.id for e in entries}

    async def rows_of() -> dict[str, list[dict[str, str]]]:
        out: dict[str, list[dict[str, str]]] = {}
        for r in await record_rows(h.ctx, res.alert_id):
            if r["delivery_id"] in ids and r["attempt"]:
                out.setdefault(r["delivery_id"], []).append(r)
        return {d: sorted(rs, key=lambda r: int(r["attempt"])) for d, rs in out.items()}

    rows = await rows_of()
    assert set(rows) == ids, f"{len(ids - set(rows))} calls missing from the record"
    assert all([(r["outcome"], r["state"], r["attempt"]) for r in rs] == [
        ("unknown", "sending", "1")] for rs in rows.values())
    settled = entries[0].delivery
    await eng.sink.delivery_status(cid, settled.id, settled.target_id, ProviderStatus.DELIVERED)
    h.clock.advance(h.ctx.settings.engine.lease_s + 1)
    await eng.dispatcher.process("sms", await h.ctx.lanes.reclaim("sms", "survivor", 0))
    await h.drain()
    rows = await rows_of()
    assert [(r["outcome"], r["state"]) for r in rows[settled.id]] == [("unknown", "delivered")]
    for d in ids - {settled.id}:
        assert [(r["attempt"], r["outcome"]) for r in rows[d]] == [
            ("1", "unknown"), ("2", "accepted")], rows[d]
    calls = Counter(d.id for d in h.sent("sms") if d.id in ids)
    assert all(len(rows[d]) == calls[d] for d in ids), "a row per provider call"
