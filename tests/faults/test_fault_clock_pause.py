"""Timers by absolute due time: a restart after a long pause fires each overdue timer once.

The engine is stopped after the first wave; an hour passes (every ack deadline, redial time
and escalation step of the fast policy is long overdue); a new engine starts on the same Redis.
Each overdue timer fires exactly once: one redial per person and channel, one escalation per
grid and level, not one per missed tick; and the chain still gives each new person their full
step deadline (counted from when they were called, not from the pause).
"""

from __future__ import annotations

from collections import Counter

import pytest
from faultkit import FAST_POLICY, FAST_SITES

from tests.engine.helpers import cap_alert, make_harness
from warnbus.domain.models import DeliveryKind
from warnbus.flow.credentials import ENGINE
from warnbus.flow.intake import accept

pytestmark = pytest.mark.timeout(60)


async def test_overdue_timers_fire_once_after_a_long_pause(redis_url: str) -> None:
    h = await make_harness(redis_url, policy=str(FAST_POLICY), sites=str(FAST_SITES))
    res = await accept(h.ctx, cap_alert(codes=("430623101000",)), ENGINE)
    await h.drain()
    start = h.clock.now()
    first = {d.target_id for d in h.sent("voice") if d.kind is DeliveryKind.WARNING}
    await h.app.close()  # the engine is down ...

    h2 = await make_harness(redis_url, policy=str(FAST_POLICY), sites=str(FAST_SITES),
                            start=start + 3600)
    try:
        for _ in range(5):  # ... an hour later a new one starts and ticks a few times
            await h2.drain()
        redials = Counter((d.target_id, d.channel) for d in h2.sent()
                          if d.kind is DeliveryKind.REDIAL)
        assert set(p for p, _c in redials) == first, "every primary redialled"
        assert set(redials.values()) == {1}, "once each, not once per missed tick"
        # The chain moved one level: the backups were called once and now have their own
        # full deadline (2 s in the fast policy), counted from the restart.
        esc = Counter((d.target_id, d.step) for d in h2.sent("voice")
                      if d.kind is DeliveryKind.ESCALATION)
        assert esc and set(esc.values()) == {1}
        grids = await h2.ctx.store.grids(res.campaign_id)
        assert {g.level for g in grids.values()} == {1}, "one step, not the whole chain at once"
        h2.clock.advance(2.1)
        await h2.drain()
        grids = await h2.ctx.store.grids(res.campaign_id)
        assert {g.level for g in grids.values()} == {2}, "the next step after its deadline"
        audit = await h2.ctx.store.audit(res.campaign_id)
        steps = Counter((r["g"], r["lv"]) for r in audit if r.get("ev") == "escalate")
        assert set(steps.values()) == {1}
    finally:
        await h2.app.close()
