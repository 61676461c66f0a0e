"""The MQTT broker restarts and speakers lose their network; commands and acks still arrive.

The engine (in-process, manual clock for its timers) sends area commands through the real
loudspeaker channel to simulated speakers on a mosquitto of this test's own:

1. the broker is down when the warning is issued: the send is a transient failure and waits
   on the retry timers; once the broker is back, the retry reaches every speaker online;
2. a speaker whose network was cut during all this comes back and plays the still-valid
   warning from the retained active message;
3. the broker restarts again while speakers are playing: their playout acks are published
   after the reconnect and every speaker ends up confirmed in the campaign's record.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from channels.loudspeaker import Loudspeakers
from channels.sim.speakers import SpeakerFleet
from tests.engine.helpers import cap_alert, make_harness
from warnbus.runtime.services import ManagedService
from warnbus.state import keys

KEY = "test-only-command-key-0123456789abcdef"  # signs the commands; speakers verify

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]
TOWNSHIP = "430623101000"


async def _until(cond: Callable[[], object], what: str, within: float = 20.0) -> None:
    end = time.monotonic() + within
    while time.monotonic() < end:
        res = cond()
        if asyncio.iscoroutine(res):
            res = await res
        if res:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def test_broker_restarts_and_network_cuts(
    redis_url: str, fresh_mosquitto_service: ManagedService
) -> None:
    broker = fresh_mosquitto_service
    h = await make_harness(redis_url, start=time.time())
    speaker = Loudspeakers.from_config("loudspeaker", {
        "url": broker.url, "reconnect_min_s": 0.1, "reconnect_max_s": 0.5,
        "connect_wait_s": 0.5, "publish_timeout_s": 2.0, "command_key": KEY})
    h.app.engine.channels["loudspeaker"] = speaker
    h.app.engine.dispatcher.channels["loudspeaker"] = speaker
    h.channels["loudspeaker"] = speaker  # type: ignore[assignment]
    reg = h.ctx.registry.data
    devices = sorted((d.id, d.region) for d in reg.devices.values()
                     if d.region.startswith(TOWNSHIP[:9]))
    cut = devices[0][0]
    fleet = SpeakerFleet(broker.url, devices, play_s=(0.5, 1.0), reconnect_max_s=0.3,
                         command_key=KEY)
    await speaker.start(h.app.engine.sink)
    await fleet.start()
    try:
        from warnbus.flow.credentials import ENGINE
        from warnbus.flow.intake import accept

        await fleet.drop(cut)  # this speaker's network is cut for the whole first part
        await asyncio.to_thread(broker.stop)
        await _until(lambda: not speaker.connected, "the channel to see the outage")
        res = await accept(h.ctx, cap_alert(codes=(TOWNSHIP,),
                                            sent=datetime.now(UTC).replace(microsecond=0)), ENGINE)
        await h.drain()
        states = await h.ctx.store.delivery_states(res.campaign_id)
        areas = [d for d, st in states.items() if st == "retry"]
        assert areas, "area commands wait for a retry while the broker is down"
        await asyncio.to_thread(broker.start)
        await _until(lambda: speaker.connected, "the channel to reconnect")
        await _until(lambda: all(fleet.is_online(d) for d, _a in devices if d != cut),
                     "speakers to reconnect")
        for _ in range(10):  # retries come due on the engine's clock
            h.clock.advance(5)
            await h.drain()
            states = await h.ctx.store.delivery_states(res.campaign_id)
            if not [d for d in areas if states[d] == "retry"]:
                break
        assert all(states[d] in ("sent", "delivered") for d in areas), states
        online = [d for d, _a in devices if d != cut]
        await _until(lambda: any(fleet.played[d] for d in online), "playout to start")
        # The broker restarts while speakers play: acks are published after the reconnect.
        await asyncio.to_thread(broker.restart)
        await fleet.revive(cut)  # back on the network: the retained active message plays

        async def all_confirmed() -> bool:
            vals = await h.ctx.redis.hmget(keys.campaign(res.campaign_id).tstate,
                                           [f"dev:{d}" for d, _a in devices])
            return all(v == b"delivered" for v in vals)

        await _until(all_confirmed, "every speaker's playout report", within=30)
        assert fleet.played[cut], "the cut speaker caught up"
        assert all(len(fleet.played[d]) == 1 for d, _a in devices), "each played once"
    finally:
        await fleet.stop()
        await h.app.close()
