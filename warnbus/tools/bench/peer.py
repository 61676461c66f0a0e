"""`peer`: the same first wave done the way a Python user would without warnbus, side by side.

The peer is apprise in a plain loop: for each message (the very texts and addresses warnbus
sent) one `Apprise()` with one `json://` URL to the local HTTP sink, then `notify()`; for
each loudspeaker one `mqtt://` URL to the same mosquitto, per device (apprise has no notion
of an area topic). warnbus does the same fan-out engine-only, on its durable Redis path: the
person channels POST to the same sink, the speakers get one MQTT publish per village.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from warnbus.domain.models import Alert
from warnbus.plugin import Channel, Medium
from warnbus.registry import Registry, load_registry
from warnbus.runtime.app import build_app, load_channels
from warnbus.runtime.clock import SystemClock
from warnbus.runtime.services import free_port
from warnbus.tools.bench.alerts import geocode_area, red_alert
from warnbus.tools.bench.channels import HttpSinkChannel, SendMeter
from warnbus.tools.bench.env import BenchEnv, BenchError, close_app
from warnbus.tools.bench.fanout import SAMPLE_COUNTY_CODE, first_wave

PERSON_CHANNELS = {"voice": Medium.VOICE, "sms": Medium.SMS, "wecom": Medium.WECOM}
QUICK_AREA = SAMPLE_COUNTY_CODE + "101000"  # one township (95 grids) for --quick


@dataclass(frozen=True)
class PeerOptions:
    counties: int
    runs: int
    quick: bool
    timeout_s: float


async def run_peer(opts: PeerOptions, env: BenchEnv) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    try:
        import apprise  # noqa: F401  (checked here, used in the peer's thread)
    except ImportError as e:
        raise BenchError("the peer scenario needs apprise: pip install apprise") from e
    if env.mqtt is None:
        raise BenchError("the peer scenario needs mosquitto")
    reg_dir = env.registry(opts.counties)
    registry = load_registry(reg_dir)
    code = QUICK_AREA if opts.quick else SAMPLE_COUNTY_CODE
    devices = sorted(d.id for d in registry.data.devices.values()
                     if d.region.startswith(code.rstrip("0")))
    port = free_port()
    sink_url = f"http://127.0.0.1:{port}"
    sink = _start_sink(port)
    samples = []
    try:
        await _wait_sink(sink_url, sink)
        for i in range(opts.runs):
            alert = red_alert(f"bench-peer-{i}-{time.time_ns()}", geocode_area(code))
            ours = await _warnbus(env, registry, reg_dir, alert, sink_url, opts.timeout_s)
            theirs = await asyncio.to_thread(
                naive_fanout, ours.pop("messages"), devices, sink_url, env.mqtt.port)
            counts = await asyncio.to_thread(_sink_counts, sink_url)
            sent = sum(counts.values())
            if sent != 2 * (i + 1) * theirs["peer_http_messages"]:
                raise BenchError(f"the sink got {sent} POSTs; both sides should have sent "
                                 f"{theirs['peer_http_messages']} each per run")
            sample = {**ours, **theirs}
            sample["peer_ratio"] = round(sample["peer_s"] / sample["warnbus_s"], 2)
            sample["peer_ratio_http"] = round(sample["peer_http_s"] / sample["warnbus_http_s"], 2)
            samples.append(sample)
    finally:
        sink.terminate()
        sink.wait(10)
    fixed = {"title": f"apprise in a loop vs warnbus engine-only, red warning for "
                      f"{'one township' if opts.quick else 'the sample county'}, same sink",
             "area": code, "peer": "apprise (json:// per message, mqtt:// per device)"}
    return samples, fixed


async def _warnbus(env: BenchEnv, registry: Registry, reg_dir: Path, alert: Alert,
                   sink_url: str, timeout_s: float) -> dict[str, Any]:
    await env.flush()
    channels: dict[str, Channel] = {n: HttpSinkChannel(n, m, sink_url)
                                    for n, m in PERSON_CHANNELS.items()}
    key = secrets.token_urlsafe(32)  # commands are signed, as in production
    channels |= load_channels({"loudspeaker": {"type": "mqtt-loudspeaker", "command_key": key}},
                              base_url="http://127.0.0.1:9", mqtt_url=env.mqtt_url)
    meter = SendMeter(keep=True)
    for ch in channels.values():
        meter.wrap(ch)
    app = await build_app(env.settings(reg_dir), clock=SystemClock(), channels=channels,
                          registry=registry, base_url="http://127.0.0.1:9")
    try:
        await app.engine.start()
        wave = await first_wave(app, alert, meter, timeout_s, None)
    finally:
        await close_app(app)
    if meter.failed:
        raise BenchError(f"warnbus: {meter.failed} sends to the sink or broker failed")
    http_last = max(meter.last_by_channel[n] for n in PERSON_CHANNELS if n in meter.last_by_channel)
    return {
        "deliveries": wave["handed"],
        "warnbus_s": wave["first_wave_s"],
        "warnbus_http_s": round(http_last - wave["accepted_at"], 6),
        "messages": [m for m in meter.kept if m[0] in PERSON_CHANNELS],
        "warnbus_mqtt_publishes": meter.by_channel.get("loudspeaker", 0),
    }


def naive_fanout(messages: Sequence[tuple[str, str, str]], devices: Sequence[str],
                 sink_url: str, mqtt_port: int) -> dict[str, Any]:
    """The peer: apprise, one notify per message and per device, in a loop (blocking)."""
    import apprise

    host = sink_url.removeprefix("http://")
    failed = 0
    t0 = time.perf_counter()
    for channel, address, text in messages:
        a = apprise.Apprise()
        a.add(f"json://{host}/{channel}?:to={quote(address, safe='')}")
        failed += not a.notify(body=text, title="暴雨红色预警")
    t1 = time.perf_counter()
    for device in devices:
        a = apprise.Apprise()
        a.add(f"mqtt://127.0.0.1:{mqtt_port}/wb/v1/dev/{device}/cmd?qos=1")
        failed += not a.notify(body="暴雨红色预警：请立即转移", title="暴雨红色预警")
    t2 = time.perf_counter()
    if failed:
        raise BenchError(f"the apprise peer failed {failed} notifications")
    return {"peer_s": round(t2 - t0, 6), "peer_http_s": round(t1 - t0, 6),
            "peer_mqtt_s": round(t2 - t1, 6), "peer_http_messages": len(messages),
            "peer_mqtt_publishes": len(devices)}


def _start_sink(port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "warnbus.tools.bench.sink", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _sink_counts(sink_url: str) -> dict[str, int]:
    with urllib.request.urlopen(f"{sink_url}/count", timeout=5) as resp:
        counts: dict[str, int] = json.loads(resp.read())
    return counts


async def _wait_sink(sink_url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"the HTTP sink exited with {proc.returncode}")
        try:
            await asyncio.to_thread(_sink_counts, sink_url)
            return
        except OSError:
            await asyncio.sleep(0.1)
    raise BenchError("the HTTP sink did not start")
