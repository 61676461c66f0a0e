"""The outbound CAP feed lists messages by when they were accepted: an Update or Cancel of an
old campaign is at the top, even behind many newer campaigns."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import msgspec
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from lxml import etree

from tests.engine.helpers import T0, Harness, cap_alert, make_harness, web_client
from warnbus.domain.models import MsgType, Reference, Scope
from warnbus.flow.credentials import ENGINE
from warnbus.flow.intake import accept
from warnbus.state import keys
from warnbus.web.api import make_web_app
from warnbus.web.capfeed import entry_id

A = "{http://www.w3.org/2005/Atom}"
SENDER = "430623@qx.example.cn"


@pytest_asyncio.fixture
async def api(redis_url: str) -> AsyncIterator[tuple[TestClient, Harness]]:  # type: ignore[type-arg]
    h = await make_harness(redis_url)
    async with web_client(h) as client:
        yield client, h


def ident(n: int) -> str:
    return f"43062304100000_20260715{n:06d}_1"


async def feed(client: TestClient, limit: int) -> list[etree._Element]:  # type: ignore[type-arg]
    r = await client.get(f"/cap/feed.atom?limit={limit}")
    assert r.status == 200
    return etree.fromstring(await r.read()).findall(A + "entry")


async def test_update_and_cancel_of_an_old_campaign_top_the_feed(api) -> None:  # type: ignore[no-untyped-def]
    client, h = api
    limit = 5
    old = cap_alert(ident(0), codes=("430623101000",))
    assert (await accept(h.ctx, old, ENGINE)).created
    # Many newer campaigns: the old one falls out of the newest `limit` by creation.
    for n in range(1, 2 * limit + 1):
        h.clock.advance(60)
        a = cap_alert(ident(n), codes=("430623102000",), sent=T0 + timedelta(minutes=n))
        assert (await accept(h.ctx, a, ENGINE)).created
    h.clock.advance(60)
    upd_sent = T0 + timedelta(hours=1)
    upd = cap_alert(ident(100), msg_type=MsgType.UPDATE, codes=("430623101000",), sent=upd_sent,
                    references=(Reference(SENDER, old.identifier, "2026-07-15T13:30:00+08:00"),))
    res = await accept(h.ctx, upd, ENGINE)
    assert res.created and res.campaign_id == (await accept(h.ctx, old, ENGINE)).campaign_id
    entries = await feed(client, limit)
    assert len(entries) == limit
    top = entries[0]
    assert top.findtext(A + "id") == entry_id(upd)
    assert (top.findtext(A + "title") or "").startswith("Update: ")
    assert top.findtext(A + "updated") == "2026-07-15T06:30:00+00:00"  # the Update's sent
    link = top.find(A + "link")
    assert link is not None
    assert (link.get("href") or "").endswith(f"/cap/alerts/{upd.alert_id}.xml")
    r = await client.get(f"/cap/alerts/{upd.alert_id}.xml")
    assert r.status == 200
    # The rest: the newest other messages, newest first; the old Alert itself is not listed.
    ids = [e.findtext(A + "id") for e in entries[1:]]
    newer = [cap_alert(ident(n), sent=T0 + timedelta(minutes=n)) for n in range(2 * limit, 0, -1)]
    assert ids == [entry_id(a) for a in newer[: limit - 1]]
    assert entry_id(old) not in ids

    # A Cancel later still: first, above the Update (a fresh client: the feed is cached).
    h.clock.advance(60)
    cancel = cap_alert(ident(101), msg_type=MsgType.CANCEL, codes=("430623101000",),
                       sent=upd_sent + timedelta(minutes=5),
                       references=(Reference(SENDER, upd.identifier, "2026-07-15T14:30:00+08:00"),))
    assert (await accept(h.ctx, cancel, ENGINE)).created
    other = TestClient(TestServer(make_web_app(h.app)))
    await other.start_server()
    try:
        entries = await feed(other, limit)
        doc = etree.fromstring(await (await other.get(f"/cap/feed.atom?limit={limit + 1}")).read())
    finally:
        await other.close()
    assert [e.findtext(A + "id") for e in entries[:2]] == [entry_id(cancel), entry_id(upd)]
    assert (entries[0].findtext(A + "title") or "").startswith("Cancel: ")
    assert entries[0].findtext(A + "updated") == "2026-07-15T06:35:00+00:00"
    assert doc.findtext(A + "updated") == "2026-07-15T06:35:00+00:00"  # the newest message


async def test_restricted_messages_do_not_shorten_the_feed(api) -> None:  # type: ignore[no-untyped-def]
    """Hidden messages are skipped, and the feed still fills up to its limit."""
    client, h = api
    for n in range(3):
        h.clock.advance(60)
        await accept(h.ctx, cap_alert(ident(n), sent=T0 + timedelta(minutes=n)), ENGINE)
    for n in range(3, 8):
        h.clock.advance(60)
        hidden = msgspec.structs.replace(cap_alert(ident(n)), scope=Scope.RESTRICTED,
                                         restriction="internal")
        await accept(h.ctx, hidden, ENGINE)
    entries = await feed(client, 3)
    assert [e.findtext(A + "id") for e in entries] == [
        entry_id(cap_alert(ident(n))) for n in (2, 1, 0)]


async def test_messages_accepted_before_the_index_are_still_listed(api) -> None:  # type: ignore[no-untyped-def]
    """An upgrade: messages accepted by a version without the index appear at their
    campaign's creation time, among indexed ones."""
    client, h = api
    first = cap_alert(ident(1))
    await accept(h.ctx, first, ENGINE)
    await h.ctx.redis.delete(keys.MESSAGES)  # as an older version left it
    h.clock.advance(60)
    second = cap_alert(ident(2), sent=T0 + timedelta(minutes=1))
    await accept(h.ctx, second, ENGINE)
    entries = await feed(client, 10)
    assert [e.findtext(A + "id") for e in entries] == [entry_id(second), entry_id(first)]
