"""Provider outages: Twilio and WeCom answering 500s, 429s and timeouts for minutes.

The engine runs in-process on a manual clock with the real Twilio and WeCom channels against
their simulators behind an outage switch (`providerkit`). Proven: the breaker of each provider
account (Twilio's SMS and voice share one) opens within a bounded number of calls and then
lets one probe through per open period (no hot loop: requests are counted); retries wait on
the durable timers with jitter; after
recovery every person is reached on every channel with nothing dead-lettered; and a provider
that stays down sends its deliveries to the policy's fallback channel.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from faultkit import save_figures
from providerkit import World, start_world

from tests.engine.helpers import cap_alert
from warnbus.domain.models import Level, Person, Severity, TargetKind
from warnbus.flow.breaker import BreakerPolicy, State
from warnbus.flow.credentials import ENGINE
from warnbus.flow.escalation import Retry, decode_timer, redial_offsets
from warnbus.flow.intake import Accepted, accept
from warnbus.state import keys
from warnbus.state.queue import decode_delivery

pytestmark = pytest.mark.timeout(90)

TOWNSHIP = ("430623101000",)
POLICY = BreakerPolicy(window_s=30, min_calls=10, failure_ratio=0.5, open_s=5, max_open_s=30)


@pytest_asyncio.fixture
async def world(redis_url: str) -> AsyncIterator[World]:
    # Short request timeouts: the outage ends in requests that hang (HANG_S).
    w = await start_world(redis_url, policy=POLICY, concurrency=8, timeout_s=0.3)
    yield w
    await w.close()


def _persons(w: World, cid_targets: dict[str, object]) -> list[str]:
    return [t for t, v in cid_targets.items() if getattr(v, "kind", None) is TargetKind.PERSON]


async def _warn_while_twilio_fails(w: World) -> tuple[float, Accepted, list[Person],
                                                       set[str]]:
    """Twilio answers 500; a red warning for the township: its start, the accept, the
    people it reaches and their phones."""
    h = w.h
    w.twilio.outage.mode = "500"
    t0 = h.clock.now()
    res = await accept(h.ctx, cap_alert(codes=TOWNSHIP), ENGINE)
    await h.drain()
    targets = await h.ctx.store.targets(res.campaign_id)
    people = [p for p in map(h.ctx.person, _persons(w, targets)) if p is not None]
    phones = {p.phone for p in people if p.phone}
    assert len(phones) > 20
    return t0, res, people, phones


async def test_twilio_outage_breaker_backoff_and_recovery(world: World) -> None:
    w, h = world, world.h
    t0, _res, people, phones = await _warn_while_twilio_fails(w)
    breakers = h.app.engine.dispatcher.breakers
    # SMS and voice on one Twilio account and endpoint: one breaker (ChannelInfo.breaker_key).
    key = h.ctx.channels["sms"].breaker_key
    assert key == h.ctx.channels["voice"].breaker_key
    assert breakers.states().get(key) is State.OPEN
    # The retries wait on the timers, spread by jitter (not one herd at the same instant).
    due = [(decode_timer(m), s) for m, s in await h.ctx.redis.zrange(keys.TIMERS, 0, -1,
                                                                     withscores=True)]
    retry_due = sorted(s for t, s in due if isinstance(t, Retry))
    assert len(retry_due) > 50
    assert len(set(retry_due)) > 0.9 * len(retry_due), "jittered, not all at once"
    # Three minutes of outage: 500s, then 429 with Retry-After, then requests that hang.
    for t in range(0, 180, 5):
        w.twilio.outage.mode = "500" if t < 60 else "429" if t < 120 else "timeout"
        h.clock.advance(5)
        await h.drain()
    during = w.twilio.outage.requests
    sends = len(people) * 2  # a voice call and an SMS each
    # Without the breaker every delivery would be retried ~12 times: ~sends * 12 calls.
    # With it: two chunks per channel before it opens, then a probe per open period.
    assert during <= 2 * (2 * 8 + 12), (during, w.twilio.outage.by_mode)
    assert breakers.get(key).opened >= 3
    w.twilio.outage.mode = "up"
    for _ in range(30):
        h.clock.advance(5)
        await h.drain()
        if phones <= w.sms_to() and phones <= {r.to for r in w.twilio.calls}:
            break
    assert phones <= w.sms_to(), f"{len(phones - w.sms_to())} people got no SMS"
    assert phones <= {r.to for r in w.twilio.calls}, "everyone was called"
    dead = [(decode_delivery(f[b"d"]), f[b"e"]) for _i, f in await h.ctx.redis.xrange(keys.DEAD)]
    # The outage outlasted the first deadline (180 s): the first wave's calls and texts gave
    # up there (refused by the breaker: no attempt), and the first redial took over.
    late = [(d.channel, d.kind.value, d.step, e) for d, e in dead
            if d.step != 0 or d.retry_until is None or d.retry_until > t0 + 180]
    assert not late, late
    assert breakers.states()[key] is State.CLOSED
    print("FIGURES", {"test": "twilio-outage", "people": len(people), "sends": sends,
                      "requests_during_outage": during, "by_mode": w.twilio.outage.by_mode,
                      "opened": breakers.get(key).opened})


async def test_wecom_down_for_good_falls_back_to_sms(redis_url: str) -> None:
    # A provider that stays down past the retry window (a blue alert has no deadline) ends in
    # the fallback, on another provider.
    w = await start_world(redis_url, policy=POLICY, concurrency=8)
    try:
        h = w.h
        w.wecom.outage.mode = "500"
        # Blue: WeCom only, with SMS as its fallback (rules/policy.toml).
        res = await accept(h.ctx, cap_alert(codes=TOWNSHIP, severity=Severity.MINOR,
                                            level_zh="蓝色"), ENGINE)
        await h.drain()
        targets = await h.ctx.store.targets(res.campaign_id)
        people = [h.ctx.person(p) for p in _persons(w, targets)]
        phones = {p.phone for p in people if p is not None and p.phone and p.wecom}
        assert len(phones) > 20
        window = h.ctx.settings.engine.retry_window_s
        t0 = h.clock.now()
        for _ in range(int(window / 5) + 40):
            h.clock.advance(5)
            await h.drain()
            if h.clock.now() < t0 + window - 5:
                assert not w.sms_to(), "WeCom is tried for the whole retry window first"
            if phones <= w.sms_to():
                break
        assert phones <= w.sms_to(), f"{len(phones - w.sms_to())} not reached by the fallback"
        assert not w.wecom_to(), "WeCom never accepted anything"
        dead = await h.ctx.redis.xlen(keys.DEAD)
        assert dead == len(phones), "each WeCom delivery dead-lettered once, visibly"
        # WeCom saw two chunks before the breaker opened, then one probe per open period
        # (5 s doubling to 30 s) while it was tried.
        probes = (h.clock.now() - t0) / POLICY.max_open_s + 5
        assert w.wecom.outage.requests <= 2 * 8 + probes, w.wecom.outage.by_mode
        print("FIGURES", {"test": "wecom-down", "people": len(phones),
                          "wecom_requests": w.wecom.outage.requests, "dead": dead})
    finally:
        await w.close()


async def test_a_60s_twilio_outage_with_default_settings_drops_nobody(redis_url: str) -> None:
    """The fault run's case: Twilio down for a minute with the shipped defaults (engine
    settings, breaker, red policy). On main 5 attempts (each breaker refusal one) ran out
    within it: people with a phone got neither call nor SMS, and their grids moved up the
    chain past them. Now every call and SMS waits for its deadline (180 s)."""
    w = await start_world(redis_url)
    try:
        h = w.h
        t0, res, people, phones = await _warn_while_twilio_fails(w)
        while h.clock.now() < t0 + 60:
            h.clock.advance(5)
            await h.drain()
        during = w.twilio.outage.requests
        w.twilio.outage.mode = "up"
        reached_at = None
        while h.clock.now() < t0 + 175:  # the first redial is at 180 s
            h.clock.advance(5)
            await h.drain()
            if phones <= w.sms_to() and phones <= {r.to for r in w.twilio.calls}:
                reached_at = h.clock.now() - t0
                break
        assert phones <= {r.to for r in w.twilio.calls}, \
            f"{len(phones - {r.to for r in w.twilio.calls})} never called"
        assert phones <= w.sms_to(), f"{len(phones - w.sms_to())} never texted"
        assert not await h.ctx.redis.xlen(keys.DEAD), "nobody given up"
        refused = [r for r in await h.ctx.store.audit(res.campaign_id)
                   if r.get("ev") == "attempt" and "circuit open" in r.get("x", "")]
        assert not refused, "a breaker's refusal is no attempt"
        # Nobody skipped: when the chain starts (nobody answers), no grid passes anyone who
        # was never reached.
        times, chain_at = redial_offsets(h.ctx.rules.policy_for(Level.RED))
        for offset in (*times, chain_at):
            h.clock.set(t0 + offset)
            await h.drain()
        moved = [r for r in await h.ctx.store.audit(res.campaign_id) if r.get("ev") == "escalate"]
        assert moved and not [r for r in moved if r.get("nc")]
        save_figures({"test": "twilio-outage-60s-defaults", "people": len(people),
                      "phones": len(phones), "requests_during_outage": during,
                      "everyone_reached_after_s": reached_at, "dead": 0})
    finally:
        await w.close()
