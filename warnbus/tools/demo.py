"""`warnbus demo`: a red rainstorm warning for the sample county, 叫应 live, then the summary.

Runs the real engine on the embedded default (Redis and broker started here), serves the
HTTP API (ack links are real HTTP), and lets simulated officers confirm through their signed
links. The clock is compressed so the 20-minute red timeline runs in about a minute.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec
from aiohttp import web
from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Table

from channels.sim.officers import OfficerModel
from warnbus.domain.models import Alert, Info
from warnbus.domain.states import AuditEvent, DeliveryState
from warnbus.flow.credentials import ENGINE
from warnbus.flow.feedback_view import Tally, feedback_tallies
from warnbus.flow.intake import accept
from warnbus.flow.record import alert_view, summary
from warnbus.ingest import parse_cap
from warnbus.registry import default_registry_path, load_registry
from warnbus.runtime.app import App, build_app
from warnbus.runtime.brokerauth import BrokerAccounts
from warnbus.runtime.clock import ScaledClock
from warnbus.runtime.config import EngineSettings, ServerSettings, Settings
from warnbus.runtime.logs import configure_logging
from warnbus.runtime.services import free_port, start_mosquitto
from warnbus.tools.simulation import ProviderWorld, start_providers

# Beside the bundled county: config/ in a checkout, warnbus/_config in a wheel.
ALERTS = default_registry_path().parent / "alerts"


def load_bundled(name: str, now: float, hours: float = 6) -> Alert:
    """A bundled alert with its times moved to now (the files carry fixed example times)."""
    from datetime import datetime, timedelta, timezone

    alert = parse_cap((ALERTS / name).read_bytes())
    tz = timezone(timedelta(hours=8))
    t = datetime.fromtimestamp(now, tz).replace(microsecond=0)
    infos = tuple(
        msgspec.structs.replace(
            i, effective=t, onset=t if i.onset else None,
            expires=t + timedelta(hours=hours) if i.expires else None)
        for i in alert.infos
    )
    return msgspec.structs.replace(alert, sent=t, infos=infos)


def _progress_view(view: dict[str, Any], sent: Counter[str], phase: str, clock_s: float) -> Group:
    c = view["counts"]
    grids = view["grids"]
    n_grids = sum(grids.values()) or 1
    prog = Progress(TextColumn("{task.description:>14}"), BarColumn(bar_width=40),
                    TextColumn("{task.completed:>5}/{task.total:<5}"))
    total_t = max(c["targets"], 1)
    prog.add_task("已发送 sent", total=total_t, completed=min(c["sent"], total_t))
    prog.add_task("已确认 confirmed", total=n_grids,
                  completed=grids.get("confirmed", 0) + grids.get("taken_over", 0))
    prog.add_task("未叫醒 unreached", total=n_grids, completed=grids.get("unreached", 0))
    t = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    for col in ("首轮", "重拨", "升级", "喇叭", "解除", "确认 dtmf/sms/wecom/link"):
        t.add_column(col, justify="right")
    acks = "/".join(str(sent[f"ack:{v}"]) for v in ("dtmf", "sms", "wecom", "link"))
    t.add_row(str(sent["warning"] + sent["update"]), str(sent["redial"]),
              str(sent["escalation"]), str(sent["speaker"]), str(sent["cancel"]), acks)
    states = "  ".join(f"{k} {v}" for k, v in sorted(grids.items()))
    head = f"[bold]{phase}[/bold]   叫应时钟 +{int(clock_s // 60)}分{int(clock_s % 60):02d}秒"
    sites = "  ".join(f"{k} {v}" for k, v in sorted(view.get("sites", {}).items()))
    return Group(head, prog, t, f"网格 grids: {states}",
                 *([f"隐患点等 sites: {sites}"] if sites else []))


class AuditCounter:
    """Counts a campaign's audit events as they come (attempts by kind, acks by channel)."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.last = ""
        self.counts: Counter[str] = Counter()

    async def update(self, campaign_id: str) -> Counter[str]:
        while True:
            rows = await self.app.ctx.store.audit_after(campaign_id, self.last, 2000)
            if not rows:
                return self.counts
            for row in rows:
                ev = row.get("ev", "")
                if ev == AuditEvent.ATTEMPT and row.get("s") in DeliveryState.REACHED:
                    ch = row.get("ch", "")
                    self.counts["speaker" if ch == "loudspeaker" else row.get("k", "")] += 1
                elif ev == AuditEvent.ACK:
                    self.counts["ack:" + row.get("via", "")] += 1
                self.last = row["id"]


