"""A campaign's meta is read as a typed CampaignMeta, and a level is never guessed.

The store writes it with typed values (start, an Update's message, the Cancel) and reads it
back typed; a started campaign whose level is missing or unknown is an error wherever the
level is needed (a deadline, a Cancel's notices, a door-to-door order, the API), never the
blue policy it used to fall back to. Nothing waiting on it is lost: the work stays pending
until the state reads again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from tests.engine.helpers import T0, Harness, cap_alert, make_harness
from warnbus.domain.meta import CampaignMeta
from warnbus.domain.models import DeliveryKind, Level, MsgType, Reference, Severity
from warnbus.domain.states import CampaignState, GridState, TargetState
from warnbus.errors import CampaignStateError
from warnbus.flow.credentials import ENGINE
from warnbus.flow.doors import DoorLinks
from warnbus.flow.escalation import Deadline
from warnbus.flow.intake import accept
from warnbus.runtime.app import token_hash
from warnbus.runtime.config import TokenSettings
from warnbus.state import keys
from warnbus.web.api import make_web_app
from warnbus.web.console.actions import order_door_to_door

TOKEN = "campaign-meta-feed-token"


@pytest_asyncio.fixture
async def h(redis_url: str) -> AsyncIterator[Harness]:
    harness = await make_harness(redis_url)
    yield harness
    await harness.app.close()


def _ref(alert) -> Reference:  # type: ignore[no-untyped-def]
    return Reference(alert.sender, alert.identifier, "2026-07-15T05:30:00+08:00")


async def _meta(h: Harness, cid: str) -> CampaignMeta:
    meta = await h.ctx.store.meta(cid)
    assert meta is not None
    return meta


async def test_meta_reads_typed_through_start_update_and_cancel(h: Harness) -> None:
    first = cap_alert()
    res = await accept(h.ctx, first, ENGINE)
    planning = await _meta(h, res.campaign_id)  # accepted, not yet planned
    assert planning.state is CampaignState.PLANNING and planning.level is None
    assert planning.sender == first.sender and planning.targets == res.targets
    with pytest.raises(CampaignStateError):
        planning.require_level()
    await h.drain()
    meta = await _meta(h, res.campaign_id)
    assert meta.state is CampaignState.ACTIVE and meta.level is Level.RED
    assert meta.root == meta.latest == meta.latest_alert_id == first.alert_id
    assert meta.t0 == meta.created_at == T0.timestamp()
    assert meta.expires_at == first.expires_at().timestamp()  # type: ignore[union-attr]
    assert meta.drill is False and meta.event == "暴雨" and meta.targets > 0
    assert meta.villages and all(len(v) == 12 for v in meta.villages)
    assert meta.headline == first.infos[0].headline
    grids = await h.ctx.store.grids(res.campaign_id)
    assert meta.grid_count(GridState.CALLING) == len(grids)
    sent = {d.target_id for d in h.sent() if d.kind is DeliveryKind.WARNING}
    assert meta.target_count(TargetState.SENT) == len(sent)
    assert meta.attempts == len(h.sent()) and meta.duplicates == 0
    assert not meta.over(T0.timestamp()) and meta.over(meta.expires_at)  # type: ignore[arg-type]

    upd = cap_alert("43062304100000_20260715083000_2", msg_type=MsgType.UPDATE,
                    severity=Severity.SEVERE, level_zh="橙色", references=(_ref(first),))
    await accept(h.ctx, upd, ENGINE)
    await h.drain()
    meta = await _meta(h, res.campaign_id)
    assert (meta.latest, meta.root, meta.level) == (upd.alert_id, first.alert_id, Level.ORANGE)
    assert meta.t0 == T0.timestamp(), "an Update keeps the first wave's time"

    cancel = cap_alert("43062304100000_20260715143000_3", msg_type=MsgType.CANCEL,
                       references=(_ref(first),))
    h.clock.advance(60)
    await accept(h.ctx, cancel, ENGINE)
    await h.drain()
    meta = await _meta(h, res.campaign_id)
    assert meta.state is CampaignState.CANCELLED and meta.cancelled_by == cancel.alert_id
    assert meta.ended_at == T0.timestamp() + 60 and meta.over(0.0)
    assert meta.grid_count(GridState.CALLING) == 0
    assert meta.grid_count(GridState.CANCELLED) == len(grids)


@pytest.mark.parametrize("level", [None, "purple"])
async def test_a_started_campaign_without_a_known_level_is_an_error_never_blue(
        h: Harness, level: str | None) -> None:
    first = cap_alert()
    res = await accept(h.ctx, first, ENGINE)
    await h.drain()
    cid = res.campaign_id
    meta_key = keys.campaign(cid).meta
    if level is None:
        await h.ctx.redis.hdel(meta_key, "level")
    else:
        await h.ctx.redis.hset(meta_key, "level", level)
    with pytest.raises(CampaignStateError, match=cid):
        await h.ctx.store.meta(cid)
    before = len(h.sent())
    person = next(d.target_id for d in h.sent("sms"))
    with pytest.raises(CampaignStateError):
        await h.app.engine.ticker.deadline(Deadline(cid, person, 0))
    grid = next(iter(await h.ctx.store.grids(cid)))
    with pytest.raises(CampaignStateError):
        await order_door_to_door(h.ctx, cid, grid, "dora",
                                 DoorLinks(h.app.links.derive("door"), "http://test", 600))
    # A Cancel waits in the inbox (its 解除 notices are sent at the campaign's level).
    cancel = cap_alert("43062304100000_20260715143000_3", msg_type=MsgType.CANCEL,
                       references=(_ref(first),))
    await accept(h.ctx, cancel, ENGINE)
    with pytest.raises(CampaignStateError):
        await h.drain()
    assert len(h.sent()) == before, "nothing was sent at a guessed level"
    pending = await h.ctx.redis.xpending(keys.INBOX, keys.GROUP)
    assert pending["pending"] == 1, "the Cancel is kept for a replay, not lost"
    h.app.tokens = (TokenSettings("met", token_hash(TOKEN), roles=("feed", "officer"),
                                  senders=(first.sender,)),)
    client = TestClient(TestServer(make_web_app(h.app)))
    await client.start_server()
    try:
        r = await client.get(f"/api/v1/alerts/{res.alert_id}",
                             headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status == 500, await r.text()
        assert (await r.json())["error"]["code"] == "campaign_state"
    finally:
        await client.close()
    # Once the level reads again, a replay of the Cancel sends its notices at that level.
    h2 = await make_harness(h.ctx.settings.redis_url)
    try:
        await h2.ctx.redis.hset(meta_key, "level", "red")
        assert await h2.app.engine.inbox_once(reclaim_idle_ms=0) == 1
        await h2.drain()
        notices = [d for d in h2.sent() if d.kind is DeliveryKind.CANCEL]
        assert notices and {d.level for d in notices} == {Level.RED}
    finally:
        await h2.app.close()
