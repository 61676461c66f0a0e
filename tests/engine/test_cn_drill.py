"""A county red drill on the embedded default with `--providers cn`, at night.

The real channels on the official SDKs against the Aliyun and Tencent simulators, which
enforce the providers' default per-number limits with their error codes on the engine's
(compressed) clock. Tencent voice allows one call a night per number and Aliyun one a
minute: the red policy's redials (each person is called again by the account that called them
first), the escalation and an Update right after the third redial break both. The engine must
take another path before each (zero calls refused by a provider's limit), close every grid,
and the record must say which path
reached whom and why a path was skipped.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta

from aiohttp import web

from channels.sim.officers import OfficerModel
from warnbus.domain.states import DeliveryState, GridState
from warnbus.flow.credentials import ENGINE
from warnbus.flow.intake import accept
from warnbus.flow.record import alert_view, record_rows
from warnbus.flow.routes import routed
from warnbus.registry import default_registry_path, load_registry
from warnbus.runtime.app import App, build_app
from warnbus.runtime.clock import ScaledClock
from warnbus.runtime.config import EngineSettings, ServerSettings, Settings
from warnbus.runtime.services import free_port
from warnbus.state.numberlimits import CHINA
from warnbus.tools.cn_world import CnWorld, start_cn_world
from warnbus.tools.demo import load_bundled
from warnbus.web.api import make_web_app

FACTOR = 60.0
LIMIT_CODES = ("isv.BUSINESS_LIMIT_CONTROL", "LimitExceeded")


async def test_a_night_red_drill_takes_other_paths_before_every_limit(
        redis_url: str, mqtt_url: str) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    registry = load_registry(default_registry_path())
    clock = ScaledClock(FACTOR, start=_next_night())
    officers = OfficerModel(seed=11, responsive=0.8, per_message=0.5, unreachable=0.03,
                            delay_s=(0.2, 2.0))
    world = await start_cn_world(registry.data, base_url=base, mqtt_url=mqtt_url,
                                 officers=officers, time_factor=FACTOR, clock=clock.now)
    settings = Settings(redis_url=redis_url, mqtt_url=mqtt_url, server=ServerSettings(port=port),
                        engine=EngineSettings(clock_factor=FACTOR, tick_s=0.1, sweep_s=5.0,
                                              lease_s=20 * FACTOR),
                        routes=world.routes, limits=world.limits)
    app = await build_app(settings, channels=world.channels, clock=clock, registry=registry,
                          base_url=base)
    runner = web.AppRunner(make_web_app(app), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await app.engine.start()
    # One officer's calls by Aliyun are accepted, then refused by the carrier (200119 超频
    # 限呼, a limit the engine cannot know): each is re-routed when its report comes.
    data = registry.data
    carrier = next(p for g in sorted(data.grids) if (p := data.persons[data.grids[g].primary])
                   and p.phone and routed(app.ctx.channels, ["voice"], [p])[0][0]
                   == "voice-aliyun")
    assert carrier.phone
    world.aliyun.scripted[carrier.phone.removeprefix("+86")] = "carrier-limit"
    try:
        t0 = clock.now()
        res = await accept(app.ctx, load_bundled("demo-rainstorm-red.xml", t0), ENGINE)
        await _until(clock, t0 + 400)  # after the third redial (380 s): an Update
        await accept(app.ctx, load_bundled("demo-rainstorm-red-update.xml", clock.now()),
                     ENGINE)
        grids = await _all_closed(app, res.campaign_id, timeout_s=120)
        await accept(app.ctx, load_bundled("demo-rainstorm-red-cancel.xml", clock.now()),
                     ENGINE)
        await _until(clock, clock.now() + 120)
        await _settle(world)
        rows = await record_rows(app.ctx, res.alert_id)
        view = await alert_view(app.ctx, res.alert_id)
    finally:
        await runner.cleanup()
        await app.close()
        await world.stop()
    # Every grid was closed (confirmed, taken over or 未叫醒) before the Cancel.
    # The county's 777 grids, and the sites the rainstorm calls (reservoirs, danger zones).
    assert sum(1 for _s, _h, k in grids if k in data.grids) == 777
    still = [(state, holder) for state, holder, _k in grids if state not in GridState.CLOSED]
    assert still == []
    # Not one call or SMS refused by a provider's per-number limit: each was re-routed before.
    refused = [r for r in (*world.aliyun.refusals, *world.tencent.refusals)
               if r[1].startswith(LIMIT_CODES)]
    assert refused == [], refused[:5]
    calls = len(world.aliyun.calls) + len(world.tencent.calls)
    assert len(world.tencent.calls) > 0 and calls > 700
    # The record says why a path was skipped and where the message went instead ...
    skipped = [r for r in rows if r["state"] == DeliveryState.REROUTED]
    reasons = {r["detail"] for r in skipped}
    assert "skipped voice-tencent: 1 call at night (22:00-08:00) -> voice-aliyun" in reasons
    assert "skipped voice-aliyun: 1 call in 1 min -> voice-tencent" in reasons  # the Update
    assert all(r["outcome"] == "limited" and r["channel"] in r["detail"] for r in skipped)
    # ... and which path reached whom: the re-routed person's call on the other account.
    moved = next(r for r in skipped if r["detail"].endswith("-> voice-aliyun"))
    assert any(r["person_id"] == moved["person_id"] and r["channel"] == "voice-aliyun"
               and r["step"] == moved["step"] and r["state"] in DeliveryState.REACHED
               for r in rows)
    assert {r["confirmed_via"] for r in rows} >= {"dtmf", "sms"}
    # The carrier's refusal after Aliyun accepted: the same call went by Tencent.
    refused_by_carrier = [c for c in world.aliyun.calls if c.number == carrier.phone[3:]]
    assert refused_by_carrier and {c.state for c in refused_by_carrier} == {"200119"}
    assert any(c.number == carrier.phone for c in world.tencent.calls)
    assert view["counts"]["failed"] == 0, "a skipped call is never the person's failure"


def _next_night() -> float:
    """The coming 23:00 in Beijing: a night, and a warning still valid by the wall clock
    (the loudspeakers' commands carry real times)."""
    now = datetime.now(CHINA)
    night = now.replace(hour=23, minute=0, second=0, microsecond=0)
    return (night if night > now else night + timedelta(days=1)).timestamp()


async def _until(clock: ScaledClock, when: float) -> None:
    await asyncio.sleep(max(0.0, when - clock.now()) / FACTOR)


async def _all_closed(app: App, campaign_id: str, timeout_s: float
                      ) -> list[tuple[GridState, str, str]]:
    """The grids and sites (state, holder, id) once all are closed, or as they are after
    `timeout_s` (a loaded machine runs behind the compressed clock)."""
    deadline = time.monotonic() + timeout_s
    while True:
        grids = [(g.state, g.holder, k)
                 for k, g in (await app.ctx.store.grids(campaign_id)).items()]
        if (grids and all(s in GridState.CLOSED for s, _h, _k in grids)) or (
                time.monotonic() > deadline):
            return grids
        await asyncio.sleep(0.5)


async def _settle(world: CnWorld) -> None:
    await world.aliyun.wait_idle(5.0)
    await world.tencent.wait_idle(5.0)