async def run_demo(*, fast: bool = False, port: int = 0, seed: int = 7,
                   providers: str = "twilio") -> int:
    console = Console()
    # The live view is the demo's output; the engine's own log lines would scroll it away.
    configure_logging(level="warning", stream=sys.stderr)
    factor = 60.0 if fast else 20.0
    tmp = Path(tempfile.mkdtemp(prefix="warnbus-demo-"))
    port = port or free_port()
    base = f"http://127.0.0.1:{port}"
    registry = load_registry(default_registry_path())
    # Not open to anonymous clients: the engine and each speaker log in with their own account.
    accounts = BrokerAccounts.generate((d.id, d.region) for d in registry.data.devices.values())
    broker = start_mosquitto(tmp / "mqtt", accounts=accounts)
    console.print(f"[dim]started {broker.description}[/dim]")
    officers = OfficerModel(seed=seed, responsive=0.85, per_message=0.55, unreachable=0.02,
                            delay_s=(0.3, 3.0), reports=0.4)
    clock = ScaledClock(factor)
    world = await start_providers(providers, registry.data, base_url=base,
                                  mqtt_url=broker.url, officers=officers, time_factor=factor,
                                  device_passwords=accounts.device_passwords, clock=clock.now)
    settings = Settings(
        data_dir=str(tmp), mqtt_url=broker.url,
        server=ServerSettings(port=port),
        engine=EngineSettings(clock_factor=factor, tick_s=0.2, sweep_s=5.0, lease_s=20 * factor),
        routes=world.routes, limits=world.limits,
    )
    app = await build_app(settings, channels=world.channels, clock=clock,
                          registry=registry, base_url=base)
    for svc in app.started:
        console.print(f"[dim]started {svc.description}[/dim]")
    console.print(f"[dim]simulators: {world.description} · {len(registry.data.devices)} "
                  f"speakers on {broker.display_url}[/dim]")
    runner = web.AppRunner(_web(app), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    console.print(f"API: {base}/api/v1  (token {app.api_token})  ·  时钟压缩 {factor:g}×")
    await app.engine.start()
    try:
        return await _script(app, world, console)
    finally:
        await runner.cleanup()
        await app.close()
        try:
            await asyncio.wait_for(world.stop(), 10.0)
        except Exception:  # includes the timeout
            console.print("[dim]simulators did not stop cleanly[/dim]")
        broker.stop()


def _web(app: App) -> web.Application:
    from warnbus.web.api import make_web_app

    return make_web_app(app)


async def _script(app: App, world: ProviderWorld, console: Console) -> int:
    clock = app.ctx.clock
    t0 = clock.now()
    alert = load_bundled("demo-rainstorm-red.xml", t0)
    info: Info | None = alert.primary_info()
    console.print(f"[bold red]{info.headline if info else alert.identifier}[/bold red]")
    res = await accept(app.ctx, alert, ENGINE)
    console.print(f"accepted {res.alert_id} → campaign {res.campaign_id}, {res.targets} targets")
    policy = app.ctx.rules.policy_for(app.ctx.rules.level_of(alert))
    end_s = (policy.ack_deadline_s or 0) + policy.redial_window_s + len(policy.chain) * (
        policy.step_s or 0) + 60
    update_at, cancel_at = end_s * 0.45, end_s
    phase, updated, cancelled = "红色预警 叫应中", False, False
    started = time.monotonic()
    counter = AuditCounter(app)
    with Live(console=console, refresh_per_second=4, transient=False) as live:
        while True:
            elapsed = clock.now() - t0
            if not updated and elapsed >= update_at:
                upd = load_bundled("demo-rainstorm-red-update.xml", clock.now())
                await accept(app.ctx, upd, ENGINE)
                updated, phase = True, "预警更新 Update · 叫应继续"
            if not cancelled and elapsed >= cancel_at:
                cancel = load_bundled("demo-rainstorm-red-cancel.xml", clock.now())
                await accept(app.ctx, cancel, ENGINE)
                cancelled, phase = True, "预警解除 Cancel"
                cancel_seen = time.monotonic()
            view = await alert_view(app.ctx, res.alert_id)
            counts = await counter.update(res.campaign_id)
            live.update(_progress_view(view, counts, phase, elapsed))
            if cancelled and time.monotonic() - cancel_seen > 3:
                break
            if time.monotonic() - started > 150:
                console.print("[red]demo did not finish in time[/red]")
                return 1
            await asyncio.sleep(0.25)
    await _print_summary(app, world, res.alert_id, console)
    return 0


async def _print_summary(app: App, world: ProviderWorld, alert_id: str, console: Console
                         ) -> None:
    s = await summary(app.ctx, alert_id)
    ttc = s["time_to_confirm_s"]
    console.rule("叫应 summary")
    med = f"{ttc['median']:.0f}s" if ttc["median"] is not None else "-"
    p90 = f"{ttc['p90']:.0f}s" if ttc["p90"] is not None else "-"
    console.print(f"confirmed persons: {s['confirmed']}   time to confirm: median {med}, p90 {p90}")
    t = Table("township 乡镇", "grids", "confirmed", "taken over", "未叫醒")
    for name, row in s["per_township"].items():
        t.add_row(name, str(row["grids"]), str(row["confirmed"]), str(row["taken_over"]),
                  str(row["unreached"]))
    console.print(t)
    st = s["sites"]
    console.print(f"sites (reservoirs, ponds, danger zones ...): {st['sites']}   confirmed "
                  f"{st['confirmed']}, taken over {st['taken_over']}, 未叫醒 {st['unreached']}")
    un = s["unreached"]
    console.print(f"未叫醒 list ({len(un)} grids and sites):")
    for r in un[:15]:
        console.print(f"  {r['grid_id']} {r['grid']}  网格员 {r['officer_name']} "
                      f"{r['officer_phone']}  (last called: {r['last_called_name']})")
    if len(un) > 15:
        console.print(f"  … and {len(un) - 15} more (warnbus record {alert_id})")
    played = sum(1 for cmds in world.speakers.played.values() if cmds)
    silent = [d for d, cmds in world.speakers.played.items() if not cmds]
    console.print(f"loudspeakers that played: {played}/{len(world.speakers.played)}; "
                  f"did not play: {', '.join(silent[:10]) or '-'}")
    acks = Counter({k[4:]: v for k, v in (await AuditCounter(app).update(s["campaign_id"])).items()
                    if k.startswith("ack:")})
    console.print("confirmed by: " + ", ".join(f"{k} {v}" for k, v in sorted(acks.items())))
    fb = (await feedback_tallies(app.ctx, s["campaign_id"])).get("", Tally())
    console.print(f"反馈 feedback: 已转移 {fb.evacuated} 人 · 已报送 {fb.reported} · "
                  f"待报送 {fb.due} · 逾期 {fb.overdue} · 险情 {fb.hazards}")
