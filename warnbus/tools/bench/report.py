"""Figures over repeated runs (median and spread), machine facts, and the text rendering."""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

Sample = Mapping[str, Any]  # one run's figures: numbers, or dicts of numbers (match_ms)


def summarize(scenario: str, samples: Sequence[Sample], **fixed: Any) -> dict[str, Any]:
    """One JSON object: each figure's median over the runs, its [min, max] under `spread`.

    Numbers and dicts of numbers are summarised; anything else (counts that cannot vary,
    labels) is taken from the first run. `fixed` adds fields as they are.
    """
    if not samples:
        raise ValueError("no runs to summarize")
    out: dict[str, Any] = {"scenario": scenario}
    spread: dict[str, Any] = {}
    for key, first in samples[0].items():
        values = [s[key] for s in samples if key in s]
        if isinstance(first, bool) or not isinstance(first, int | float | dict):
            out[key] = first
        elif isinstance(first, dict):
            out[key], spread[key] = {}, {}
            for sub in first:
                nums = [v[sub] for v in values if sub in v]
                out[key][sub] = _median(nums)
                if min(nums) != max(nums):
                    spread[key][sub] = [min(nums), max(nums)]
            if not spread[key]:
                del spread[key]
        else:
            out[key] = _median(values)
            if min(values) != max(values):
                spread[key] = [min(values), max(values)]
    out["runs"] = len(samples)
    out["spread"] = spread
    out.update(fixed)
    return out


def _median(values: Sequence[float]) -> float:
    m = statistics.median(values)
    return round(m, 6) if isinstance(m, float) else m


