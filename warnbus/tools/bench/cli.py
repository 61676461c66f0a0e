"""`warnbus bench SCENARIO [--json] [--runs N] [--counties N] [--quick]`: run, summarise, print."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from warnbus.errors import WarnbusError
from warnbus.tools.bench.env import BenchError, bench_env
from warnbus.tools.bench.report import machine, render_text, revision, summarize

T = TypeVar("T")
SCENARIOS = ("county", "province", "acks", "match", "peer", "hostile", "reach")


@dataclass(frozen=True)
class Sizes:
    """Default registry sizes (counties) of a scenario, full and `--quick`."""

    full: int
    quick: int


SIZES = {
    "county": Sizes(1, 1),
    "province": Sizes(100, 2),
    "acks": Sizes(10, 1),
    "match": Sizes(100, 1),
    "peer": Sizes(1, 1),
    "hostile": Sizes(1, 1),
    "reach": Sizes(10, 1),  # the county, then a 10-county registry (--quick: the county)
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="warnbus bench",
        description="Measure the engine against real redis-server and mosquitto on 127.0.0.1.")
    p.add_argument("scenario", choices=(*SCENARIOS, "all"))
    p.add_argument("--json", action="store_true", help="one JSON object per scenario")
    p.add_argument("--runs", type=int, help="repeated runs (default 3; 1 with --quick)")
    p.add_argument("--counties", type=int, help="registry size (default: see docs/benchmarks.md)")
    p.add_argument("--quick", action="store_true", help="smallest sizes, one run (CI)")
    p.add_argument("--e2e", action=argparse.BooleanOptionalAction, default=None,
                   help="county/province: also run end to end through the simulators "
                        "(default: on for county, off for province)")
    p.add_argument("--profile", type=Path, metavar="PATH",
                   help="county/province: pyinstrument profile of the engine-only windows "
                        "(writes PATH.html and PATH.txt)")
    p.add_argument("--log-level", default="warning",
                   help="engine log level; logs go to a file (default: warning)")
    p.add_argument("--timeout", type=float, default=300.0, help="per-run limit in seconds")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="county/province engine-only: N engine processes on the same Redis "
                        "(this one and N-1 worker-only ones)")
    p.add_argument("--via", choices=("link", "dtmf", "sms", "wecom"), default="link",
                   help="acks: confirm through the signed ack link (default) or a provider's "
                        "signed webhook: a key pressed in the call, an SMS reply, WeCom's button")
    p.add_argument("--api-processes", type=int, default=1, metavar="N",
                   help="acks: N processes serve the API on one port (SO_REUSEPORT): "
                        "`warnbus serve` and N-1 `--role api` ones")
    p.add_argument("--api", choices=("process", "inproc"), default="inproc",
                   help="end to end: the HTTP API that takes the providers' callbacks in the "
                        "engine's process (default) or in an `--role api` process, as "
                        "compose.yaml deploys it")
    p.add_argument("--world", choices=("process", "inproc"), default="process",
                   help="end to end: the simulated providers in a process of their own "
                        "(default, as remote providers cost the engine no CPU) or in the "
                        "engine's process")
    p.add_argument("--appendfsync", choices=("always", "everysec"), default="always",
                   help="the Redis AOF fsync policy (default: always, the shipped default; "
                        "everysec to compare)")
    p.add_argument("--redis-max-connections", type=int, metavar="N",
                   help="county/province what-if: the engine's Redis pool size "
                        "(engine.redis_connections; default: the engine's default)")
    return p


def bench_main(argv: Sequence[str]) -> int:
    """Entry of `warnbus bench`; return the exit status."""
    ns = build_parser().parse_args(list(argv))
    if ns.runs is not None and not 1 <= ns.runs <= 50:
        print("error: --runs must be between 1 and 50", file=sys.stderr)
        return 2
    chosen = SCENARIOS if ns.scenario == "all" else (ns.scenario,)
    status = 0
    for scenario in chosen:
        try:
            result = run_bounded(run_scenario(scenario, ns))
        except WarnbusError as e:
            print(f"error: {scenario}: {e.message}", file=sys.stderr)
            status = 1
            continue
        if ns.json:
            print(json.dumps(result, ensure_ascii=False), flush=True)
        else:
            print(render_text(result), flush=True)
    return status


def run_bounded(coro: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run`, except that tasks which ignore cancellation cannot hang the exit.

    asyncio.run waits for every leftover task after cancelling it; a channel whose listener
    never finishes (see `close_app`) would keep the benchmark from ending. Here the wait for
    leftovers is bounded, and whatever is still pending is dropped with the loop.
    """
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        left = asyncio.all_tasks(loop)
        for task in left:
            task.cancel()
        if left:
            loop.run_until_complete(asyncio.wait(left, timeout=5.0))
        loop.close()


