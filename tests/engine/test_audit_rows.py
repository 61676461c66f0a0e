"""The audit stream as the 叫应 record reads it: every attempt with all of its fields."""

from __future__ import annotations

from redis.asyncio import Redis as AsyncRedis

from warnbus.domain.models import (
    Attempt,
    Delivery,
    DeliveryKind,
    Level,
    Outcome,
    TargetKind,
    delivery_id_for,
)
from warnbus.domain.states import DeliveryState
from warnbus.state import keys
from warnbus.state.audit import audit_row
from warnbus.state.store import SendRecord, Store

ATTEMPT = {"ev": "attempt", "at": "100.5", "d": "dl_1", "tg": "p_1", "ch": "sms", "st": "10",
           "k": "warning", "n": "2", "o": "failed-temp", "s": "retry", "x": "503 | busy"}


def test_a_packed_attempt_reads_as_its_fields() -> None:
    packed = {b"ev": b"attempt", b"at": b"100.5",
              b"a": b"dl_1|p_1|sms|10|warning|2|failed-temp|retry", b"x": b"503 | busy"}
    assert audit_row("1-0", packed) == {**ATTEMPT, "id": "1-0"}


def test_entries_written_field_by_field_read_as_before() -> None:
    old = {k.encode(): v.encode() for k, v in ATTEMPT.items()}
    assert audit_row("1-1", old) == {**ATTEMPT, "id": "1-1"}
    ack = {b"ev": b"ack", b"at": b"1", b"tg": b"p_1", b"via": b"sms", b"d": b"", b"by": b""}
    assert audit_row("2-0", ack)["via"] == "sms"


async def test_recorded_attempts_come_back_in_full(redis: AsyncRedis) -> None:
    store = Store(redis)
    cid = "cp_audit"
    await redis.hset(keys.campaign(cid).meta, mapping={"state": "active"})
    d = Delivery(delivery_id_for(cid, "al_1", "人员-1", "voice", 0), cid, "al_1", "人员-1",
                 TargetKind.PERSON, "voice", 0, DeliveryKind.WARNING, Level.RED, "+8613800000000",
                 "预警", 99.0)
    await store.record([
        SendRecord(d, Attempt(d.id, 1, "voice", 100.0, Outcome.ACCEPTED, provider_id="CA1"),
               DeliveryState.SENT),
        SendRecord(d, Attempt(d.id, 2, "voice", 101.0, Outcome.FAILED_TEMP, error="a|b"),
               DeliveryState.RETRY),
    ], 101.5)
    rows = await store.audit(cid)
    assert [(r["d"], r["tg"], r["ch"], r["st"], r["k"], r["n"], r["o"], r["s"], r["x"])
            for r in rows] == [
        (d.id, "人员-1", "voice", "0", "warning", "1", "accepted", "sent", "CA1"),
        (d.id, "人员-1", "voice", "0", "warning", "2", "failed-temp", "retry", "a|b"),
    ]
    assert await store.audit_after(cid, rows[0]["id"], 10) == rows[1:]


def test_a_packed_field_that_does_not_split_in_eight_is_kept_whole() -> None:
    odd = {b"ev": b"attempt", b"a": b"dl_1|p|1|sms|0|warning|1|accepted|sent", b"x": b""}
    row = audit_row("3-0", odd)
    assert row["a"] == "dl_1|p|1|sms|0|warning|1|accepted|sent" and "tg" not in row
