"""Lane entries hold batches of deliveries; an entry is acknowledged only when all are done."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from tests.engine.helpers import Harness, cap_alert, make_harness
from warnbus.domain.models import DeliveryKind
from warnbus.flow.credentials import ENGINE
from warnbus.flow.intake import accept
from warnbus.state import keys
from warnbus.state.queue import PER_ENTRY, decode_entry, encode_delivery

TOWNSHIP = ("430623101000",)


@pytest_asyncio.fixture
async def h(redis_url: str) -> AsyncIterator[Harness]:
    harness = await make_harness(redis_url)
    yield harness
    await harness.app.close()


async def _planned(h: Harness, channel: str) -> tuple[str, list[list[str]]]:
    """Accept a township warning, plan it, and return the channel's lane and its entries."""
    await accept(h.ctx, cap_alert(codes=TOWNSHIP), ENGINE)
    await h.app.engine.inbox_once()
    (lane,) = [lane for lane, n in (await h.ctx.lanes.depth()).items()
               if n and f"{{q:{channel}}}" in lane]
    entries = [[d.id for d in decode_entry(f)] for _i, f in await h.ctx.redis.xrange(lane)]
    return lane, entries


async def test_a_lane_entry_holds_up_to_per_entry_deliveries_of_its_lane(h: Harness) -> None:
    lane, entries = await _planned(h, "sms")
    sizes = [len(e) for e in entries]
    assert sum(sizes) > PER_ENTRY, "the township has more than one entry's worth of officers"
    assert all(n == PER_ENTRY for n in sizes[:-1]) and 0 < sizes[-1] <= PER_ENTRY
    ids = [i for e in entries for i in e]
    assert len(set(ids)) == len(ids)
    # A read of `count` deliveries takes whole entries.
    read = await h.ctx.lanes.read("sms", "w1", 1, 0)
    assert [e.delivery.id for e in read] == entries[0]
    assert {e.entry_id for e in read} == {read[0].entry_id} and read[0].lane == lane


async def test_an_entry_with_a_delivery_in_flight_elsewhere_stays_pending(h: Harness) -> None:
    """Worker B holds one delivery of the entry under its lease: worker A sends the rest
    but leaves the entry pending; once B's lease has run out, a reclaim sends that one
    delivery (a counted possible duplicate) and nothing else of the entry again."""
    lane, entries = await _planned(h, "sms")
    read = await h.ctx.lanes.read("sms", "A", PER_ENTRY, 0)
    first = [e for e in read if e.entry_id == read[0].entry_id]
    held = first[3].delivery
    cid = held.campaign_id
    lease = h.ctx.settings.engine.lease_s
    assert (await h.ctx.store.claim({cid: [held]}, h.clock.now(), lease))[cid] == [(1, 1)]
    await h.app.engine.dispatcher.process("sms", read)
    sent = [d.id for d in h.sent("sms")]
    assert held.id not in sent and set(entries[0]) - {held.id} <= set(sent)
    pending = await h.ctx.redis.xpending_range(lane, keys.GROUP, "-", "+", 10)
    assert [p["message_id"] for p in pending] == [first[0].entry_id]
    h.clock.advance(lease + 1)
    again = await h.ctx.lanes.reclaim("sms", "C", 0)
    assert [e.delivery.id for e in again] == entries[0]
    await h.app.engine.dispatcher.process("sms", again)
    sent = [d.id for d in h.sent("sms")]
    assert sent.count(held.id) == 1 and len(sent) == len(set(sent))
    assert await h.ctx.redis.xpending_range(lane, keys.GROUP, "-", "+", 10) == []
    meta = await h.ctx.store.meta(cid)
    assert meta and meta.duplicates == 1


async def test_an_entry_of_the_one_delivery_format_is_still_sent(h: Harness) -> None:
    """Entries queued by an older version (field `d`, one delivery) are read after an upgrade."""
    lane, entries = await _planned(h, "sms")
    read = await h.ctx.lanes.read("sms", "old", PER_ENTRY, 0)  # take the first entry away
    one = read[0].delivery
    await h.ctx.redis.xadd(lane, {"d": encode_delivery(one)})
    await h.ctx.redis.xack(lane, keys.GROUP, read[0].entry_id)  # as if never batched
    await h.drain()
    sent = [d.id for d in h.sent("sms") if d.kind is DeliveryKind.WARNING]
    assert one.id in sent and sent.count(one.id) == 1
    assert set(sent) == {i for e in entries[1:] for i in e} | {one.id}


async def test_a_sweep_takes_about_count_deliveries_in_whole_entries(h: Harness) -> None:
    """What one sweep reclaims is bounded in deliveries, not entries: a rate-limited channel
    sends it well inside a lease, so it is not reclaimed again meanwhile."""
    _lane, entries = await _planned(h, "sms")
    assert len(entries) >= 2
    await h.ctx.lanes.read("sms", "dead", 10 * PER_ENTRY, 0)  # a worker reads all, then dies
    one = await h.ctx.lanes.reclaim("sms", "sweeper", 0, count=1)
    assert [e.delivery.id for e in one] == entries[0]
    rest = await h.ctx.lanes.reclaim("sms", "sweeper", 0, count=10 * PER_ENTRY)
    assert sorted(e.delivery.id for e in rest) == sorted(i for e in entries for i in e)