async def run_scenario(scenario: str, ns: argparse.Namespace) -> dict[str, Any]:
    """Run one scenario's repeated runs in its own servers; return its summary object."""
    runs = ns.runs or (1 if ns.quick else 3)
    sizes = SIZES[scenario]
    counties = ns.counties or (sizes.quick if ns.quick else sizes.full)
    common = {"counties": counties, "machine": machine(), "log_level": ns.log_level,
              "appendfsync": ns.appendfsync,
              "quick": bool(ns.quick), "revision": revision()}
    if scenario in ("county", "province"):
        return await _fanout(scenario, ns, runs, counties, common)
    if scenario == "acks":
        from warnbus.tools.bench.acks import AckOptions, run_acks

        # The webhook confirmations come from the simulators, whose speakers need a broker.
        with bench_env(mqtt=ns.via != "link", log_level=ns.log_level,
                       appendfsync=ns.appendfsync) as env:
            samples, fixed = await run_acks(
                AckOptions(counties, runs, ns.timeout, via=ns.via,
                           api_processes=ns.api_processes), env)
        return summarize("acks", samples, **fixed, **common)
    if scenario == "match":
        from warnbus.tools.bench.match import run_match

        with bench_env(log_level=ns.log_level, appendfsync=ns.appendfsync) as env:
            samples, fixed = await run_match(counties, runs, reps=5 if ns.quick else 25, env=env)
        return summarize("match", samples, **fixed, **common)
    if scenario == "peer":
        from warnbus.tools.bench.peer import PeerOptions, run_peer

        with bench_env(mqtt=True, log_level=ns.log_level, appendfsync=ns.appendfsync) as env:
            samples, fixed = await run_peer(PeerOptions(counties, runs, ns.quick, ns.timeout), env)
        return summarize("peer", samples, **fixed, **common)
    if scenario == "hostile":
        from warnbus.tools.bench.hostile import HostileOptions, over_target, run_hostile

        with bench_env(mqtt=True, log_level=ns.log_level, appendfsync=ns.appendfsync) as env:
            samples, fixed = await run_hostile(
                HostileOptions(counties, runs, bool(ns.quick), ns.timeout), env)
        result = summarize("hostile", samples, **fixed, **common)
        result["over_target_loads"] = over_target(result)
        return result
    if scenario == "reach":
        from warnbus.tools.bench.reach import ReachOptions, run_reach

        sizes_run = (1,) if counties == 1 else (1, counties)
        with bench_env(log_level=ns.log_level) as env:
            samples, fixed = await run_reach(ReachOptions(sizes_run, runs, ns.timeout), env)
        return summarize("reach", samples, **fixed, **common)
    raise BenchError(f"unknown scenario {scenario}")


async def _fanout(scenario: str, ns: argparse.Namespace, runs: int, counties: int,
                  common: dict[str, Any]) -> dict[str, Any]:
    from warnbus.tools.bench.fanout import (
        PROVINCE_CODE,
        SAMPLE_COUNTY_CODE,
        FanoutOptions,
        run_fanout,
    )
    from warnbus.tools.bench.profiling import NoProfiler, WindowProfiler

    e2e = ns.e2e if ns.e2e is not None else scenario == "county"
    area = SAMPLE_COUNTY_CODE if scenario == "county" else PROVINCE_CODE
    opts = FanoutOptions(scenario, counties, runs, e2e, ns.timeout, area,
                         ns.redis_max_connections, ns.world, ns.workers, ns.api)
    window = WindowProfiler(ns.profile) if ns.profile else None
    with bench_env(mqtt=e2e, log_level=ns.log_level, appendfsync=ns.appendfsync) as env:
        samples = await run_fanout(opts, env, window or NoProfiler())
    title = (f"red warning for {'the sample county' if scenario == 'county' else 'the province'}"
             f" ({counties} county(ies)), first wave voice+SMS+WeCom+loudspeakers")
    fixed: dict[str, Any] = {"title": title, "area": area, "e2e": e2e, "world": ns.world,
                             "workers": ns.workers, "api": ns.api,
                             "redis_max_connections": ns.redis_max_connections}
    if window is not None:
        fixed["profile"] = [str(p) for p in window.write()]
    return summarize(scenario, samples, **fixed, **common)
