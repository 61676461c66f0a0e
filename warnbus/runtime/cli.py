"""The `warnbus` command: validate, serve, demo, registry, record."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from collections.abc import Sequence

from warnbus.errors import WarnbusError


def _validate(args: argparse.Namespace) -> int:
    from warnbus.ingest.validate_cmd import validate_paths

    if args.signature == "require" and not args.trust:
        print("warnbus: no --trust: each signature is checked against the certificate it "
              "carries, which anyone can make; this shows the file was not changed, not who "
              "signed it", file=sys.stderr)
    return validate_paths(list(args.files), sys.stdout, signature=args.signature,
                          trust=args.trust or (), at=args.at)


def _registry(args: argparse.Namespace, rest: list[str]) -> int:
    from warnbus.tools.registry_gen import registry_main

    return registry_main(rest)


async def _serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from warnbus.runtime.app import build_app
    from warnbus.runtime.config import load_settings
    from warnbus.runtime.logs import configure_logging
    from warnbus.web.api import make_ops_app, make_web_app

    settings = load_settings(args.config)
    configure_logging(level=settings.log_level)
    port = args.port if args.port is not None else settings.server.port
    roles = set(args.role.split(",")) if args.role else {"api", "worker", "timer"}
    base_url = settings.server.public_url or f"http://{settings.server.host}:{port}"
    if args.providers and settings.channels:
        print("error: --providers chooses the simulated providers of the embedded default; "
              "this configuration names its own [channels]", file=sys.stderr)
        return 2
    app = await build_app(settings, roles=roles, base_url=base_url,
                          providers=args.providers or "twilio")
    for svc in app.started:
        print(f"warnbus: started {svc.description}", flush=True)
    if app.world is not None:
        print("warnbus: no channels configured: voice/SMS/WeCom/speakers go to the shipped "
              f"provider simulators (simulated officers): {app.world.description}", flush=True)
    if app.api_token:
        print(f"warnbus: API token (full scope, generated for this run): {app.api_token}",
              flush=True)
    await app.engine.start()
    # The api role serves the whole API; worker/timer-only processes serve /healthz and
    # /metrics when given a port (--port or WARNBUS_PORT), as containers' health checks need.
    runner = None
    if "api" in roles or args.port is not None or os.environ.get("WARNBUS_PORT"):
        web_app = make_web_app(app) if "api" in roles else make_ops_app(app)
        runner = web.AppRunner(web_app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, settings.server.host, port,
                          reuse_port=settings.server.reuse_port or None).start()
        print(f"warnbus: serving on http://{settings.server.host}:{port}", flush=True)
        from warnbus.web.console import ensure_admin

        # The console's first admin: the password is shown once, at creation only.
        password = await ensure_admin(app.ctx.redis, os.environ.get("WARNBUS_ADMIN_PASSWORD"))
        if password:
            print(f"warnbus: console admin created: user admin, password {password} "
                  f"(shown once; http://{settings.server.host}:{port}/console/)", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    if runner is not None:
        await runner.cleanup()
    await app.close()
    return 0


async def _record(args: argparse.Namespace) -> int:
    from warnbus.flow.record import record_rows, rows_csv
    from warnbus.runtime.app import build_app
    from warnbus.runtime.config import load_settings

    settings = load_settings(args.config)
    if not settings.redis_url:
        print("error: warnbus record needs the engine's Redis: set redis_url in the config "
              "or WARNBUS_REDIS_URL", file=sys.stderr)
        return 2
    app = await build_app(settings, roles=())
    try:
        rows = await record_rows(app.ctx, args.alert_id)
    finally:
        await app.close()
    if args.format == "csv":
        sys.stdout.write(rows_csv(rows))
    else:
        sys.stdout.write(json.dumps({"alert_id": args.alert_id, "rows": rows},
                                    ensure_ascii=False, indent=1) + "\n")
    return 0


def _broker(rest: list[str]) -> int:
    from warnbus.runtime.brokerauth import broker_main

    return broker_main(rest)


def _bench(rest: list[str]) -> int:
    from warnbus.tools.bench.cli import bench_main

    return bench_main(rest)


def _demo(args: argparse.Namespace) -> int:
    from warnbus.tools.demo import run_demo

    return asyncio.run(run_demo(fast=args.fast, port=args.port, providers=args.providers))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="warnbus", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    v = sub.add_parser("validate", help="parse CAP/JSON files; print ok/error per file")
    v.add_argument("files", nargs="+")
    v.add_argument("--signature", choices=("require", "verify", "ignore"), default="ignore",
                   help="XML-DSig check: require a valid signature, verify one if present, "
                   "or ignore signatures (default)")
    v.add_argument("--trust", action="append", metavar="PEM",
                   help="trust store: a PEM file of CA or signing certificates (repeatable); "
                   "without it a signature is checked against the certificate it carries")
    v.add_argument("--at", default="now", metavar="now|sent|TIME",
                   help="when certificates must have been valid: now (default), sent (each "
                   "alert's own <sent>: archives), or an ISO-8601 time with its offset")
    s = sub.add_parser("serve", help="run the engine and the HTTP API")
    s.add_argument("--config")
    s.add_argument("--port", type=int)
    s.add_argument("--role", help="comma-separated roles: api,worker,timer (default: all)")
    s.add_argument("--providers", choices=("twilio", "cn"),
                   help="embedded default only: the simulated providers (twilio: Twilio voice "
                   "and SMS; cn: Aliyun and Tencent Cloud voice, Tencent SMS); default twilio")
    d = sub.add_parser("demo", help="a red warning for the sample county, live 叫应 progress")
    d.add_argument("--fast", action="store_true", help="a shorter run (used by the tests)")
    d.add_argument("--port", type=int, default=0)
    d.add_argument("--providers", choices=("twilio", "cn"), default="twilio",
                   help="twilio: Twilio voice and SMS; cn: Aliyun and Tencent Cloud voice "
                   "(spread by rate, under their per-number limits) and Tencent SMS")
    sub.add_parser("registry", help="the grid registry: generate | validate | stats | export | "
                   "template | import | history",
                   add_help=False)
    sub.add_parser("bench", help="performance figures: county | province | acks | match | peer",
                   add_help=False)
    sub.add_parser("broker", help="the MQTT broker's ACL and device accounts (acl | add-device)",
                   add_help=False)
    r = sub.add_parser("record", help="export the 叫应 record of an alert (CSV or JSON)")
    r.add_argument("alert_id")
    r.add_argument("--format", choices=("csv", "json"), default="csv")
    r.add_argument("--config")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if args_list[:1] in (["registry"], ["bench"], ["broker"]):
        args, rest = parser.parse_known_args(args_list[:1])
        rest = args_list[1:]
    else:
        args, rest = parser.parse_args(args_list), []
    try:
        if args.cmd == "validate":
            return _validate(args)
        if args.cmd == "registry":
            return _registry(args, rest)
        if args.cmd == "bench":
            return _bench(rest)
        if args.cmd == "broker":
            return _broker(rest)
        if args.cmd == "serve":
            return asyncio.run(_serve(args))
        if args.cmd == "record":
            return asyncio.run(_record(args))
        if args.cmd == "demo":
            return _demo(args)
    except WarnbusError as e:
        print(f"error: {e.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
