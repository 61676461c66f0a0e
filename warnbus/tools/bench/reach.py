"""`warnbus bench reach`: how soon every primary officer's first call is placed, against the
bound the configured provider rates allow.

The policy's `voice` is a route over two accounts with the example rates of issue 18 (Aliyun
100 calls/s and Tencent Cloud 5/s) and their providers' per-number limits; SMS, WeCom and the
loudspeakers go out at the same time, as in a red first wave. The engine spreads the wave
over the accounts by rate (`flow.routes`). `reach_s` runs from the warning's acceptance
until the last primary officer's first call was handed to its account; the bound is the
number of those officers over the sum of the rates, and `reach_ratio` the one over the other
(target <= 1.1).

At night (23:00 Beijing) after an earlier warning that night, Tencent's one call a night per
number refuses the officers of its share: the engine takes Aliyun for them before sending
(`night_*`; `night_rerouted` calls moved). The accounts are test channels that declare the
rates: what is measured is the engine's spread and limits, not a provider's latency.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec

from channels.testing import TestChannel, TestChannelConfig
from warnbus.domain.models import Alert, DeliveryKind, MsgType, Reference
from warnbus.domain.states import DeliveryState
from warnbus.flow.credentials import ENGINE
from warnbus.flow.intake import accept
from warnbus.plugin import Channel, Medium
from warnbus.registry import Registry, default_registry_path, load_registry
from warnbus.runtime.app import App, build_app
from warnbus.runtime.clock import ScaledClock
from warnbus.runtime.config import LimitSettings, Preset, Settings
from warnbus.state.numberlimits import CHINA
from warnbus.tools.bench.alerts import geocode_area, red_alert
from warnbus.tools.bench.env import BenchEnv, BenchError, close_app
from warnbus.tools.bench.fanout import PROVINCE_CODE, SAMPLE_COUNTY_CODE

#: The voice accounts behind the policy's `voice`: rate and the provider whose limits apply.
ACCOUNTS: dict[str, tuple[float, Preset]] = {"voice-aliyun": (100.0, "aliyun-voice"),
                                             "voice-tencent": (5.0, "tencent-voice")}
OTHERS = {"sms": Medium.SMS, "wecom": Medium.WECOM, "loudspeaker": Medium.LOUDSPEAKER}
POLL_S = 0.005


@dataclass(frozen=True)
class ReachOptions:
    counties: tuple[int, ...]  # registry sizes: 1 is the bundled county
    runs: int
    timeout_s: float


async def run_reach(opts: ReachOptions, env: BenchEnv) -> tuple[list[dict[str, Any]],
                                                                dict[str, Any]]:
    """Every run: each registry by day and at night; one sample per run, keys per registry
    (`c1_reach_ratio`, `c10_night_reach_ratio` ...); the headline figures are the first
    registry's, `worst_reach_ratio` the worst of all."""
    samples: list[dict[str, Any]] = []
    for _ in range(opts.runs):
        sample: dict[str, Any] = {}
        for counties in opts.counties:
            reg_dir = default_registry_path() if counties == 1 else env.registry(counties)
            registry = load_registry(reg_dir)
            area = SAMPLE_COUNTY_CODE if counties == 1 else PROVINCE_CODE
            for label, night in (("", None), ("night_", _night())):
                got = await _wave(env, registry, reg_dir, area, night, opts.timeout_s)
                sample.update({f"c{counties}_{label}{k}": v for k, v in got.items()})
        c = opts.counties[0]
        sample["reach_ratio"] = sample[f"c{c}_reach_ratio"]
        sample["night_reach_ratio"] = sample[f"c{c}_night_reach_ratio"]
        sample["worst_reach_ratio"] = max(v for k, v in sample.items()
                                          if k.endswith("reach_ratio"))
        samples.append(sample)
    fixed = {"rates": {n: r for n, (r, _k) in ACCOUNTS.items()}, "target_reach_ratio": 1.1,
             "registries": list(opts.counties)}
    return samples, fixed


async def _sent_out(app: App, campaign_id: str, began: float, timeout_s: float) -> None:
    """Wait until nothing of the campaign is on a lane or being sent (twice in a row: the
    planner queues a large wave in parts)."""
    quiet = 0
    while quiet < 2:
        if time.monotonic() - began > timeout_s:
            raise BenchError(f"reach: the earlier wave not sent after {timeout_s:.0f} s")
        await asyncio.sleep(POLL_S)
        depth = sum((await app.ctx.lanes.depth()).values())
        states = await app.ctx.store.delivery_states(campaign_id)
        busy = depth or any(st in (DeliveryState.SENDING, DeliveryState.RETRY)
                            for st in states.values())
        quiet = 0 if busy else quiet + 1


