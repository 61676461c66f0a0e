"""What the cyclic garbage collector has to walk: not the registry, not the deliveries."""

from __future__ import annotations

import gc

import msgspec

from tests.engine.helpers import make_harness
from warnbus.domain.models import (
    Ack,
    AckVia,
    Attempt,
    Delivery,
    DeliveryKind,
    Device,
    Grid,
    Level,
    Outcome,
    Person,
    Receipt,
    Region,
    RegionLevel,
    Role,
    Target,
    TargetKind,
)
from warnbus.domain.states import DeliveryState
from warnbus.state.queue import LaneEntry, TimerEntry
from warnbus.state.store import Outcome as Stored


def test_records_without_references_are_not_tracked() -> None:
    """A province registry is ~250k of these, and a first wave allocates a delivery per
    send: tracked, each full collection walked them all (a fifth of a province wave's CPU)."""
    d = Delivery("dl_1", "cp_1", "al_1", "p_1", TargetKind.PERSON, "sms", 0,
                 DeliveryKind.WARNING, Level.RED, "+8613800000000", "text", 0.0)
    records = [
        d,
        Attempt("dl_1", 1, "sms", 0.0, Outcome.ACCEPTED),
        Receipt("SM1"),
        Ack("cp_1", "p_1", 0.0, AckVia.SMS),
        Target("p_1", TargetKind.PERSON, "430623101001", Role.PRIMARY, ("g_1",)),
        Person("p_1", "张三", Role.PRIMARY, "430623101001", "+8613800000000"),
        Grid("g_1", "一网格", "430623101001", ((29.0, 112.0), (29.1, 112.0), (29.0, 112.0)),
             "p_1"),
        Region("430623101001", "村", RegionLevel.VILLAGE, "430623101000"),
        Device("d_1", "喇叭", "430623101001"),
        LaneEntry("lane", b"1-0", d),
        TimerEntry(b"1-0", b"m"),
        Stored(d, Attempt("dl_1", 1, "sms", 0.0, Outcome.ACCEPTED), DeliveryState.SENT),
    ]
    for r in records:
        assert not gc.is_tracked(r), type(r).__name__
    # Decoded ones too: the lanes decode every delivery they read.
    assert not gc.is_tracked(msgspec.msgpack.decode(msgspec.msgpack.encode(d), type=Delivery))


async def test_a_running_engine_keeps_its_startup_heap_out_of_collections(
    redis_url: str,
) -> None:
    h = await make_harness(redis_url)
    try:
        await h.app.engine.start()
        assert gc.get_freeze_count() > 10_000  # the registry, the index, the modules
    finally:
        await h.app.close()
    assert gc.get_freeze_count() == 0, "a stopped engine's garbage must be collectable"
