"""What the cyclic garbage collector has to walk: not the registry, not the deliveries, not
the alerts kept decoded."""

from __future__ import annotations

import gc
import sys

import msgspec
import pytest

from tests.engine.helpers import make_harness
from warnbus.domain.models import (
    Ack,
    AckVia,
    Alert,
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
from warnbus.ingest import alert_to_json, parse_cap
from warnbus.runtime.engine import SWITCH_INTERVAL_S
from warnbus.state.queue import LaneEntry, TimerEntry
from warnbus.state.store import SendRecord
from warnbus.tools.bench.hostile_loads import Target as LoadTarget
from warnbus.tools.bench.hostile_loads import build


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
        SendRecord(d, Attempt("dl_1", 1, "sms", 0.0, Outcome.ACCEPTED), DeliveryState.SENT),
    ]
    for r in records:
        assert not gc.is_tracked(r), type(r).__name__
    # Decoded ones too: the lanes decode every delivery they read.
    assert not gc.is_tracked(msgspec.msgpack.decode(msgspec.msgpack.encode(d), type=Delivery))


def test_a_parsed_alert_gives_the_collector_nothing_to_walk() -> None:
    """The largest accepted alert (1,000 areas, a ~150,000-point polygon), as parsed and as
    decoded from Redis: kept for the planner, its areas were walked by every full collection
    of the engine while it was kept."""
    villages = tuple(f"430623{t:03d}{v:03d}" for t in range(101, 114) for v in range(201, 208))
    body = build("max_accepted", LoadTarget("http://x", "t", villages, ()), 1, 0)[0].body
    parse_cap(body, max_bytes=len(body))  # what the first parse caches, once for all
    gc.collect()
    before = len(gc.get_objects())
    alerts = [parse_cap(body, max_bytes=len(body))]
    alerts.append(msgspec.json.decode(alert_to_json(alerts[0]), type=Alert))
    gc.collect()  # tuples of untracked values are untracked by a collection, and
    gc.collect()  # then the tuples holding those
    # What stays: a few small tuples per area and info that hold enum members (~350, was
    # ~2,100: every area, and its tuples)
    assert len(gc.get_objects()) - before < 500
    assert not any(gc.is_tracked(x) for a in alerts
                   for x in (a, a.infos[0], a.infos[0].areas[0], a.infos[0].areas[1]))


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


async def test_a_running_engine_takes_the_gil_back_from_worker_threads_soon(
    redis_url: str,
) -> None:
    """Worker threads (parsing, matching, signatures) share the GIL with the event loop: a
    running engine lets none of them keep it more than SWITCH_INTERVAL_S when the loop
    wants it back (Python's default, 5 ms, once per socket call of a loop turn)."""
    was = sys.getswitchinterval()
    h = await make_harness(redis_url)
    try:
        sys.setswitchinterval(0.005)
        await h.app.engine.start()
        assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL_S)
        assert SWITCH_INTERVAL_S <= 0.001
    finally:
        await h.app.close()
        sys.setswitchinterval(was)