def _night() -> float:
    """23:00 Beijing time, the coming night."""
    now = datetime.now(CHINA)
    night = now.replace(hour=23, minute=0, second=0, microsecond=0)
    return (night if night > now else night + timedelta(days=1)).timestamp()


def _settings(env: BenchEnv, reg_dir: Path) -> Settings:
    limits = {f"{name}-account": LimitSettings(channels=(name,), preset=kind)
              for name, (_r, kind) in ACCOUNTS.items()}
    return msgspec.structs.replace(env.settings(reg_dir), routes={"voice": tuple(ACCOUNTS)},
                                   limits=limits)


def _channels() -> dict[str, TestChannel]:
    out = {name: TestChannel(name, TestChannelConfig(medium=Medium.VOICE, rate_per_s=rate))
           for name, (rate, _k) in ACCOUNTS.items()}
    out.update({name: TestChannel(name, TestChannelConfig(medium=m))
                for name, m in OTHERS.items()})
    return out


async def _wave(env: BenchEnv, registry: Registry, reg_dir: Path, area: str,
                night: float | None, timeout_s: float) -> dict[str, Any]:
    """One first wave; at `night`, after an earlier warning an hour before (same night)."""
    await env.flush()
    data = registry.data
    officers = [p for p in (data.persons.get(pid) for pid in
                            sorted({g.primary for g in data.grids.values()})) if p and p.phone]
    if night is not None:
        await _one(env, registry, reg_dir, area, night - 3600, len(officers), timeout_s,
                   cancel=True)
    return await _one(env, registry, reg_dir, area, night, len(officers), timeout_s)


async def _one(env: BenchEnv, registry: Registry, reg_dir: Path, area: str,
               start: float | None, officers: int, timeout_s: float, *,
               cancel: bool = False) -> dict[str, Any]:
    channels = _channels()
    app = await build_app(_settings(env, reg_dir), clock=ScaledClock(1.0, start=start),
                          channels=dict[str, Channel](channels), registry=registry,
                          base_url="http://127.0.0.1:9")
    voice = {n: channels[n] for n in ACCOUNTS}
    try:
        await app.engine.start()
        alert = _sent_at(red_alert(f"bench-reach-{time.time_ns()}", geocode_area(area)),
                         app.ctx.clock.now())
        began = time.monotonic()
        res = await accept(app.ctx, alert, ENGINE)
        while (n := _first_calls(voice.values())) < officers:
            if time.monotonic() - began > timeout_s:
                raise BenchError(f"reach: {n} of {officers} first calls after "
                                 f"{timeout_s:.0f} s")
            await asyncio.sleep(POLL_S)
        reach_s = time.monotonic() - began
        states = await app.ctx.store.delivery_states(res.campaign_id)
        if cancel:
            # The earlier warning's whole first wave, the sites' people too (they are not
            # primary officers), before it is lifted: the measured night wave then finds
            # every number's night call used.
            await _sent_out(app, res.campaign_id, began, timeout_s)
            await accept(app.ctx, _cancel_of(alert), ENGINE)
            # Its 解除 too, or the measured wave's engine would find them on the lanes.
            await _sent_out(app, res.campaign_id, time.monotonic(), timeout_s)
    finally:
        await close_app(app)
    bound = officers / sum(r for r, _k in ACCOUNTS.values())
    return {"officers": officers, "reach_s": round(reach_s, 3), "bound_s": round(bound, 3),
            "reach_ratio": round(reach_s / bound, 3),
            "by_account": {n: _first_calls([c]) for n, c in voice.items()},
            # Calls an account's limit would have refused, taken by the other instead.
            "rerouted": sum(1 for st in states.values() if st is DeliveryState.REROUTED)}


def _sent_at(alert: Alert, when: float) -> Alert:
    """`alert` sent at `when` (the engine's clock: tonight's), its validity moved with it."""
    shift = datetime.fromtimestamp(when, UTC) - alert.sent
    infos = tuple(msgspec.structs.replace(
        i, effective=i.effective + shift if i.effective else None,
        expires=i.expires + shift if i.expires else None) for i in alert.infos)
    return msgspec.structs.replace(alert, sent=alert.sent + shift, infos=infos)


def _first_calls(voice: Iterable[TestChannel]) -> int:
    return sum(1 for c in voice for d in c.sent if d.kind is DeliveryKind.WARNING)


def _cancel_of(alert: Alert) -> Alert:
    """The Cancel of `alert`: the earlier warning is lifted before the measured one."""
    return msgspec.structs.replace(
        alert, identifier=alert.identifier + "-c", msg_type=MsgType.CANCEL,
        references=(Reference(alert.sender, alert.identifier, alert.sent.isoformat()),))