def machine() -> dict[str, Any]:
    """What ran the figures: cores, memory, CPU model, Python."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu = platform.processor()
    mem_gb = 0.0
    with contextlib.suppress(ValueError, OSError):
        mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    # Load at the start: other work on the machine shows up here, and in the figures.
    return {"nproc": os.cpu_count(), "cpu": cpu or "?", "mem_gb": round(mem_gb, 1),
            "python": platform.python_version(), "loadavg_1m": round(os.getloadavg()[0], 2),
            "loop_ms": loop_ms()}


def loop_ms(n: int = 1_000_000) -> float:
    """The machine's speed now: the best of 3 timings of a fixed pure-Python loop, in ms.

    A shared or virtual machine's speed varies (the same unchanged code measured twice as
    slow within an hour here); figures are comparable when their `loop_ms` are."""
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        x = 0
        for i in range(n):
            x += i
        best = min(best, time.perf_counter() - t)
    return round(1000 * best, 1)


def revision() -> str | None:
    """`git describe --always --dirty` of the source tree, when run from a checkout."""
    root = Path(__file__).resolve().parents[3]  # warnbus/tools/bench/report.py
    if not (root / ".git").exists():
        return None
    try:
        done = subprocess.run(["git", "-C", str(root), "describe", "--always", "--dirty"],
                              capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None


# --------------------------------------------------------------------------- text

#: figure -> (label, unit, format); the order of the text report.
_LABELS: dict[str, tuple[str, str, str]] = {
    "grids": ("grids", "", "{:,.0f}"),
    "deliveries": ("deliveries (first wave)", "", "{:,.0f}"),
    "first_wave_s": ("accepted -> last first-wave send", "s", "{:.3f}"),
    "engine_first_wave_s": ("  engine-only (null channels)", "s", "{:.3f}"),
    "e2e_first_wave_s": ("  end to end (simulators, mosquitto)", "s", "{:.3f}"),
    "accept_s": ("accept() latency (the 202)", "s", "{:.3f}"),
    "planned_s": ("accepted -> planned and queued", "s", "{:.3f}"),
    "engine_deliveries_per_s": ("engine deliveries per second", "/s", "{:,.0f}"),
    "engine_cpu_s": ("engine CPU in the engine-only window", "s", "{:.2f}"),
    "e2e_deliveries": ("end-to-end deliveries", "", "{:,.0f}"),
    "acks": ("acks sent", "", "{:,.0f}"),
    "acks_per_s": ("acks per second (POST /ack/{token})", "/s", "{:,.0f}"),
    "ack_p50_ms": ("ack latency p50", "ms", "{:.1f}"),
    "ack_p99_ms": ("ack latency p99", "ms", "{:.1f}"),
    "server_cpu_s": ("engine process CPU during acks", "s", "{:.2f}"),
    "client_cpu_s": ("load generator CPU during acks", "s", "{:.2f}"),
    "redis_cpu_s": ("redis-server CPU in the same window", "s", "{:.2f}"),
    "elapsed_s": ("  over (wall)", "s", "{:.2f}"),
    "redis_bytes_per_delivery": ("Redis bytes per delivery", "B", "{:,.0f}"),
    "rss_mb": ("engine peak RSS", "MB", "{:,.0f}"),
    "peer_s": ("naive apprise fan-out", "s", "{:.2f}"),
    "peer_http_s": ("  of which HTTP (json://)", "s", "{:.2f}"),
    "peer_mqtt_s": ("  of which MQTT (mqtt://, per device)", "s", "{:.2f}"),
    "warnbus_s": ("warnbus fan-out, same sink", "s", "{:.3f}"),
    "warnbus_http_s": ("  of which persons (HTTP)", "s", "{:.3f}"),
    "peer_http_messages": ("HTTP messages (each side)", "", "{:,.0f}"),
    "peer_mqtt_publishes": ("peer MQTT publishes (per device)", "", "{:,.0f}"),
    "warnbus_mqtt_publishes": ("warnbus MQTT publishes (per village)", "", "{:,.0f}"),
    "peer_ratio": ("peer / warnbus (x faster)", "x", "{:.1f}"),
    "peer_ratio_http": ("  persons over HTTP only", "x", "{:.1f}"),
}


def render_text(result: Mapping[str, Any]) -> str:
    """A scenario's figures as aligned lines: median [min - max]."""
    spread = result.get("spread", {})
    head = (f"{result['scenario']}: {result.get('title', '')} "
            f"({result['runs']} run(s), median [min - max])")
    lines = [head]
    for key, (label, unit, fmt) in _LABELS.items():
        if key in result and result[key] is not None:
            lines.append(_line(label, result[key], spread.get(key), unit, fmt))
    if "match_ms" in result:
        for kind, value in result["match_ms"].items():
            grids = result.get("match_grids", {}).get(kind, "")
            label = f"match {kind}" + (f" ({grids:,} grids)" if grids != "" else "")
            lines.append(_line(label, value, spread.get("match_ms", {}).get(kind), "ms", "{:.2f}"))
    if "worst_stall_ms" in result:
        lines += _stall_lines(result)
    for note in result.get("notes", ()):
        lines.append(f"  note: {note}")
    return "\n".join(lines)


def _stall_lines(result: Mapping[str, Any]) -> list[str]:
    """`hostile`: one line per load: worst, p99 and own (less CPU waits) stall, requests
    and their statuses."""
    target = result.get("target_stall_ms", 50.0)
    own = result.get("worst_own_stall_ms", {})
    lines = [f"  {'load':<18} {'worst stall':>12} {'p99 stall':>10} {'own':>10} {'requests':>9}"
             f"  statuses (target: worst <= {target:g} ms; own: less the engine's waits "
             "for a CPU)"]
    for load in ("idle", *result.get("loads", ())):
        worst = result["worst_stall_ms"].get(load, 0.0)
        codes = result.get("statuses", {}).get(load, {})
        mark = "  OVER" if load != "idle" and worst > target else ""
        lines.append(f"  {load:<18} {worst:>9.1f} ms {result['p99_stall_ms'].get(load, 0.0):>7.1f}"
                     f" ms {own.get(load, 0.0):>7.1f} ms {result['requests'].get(load, 0):>9,}  "
                     + (" ".join(f"{k}x{v}" for k, v in codes.items()) or "-") + mark)
    return lines


def _line(label: str, value: Any, rng: Sequence[float] | None, unit: str, fmt: str) -> str:
    text = fmt.format(value)
    if rng and rng[0] != rng[1]:
        text += f"  [{fmt.format(rng[0])} - {fmt.format(rng[1])}]"
    return f"  {label:<40} {text} {unit}".rstrip()
