"""One process's clock 600 s ahead moves nobody's deadline (issue 16, item 6).

Two engines share a Redis: one whose own clock runs 600 s ahead (as a host with a broken NTP
would), with every role asked for, and one with a right clock and the timer role. The one
ahead refuses the timer role (logged; it keeps api and worker) and works on Redis's time: the
deadlines it schedules for the first wave it sends, and the times it stamps in the audit, are
Redis's. Made to tick anyway, it fires nothing early: timers are promoted by Redis's TIME.
The right one fires each deadline when it is due, not before.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from faultkit import FAST_POLICY, save_figures, wait_for
from structlog.testing import capture_logs

from channels.testing import TestChannel, TestChannelConfig
from tests.engine.helpers import cap_alert
from warnbus.domain.models import DeliveryKind
from warnbus.flow.credentials import ENGINE
from warnbus.flow.escalation import Deadline, decode_timer
from warnbus.flow.intake import accept
from warnbus.plugin import Medium
from warnbus.runtime.app import DEFAULT_MEDIA, App, build_app
from warnbus.runtime.clock import RedisTime, SystemClock
from warnbus.runtime.config import EngineSettings, Settings
from warnbus.state import keys

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]
AHEAD_S = 600.0
ACK_DEADLINE_S = 3.0  # the fast policy's red ack deadline


async def _app(redis_url: str, clock: SystemClock, roles: tuple[str, ...]) -> App:
    settings = Settings(redis_url=redis_url, mqtt_url="mqtt://127.0.0.1:9",
                        policy=str(FAST_POLICY),
                        engine=EngineSettings(tick_s=0.05, sweep_s=0.5, concurrency=64))
    channels = {n: TestChannel(n, TestChannelConfig(medium=Medium(m)))
                for n, m in DEFAULT_MEDIA.items()}
    return await build_app(settings, clock=clock, roles=roles, channels=channels,
                           base_url="http://test")


async def test_a_process_600s_ahead_refuses_the_timer_role_and_fires_nothing_early(
    redis_url: str,
) -> None:
    ahead = await _app(redis_url, SystemClock(RedisTime(lambda: time.time() + AHEAD_S)),
                       ("api", "worker", "timer"))
    right = await _app(redis_url, SystemClock(), ("timer",))
    try:
        with capture_logs() as logs:
            await ahead.engine.start()
        assert ahead.engine.roles == {"api", "worker"}, "the timer role is refused"
        refused = [e for e in logs if "timer role is refused" in e["event"]]
        assert refused and abs(refused[0]["offset_s"] + AHEAD_S) < 1.0
        t0 = time.time()
        res = await accept(ahead.ctx, cap_alert(codes=("430623101000",),
                                                sent=datetime.now(UTC)), ENGINE)
        cid = res.campaign_id
        voice = ahead.engine.channels["voice"]
        assert isinstance(voice, TestChannel)

        async def first_wave() -> bool:
            return any(d.kind is DeliveryKind.WARNING for d in voice.sent)

        await wait_for(first_wave, 20, "the first wave")
        # Deadlines the process ahead scheduled are due on Redis's clock, not 600 s late.
        scored = await ahead.ctx.redis.zrange(keys.TIMERS, 0, -1, withscores=True)
        deadlines = [due for member, due in scored
                     if isinstance(decode_timer(member), Deadline)]
        assert deadlines and all(t0 + 2.0 < due < time.time() + ACK_DEADLINE_S + 0.5
                                 for due in deadlines), (t0, deadlines[:3])
        # Made to tick anyway, it promotes nothing before the deadline (TIME in the script).
        pending = await ahead.ctx.timers.pending()
        assert await ahead.engine.ticker.tick() == 0
        assert await ahead.ctx.timers.pending() == pending
        await right.engine.start()

        async def redialled() -> bool:
            return any(d.kind is DeliveryKind.REDIAL for d in voice.sent)

        await wait_for(redialled, 20, "the first redial")
        first_redial = time.time()
        assert first_redial >= t0 + ACK_DEADLINE_S, "no redial before its deadline"
        audit = await ahead.ctx.store.audit(cid)
        stamped = [float(r["at"]) for r in audit if "at" in r]
        assert stamped and all(t0 - 1.0 <= at <= time.time() + 1.0 for at in stamped), (
            "audit times are Redis's, not the skewed clock's")
        save_figures({"test": "clock_600s_ahead", "deadlines": len(deadlines),
                      "first_redial_after_s": round(first_redial - t0, 2),
                      "audit_events": len(stamped)})
    finally:
        await ahead.close()
        await right.close()
