"""Per-number limits in the dispatcher: a call that would exceed one goes by another path."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from channels.sim.cn_limits import NumberLimits, Window
from channels.sim.officers import OfficerModel
from channels.sim.tencent_sim import TencentSimulator
from channels.tencent_voice import TencentVoice
from channels.testing import TestChannel, TestChannelConfig
from tests.engine.helpers import T0, Harness, cap_alert
from warnbus.domain.models import DeliveryKind, Outcome
from warnbus.domain.states import DeliveryState
from warnbus.flow.credentials import ENGINE
from warnbus.flow.intake import accept
from warnbus.flow.record import alert_view, record_rows
from warnbus.plugin import Medium
from warnbus.runtime.app import build_app
from warnbus.runtime.clock import ManualClock
from warnbus.runtime.config import EngineSettings, LimitSettings, Settings

TTS = "{1}预警。{2}{3}{4}{5}。确认收到请按1。"
CODE = "LimitExceeded.DeliveryFrequencyLimit"
NOBODY = OfficerModel(responsive=0.0, per_message=0.0, unreachable=0.0, delay_s=(0.01, 0.02))
MEDIA = {"voice-a": (Medium.VOICE, 2000.0), "voice-b": (Medium.VOICE, 100.0),
         "sms": (Medium.SMS, None), "wecom": (Medium.WECOM, None),
         "loudspeaker": (Medium.LOUDSPEAKER, None)}


@pytest_asyncio.fixture
async def h(redis_url: str) -> AsyncIterator[Harness]:
    """The policy's `voice` over two accounts: voice-a (2,000/s, Tencent voice's default
    limits) and voice-b (100/s, no per-number limits)."""
    clock = ManualClock(T0.timestamp())
    channels = {name: TestChannel(name, TestChannelConfig(medium=m, rate_per_s=rate))
                for name, (m, rate) in MEDIA.items()}
    settings = Settings(redis_url=redis_url, mqtt_url="mqtt://127.0.0.1:9",
                        engine=EngineSettings(),
                        routes={"voice": ("voice-a", "voice-b")},
                        limits={"tc": LimitSettings(channels=("voice-a",),
                                                    preset="tencent-voice")})
    app = await build_app(settings, clock=clock, channels=channels, base_url="http://test")
    await app.engine.setup()
    harness = Harness(app, clock, channels)
    yield harness
    await app.close()


async def test_calls_past_a_limit_go_by_the_other_account_and_say_why(h: Harness) -> None:
    res = await accept(h.ctx, cap_alert(), ENGINE)
    await h.drain()
    a, b = h.sent("voice-a"), h.sent("voice-b")
    persons = len(a) + len(b)
    assert persons > 40 and len(b) == round(persons * 100 / 2100), "spread by rate"
    assert {d.target_id for d in a}.isdisjoint({d.target_id for d in b}), "one call each"
    first_on_a = {d.target_id for d in a}
    t0 = h.clock.now()
    for offset in (180.0, 280.0):  # the first two redials, on the fastest account
        h.clock.set(t0 + offset)
        await h.drain()
    # Tencent's 2 calls in 10 minutes: the third call to a number on voice-a went by voice-b.
    moved = {d.target_id for d in h.sent("voice-b")
             if d.kind is DeliveryKind.REDIAL and d.target_id in first_on_a}
    assert moved and moved == first_on_a - await _confirmed(h, res.campaign_id)
    calls_a: dict[str, int] = {}
    for d in h.sent("voice-a"):
        calls_a[d.target_id] = calls_a.get(d.target_id, 0) + 1
    assert max(calls_a.values()) == 2, "voice-a never made a third call in 10 minutes"
    rows = [r for r in await record_rows(h.ctx, res.alert_id)
            if r["state"] == DeliveryState.REROUTED]
    assert {r["person_id"] for r in rows} == moved
    assert {r["outcome"] for r in rows} == {Outcome.LIMITED}
    assert {r["detail"] for r in rows} == {"skipped voice-a: 2 calls in 10 min -> voice-b"}
    view = await alert_view(h.ctx, res.alert_id)
    assert view["counts"]["failed"] == 0, "a skipped call is not the person's failure"


async def test_with_no_path_left_the_person_is_not_failed(h: Harness) -> None:
    """voice-b and SMS gone: the skipped call has nowhere to go; the record says so and the
    person stays in the 叫应 (called again at the next step), never failed for it."""
    del h.ctx.channels["voice-b"]
    del h.ctx.channels["sms"]
    res = await accept(h.ctx, cap_alert(codes=("430623101000",)), ENGINE)
    await h.drain()
    t0 = h.clock.now()
    for offset in (180.0, 280.0):
        h.clock.set(t0 + offset)
        await h.drain()
    rows = [r for r in await record_rows(h.ctx, res.alert_id)
            if r["state"] == DeliveryState.REROUTED]
    assert rows and {r["detail"] for r in rows} == {
        "skipped voice-a: 2 calls in 10 min -> no path left at this step"}
    view = await alert_view(h.ctx, res.alert_id)
    assert view["counts"]["failed"] == 0


async def _confirmed(h: Harness, campaign_id: str) -> set[str]:
    return set(await h.ctx.store.acks(campaign_id))


async def test_a_refusal_by_the_providers_own_limit_is_re_routed(redis_url: str) -> None:
    """The account's real limits are stricter than configured (here: none configured, the
    provider allows one call per 10 minutes): Tencent refuses the redial with
    LimitExceeded.DeliveryFrequencyLimit, and the call goes by the other account, recorded
    as re-routed, never as the person's failure."""
    sim = TencentSimulator("AKIDengine0000000000000000000000001", "engine-secret-key-0123456789",
                           NOBODY, sdk_app_id="1400000001", voice_templates={"3300001": TTS},
                           voice_limits=NumberLimits(windows=(Window(1, 600, CODE),)),
                           clock=lambda: clock.now())
    clock = ManualClock(T0.timestamp())
    endpoint = await sim.start()
    tc = TencentVoice.from_config("voice-tc", {
        "type": "tencent-voice", "secret_id": "AKIDengine0000000000000000000000001",
        "secret_key": "engine-secret-key-0123456789", "sdk_app_id": "1400000001",
        "endpoint": endpoint, "protocol": "http", "hook_secret": "hook-0123456789abcdef",
        "rate_per_s": 2000.0, "timeout_s": 3.0, "templates": {"default": {
            "code": "3300001", "content": TTS,
            "params": {"1": "level", **{str(i): "text" for i in range(2, 6)}}}}})
    tests = {name: TestChannel(name, TestChannelConfig(medium=m, rate_per_s=rate))
             for name, (m, rate) in MEDIA.items() if name != "voice-a"}
    settings = Settings(redis_url=redis_url, mqtt_url="mqtt://127.0.0.1:9",
                        routes={"voice": ("voice-tc", "voice-b")},
                        limits={"tc": LimitSettings(channels=("voice-tc",), preset="none")})
    app = await build_app(settings, clock=clock, channels={"voice-tc": tc, **tests},
                          base_url="http://test")
    await app.engine.setup()
    h = Harness(app, clock, {"voice-tc": tc, **tests})  # type: ignore[dict-item]
    try:
        res = await accept(h.ctx, cap_alert(), ENGINE)
        await h.drain()
        first_tc = {c.number for c in sim.calls}
        assert first_tc, "the wave was spread over both accounts"
        h.clock.set(h.clock.now() + 180.0)
        await h.drain()
        assert {n for _a, n in sim.refusals} == {CODE}, "the provider refused the redials"
        moved = {d.address for d in h.sent("voice-b") if d.kind is DeliveryKind.REDIAL}
        assert moved >= first_tc
        rows = [r for r in await record_rows(h.ctx, res.alert_id)
                if r["state"] == DeliveryState.REROUTED]
        assert len(rows) == len(first_tc)
        assert all(r["detail"].startswith("refused by voice-tc's limit: ")
                   and r["detail"].endswith("-> voice-b") for r in rows)
        assert (await alert_view(h.ctx, res.alert_id))["counts"]["failed"] == 0
    finally:
        await app.close()
        await sim.stop()


