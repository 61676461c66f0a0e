"""Broker outages with the shipped defaults: every speaker plays after the broker returns, or
its officers are on notice (issue 16, item 3).

The engine (in-process, ManualClock for its timers, breakers and deadlines) sends a red
warning for two townships (19 villages, 27 speakers) through the real loudspeaker channel
(shipped settings) to simulated speakers on a mosquitto of this test's own. The broker is
down when the warning is issued and stays down while the engine's clock moves through the
outage, a second at a time (the outage is compressed: the engine lives it on its clock,
the broker is down for the few real seconds that takes).

On the commit this started from, a 15 s outage already dead-lettered commands (the breaker's
refusals counted as attempts against `max_attempts = 5`) and no officer was ever put on notice
for a command that never went out (the playout check was scheduled after a successful send).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
import pytest_asyncio
from faultkit import save_figures, wait_for

from channels.loudspeaker import Loudspeakers
from channels.sim.speakers import SpeakerFleet
from tests.engine.helpers import Harness, cap_alert, make_harness
from warnbus.domain.models import DeliveryKind, Level, Role, delivery_id_for
from warnbus.domain.steps import Step
from warnbus.domain.targets import area_id
from warnbus.flow.credentials import ENGINE
from warnbus.flow.intake import accept
from warnbus.runtime.services import ManagedService
from warnbus.state import keys

KEY = "test-only-command-key-0123456789abcdef"
CODES = ("430623101000", "430623102000")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


def _now(cond: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return cond()
    return check


@dataclass
class Rig:
    h: Harness
    broker: ManagedService
    speaker: Loudspeakers
    fleet: SpeakerFleet
    devices: list[tuple[str, str]]  # (device id, village)


@pytest_asyncio.fixture
async def rig(redis_url: str, fresh_mosquitto_service: ManagedService) -> AsyncIterator[Rig]:
    broker = fresh_mosquitto_service
    h = await make_harness(redis_url, start=time.time())
    # The shipped channel settings: only where the broker is and the signing key.
    speaker = Loudspeakers.from_config("loudspeaker", {"url": broker.url, "command_key": KEY})
    h.app.engine.channels["loudspeaker"] = speaker
    h.app.engine.dispatcher.channels["loudspeaker"] = speaker
    h.channels["loudspeaker"] = speaker  # type: ignore[assignment]
    reg = h.ctx.registry.data
    devices = sorted((d.id, d.region) for d in reg.devices.values()
                     if d.region[:9] in {c[:9] for c in CODES})
    fleet = SpeakerFleet(broker.url, devices, play_s=(0.2, 0.5), reconnect_max_s=0.5,
                         command_key=KEY)
    await speaker.start(h.app.engine.sink)
    await fleet.start()
    try:
        yield Rig(h, broker, speaker, fleet, devices)
    finally:
        await fleet.stop()
        await h.app.close()


async def _warn_during_outage(rig: Rig, outage_s: int) -> tuple[str, str, list[str]]:
    """Stop the broker, issue the warning, live `outage_s` seconds of the engine's clock;
    return the campaign, the alert and the area commands' delivery ids."""
    h = rig.h
    await asyncio.to_thread(rig.broker.stop)
    await wait_for(_now(lambda: not rig.speaker.connected), 20, "the channel to see the outage")
    res = await accept(h.ctx, cap_alert(codes=CODES,
                                        sent=datetime.now(UTC).replace(microsecond=0)), ENGINE)
    await h.drain()
    meta = await h.ctx.store.meta(res.campaign_id)
    assert meta is not None and meta.villages
    areas = [delivery_id_for(res.campaign_id, res.alert_id, area_id(v), "loudspeaker",
                             int(Step.first_wave())) for v in meta.villages]
    for _ in range(outage_s):
        h.clock.advance(1)
        await h.drain()
    return res.campaign_id, res.alert_id, areas


async def _after_return(rig: Rig, areas: list[str], cid: str, within_s: int) -> float:
    """Start the broker; move the engine's clock until every area command went out; return
    how many seconds of its clock that took."""
    h = rig.h
    await asyncio.to_thread(rig.broker.start)
    back = h.clock.now()
    await wait_for(_now(lambda: rig.speaker.connected), 10, "the channel to reconnect")
    for _ in range(within_s):
        states = await h.ctx.store.delivery_states(cid)
        if all(states.get(d) in ("sent", "delivered") for d in areas):
            return h.clock.now() - back
        h.clock.advance(1)
        await h.drain()
    states = await h.ctx.store.delivery_states(cid)
    late = {d: states.get(d) for d in areas if states.get(d) not in ("sent", "delivered")}
    raise AssertionError(f"{len(late)} area commands not out {within_s}s after return: {late}")


async def _played(rig: Rig, cid: str) -> None:
    """Every speaker reported playout, once each."""
    online = [d for d, _v in rig.devices]

    async def all_confirmed() -> bool:
        vals = await rig.h.ctx.redis.hmget(keys.campaign(cid).tstate,
                                           [f"dev:{d}" for d in online])
        return all(v == b"delivered" for v in vals)

    await wait_for(_now(lambda: all(map(rig.fleet.is_online, online))), 20, "speakers online")
    await wait_for(all_confirmed, 30, "every speaker's playout report")
    assert all(len(rig.fleet.played[d]) == 1 for d in online), "each played once"


def _notices(h: Harness) -> list[object]:
    policy = h.ctx.rules.policy_for(Level.RED)
    return [d for ch in policy.cancel_channels for d in h.sent(ch)
            if d.kind is DeliveryKind.NOTICE]


@pytest.mark.parametrize("outage_s", [15, 60])
async def test_every_speaker_plays_after_a_broker_outage(rig: Rig, outage_s: int) -> None:
    h = rig.h
    cid, _alert, areas = await _warn_during_outage(rig, outage_s)
    states = await h.ctx.store.delivery_states(cid)
    assert not [d for d in areas if states.get(d) == "dead"], "nothing given up while down"
    late = await _after_return(rig, areas, cid, within_s=150)
    await _played(rig, cid)
    # Past the playout deadline: the speakers all played, so no officer is put on notice.
    deadline = h.ctx.rules.policy_for(Level.RED).speaker_deadline_s or 0
    h.clock.advance(deadline)
    await h.drain()
    assert not _notices(h)
    dead = await h.ctx.redis.xlen(keys.DEAD)
    assert dead == 0, "no delivery dead-lettered"
    save_figures({"test": f"broker-outage-{outage_s}s", "villages": len(areas),
                  "speakers": len(rig.devices), "out_s_after_return": round(late, 1),
                  "dead_lettered": dead, "notices": 0})


async def test_a_broker_down_past_the_playout_deadline_puts_officers_on_notice(
        rig: Rig) -> None:
    """Down longer than the red level's playout deadline (180 s): at the deadline, the grid
    officers of every village with speakers are put on notice (door to door, gong); the
    command still waits for the broker, and once it is back every speaker plays."""
    h = rig.h
    reg = h.ctx.registry
    deadline = int(h.ctx.rules.policy_for(Level.RED).speaker_deadline_s or 0)
    cid, _alert, areas = await _warn_during_outage(rig, deadline + 5)
    officers: set[str] = set()
    for dev_id, village in rig.devices:
        dev = reg.data.devices[dev_id]
        grid = reg.data.grids.get(dev.grid) if dev.grid else None
        heads = [p.id for p in reg.persons_by_role(Role.VILLAGE_HEAD) if p.region == village]
        officers |= {grid.primary} if grid else set(heads[:1])
    noticed = {d.target_id for d in _notices(h)}  # type: ignore[attr-defined]
    assert officers and noticed == officers, (
        f"{len(officers - noticed)} officers of silent villages not on notice")
    states = await h.ctx.store.delivery_states(cid)
    assert not [d for d in areas if states.get(d) == "dead"], "the command still waits"
    late = await _after_return(rig, areas, cid, within_s=150)
    await _played(rig, cid)
    save_figures({"test": "broker-outage-past-deadline", "outage_s": deadline + 5,
                  "villages": len(areas), "speakers": len(rig.devices),
                  "officers_on_notice": len(noticed), "out_s_after_return": round(late, 1)})