async def test_a_routes_channel_follows_the_policys_fallback_of_its_route(h: Harness) -> None:
    """The policy says `voice = "sms"` after a failure; voice-a and voice-b are `voice`."""
    rules = h.ctx.rules
    assert rules.fallback_for("voice") == "sms"
    assert rules.fallback_for("voice-a") == "sms" and rules.fallback_for("voice-b") == "sms"
    assert rules.fallback_for("sms") == "voice"  # which plan_persons spreads over the route
    assert rules.fallback_for("loudspeaker") is None


async def test_a_call_refused_after_the_provider_took_it_goes_by_the_other_account(
        h: Harness) -> None:
    """The provider accepted a call, then reported it refused under its own limit (Aliyun's
    200119 超频限呼): the same message goes by the route's other account at the same step,
    rebuilt from what the delivery's record kept (`Store.sent_delivery`)."""
    from warnbus.plugin import ProviderStatus

    res = await accept(h.ctx, cap_alert(codes=("430623101000",)), ENGINE)
    await h.drain()
    d = h.sent("voice-a")[0]
    before = len(h.sent("voice-b"))
    await h.app.engine.sink.delivery_status(res.campaign_id, d.id, d.target_id,
                                            ProviderStatus.LIMITED, "200119 超频限呼")
    await h.drain()
    moved = h.sent("voice-b")[before:]
    assert [(m.target_id, m.step, m.kind, m.tried) for m in moved] == [
        (d.target_id, d.step, d.kind, ("voice-a",))]
    # A report of a delivery the campaign never recorded moves nothing.
    await h.app.engine.sink.delivery_status(res.campaign_id, "dl_unknown", d.target_id,
                                            ProviderStatus.LIMITED, "200119 超频限呼")
    await h.drain()
    assert len(h.sent("voice-b")) == before + 1
