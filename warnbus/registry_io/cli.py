"""`warnbus registry export|template|import|history`: the office's workbook from the command line.

The registry they work on is the one the engine serves: with the engine's Redis configured
(`redis_url` or WARNBUS_REDIS_URL), the version applied there (else its configured files);
without it, a registry directory (`--dir`, default the configured one or the sample county).
`import` prints the changes, or every problem with its sheet, row and column, and exits 1 on
problems; `--apply` applies the change to the running engine (every process picks it up), or
`--out DIR` writes the new registry as a directory.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import re
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TextIO

from warnbus.domain.models import RegistryData
from warnbus.errors import RegistryConflictError, RegistryError, RegistryImportError, WarnbusError

SHOWN = 500  # changes printed without --all
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _shown(line: str) -> str:
    """A line for the terminal: what came from a file (a sheet's name, a file name) carries
    no control characters (an escape sequence would act on the reader's terminal)."""
    return _CONTROL.sub("?", line)


def add_commands(sub: Any) -> None:
    ex = sub.add_parser("export", help="the registry as a workbook (.xlsx)")
    ex.add_argument("--format", choices=("xlsx",), default="xlsx")
    ex.add_argument("--out", required=True, help="the .xlsx file to write")
    ex.add_argument("--masked", action="store_true", help="mask phone numbers (to hand it on)")
    tp = sub.add_parser("template", help="the empty workbook to fill in (.xlsx)")
    tp.add_argument("--out", required=True)
    im = sub.add_parser("import", help="check a workbook and/or boundary file; print the "
                        "changes or the problems (sheet, row, column); --apply applies them")
    im.add_argument("file", nargs="?", help="the workbook (.xlsx / .xls)")
    im.add_argument("--boundaries", metavar="FILE",
                    help="grid boundaries: GeoJSON, or a zipped shapefile (.shp .shx .dbf .prj)")
    im.add_argument("--crs", default="", help="gcj02 for GCJ-02 coordinates (no file declares "
                    "them), or EPSG:N for a shapefile without .prj; otherwise read from the file")
    im.add_argument("--key", default="", help="the boundary file's field naming the grid "
                    "(its id or name); default: 网格编号, grid_id, id, 网格名 or name")
    im.add_argument("--apply", action="store_true", help="apply it to the running engine")
    im.add_argument("--out", metavar="DIR", help="write the new registry as a directory")
    im.add_argument("--by", default="", help="who makes the change (history); default: $USER")
    im.add_argument("--all", action="store_true", help="print every change")
    hi = sub.add_parser("history", help="the registry's change history (who, when, what)")
    hi.add_argument("-n", type=int, default=20)
    for p in (ex, im, hi):
        p.add_argument("--config", help="the engine's configuration (its Redis and registry)")
        p.add_argument("--dir", help="a registry directory instead of the engine's registry")


async def _with_engine(ns: argparse.Namespace,
                       work: Callable[[Any, RegistryData, int], Awaitable[int]]) -> int:
    """Run `work(redis or None, current registry, its version)`."""
    from warnbus.registry import default_registry_path, load_registry
    from warnbus.runtime.config import load_settings

    settings = load_settings(getattr(ns, "config", None))
    if ns.dir or not settings.redis_url:
        registry = load_registry(ns.dir or settings.registry or default_registry_path())
        return await work(None, registry.data, 0)
    from redis.asyncio import Redis

    from warnbus.state.registrybook import RegistryBook

    redis = Redis.from_url(settings.redis_url)
    try:
        got = await RegistryBook(redis).load()
        if got is not None:
            return await work(redis, got[1], got[0].version)
        registry = load_registry(settings.registry or default_registry_path())
        return await work(redis, registry.data, 0)
    finally:
        await redis.aclose()


async def _export(ns: argparse.Namespace, out: TextIO) -> int:
    from warnbus.registry_io.export import export_workbook

    async def work(redis: Any, data: RegistryData, version: int) -> int:
        year = None
        if redis is not None:
            from warnbus.state.registrybook import RegistryBook

            current = await RegistryBook(redis).current()
            year = current.year if current else None
        if ns.masked:
            from warnbus.registry_io.export import masked

            data = masked(data)
        blob = await asyncio.to_thread(export_workbook, data, year=year)
        await asyncio.to_thread(Path(ns.out).write_bytes, blob)
        print(f"wrote {ns.out}: {len(data.grids)} grids, {len(data.persons)} persons "
              f"(registry version {version})", file=out)
        return 0

    return await _with_engine(ns, work)


async def _import(ns: argparse.Namespace, out: TextIO) -> int:
    from warnbus.registry import dump_registry
    from warnbus.registry_io.service import encode_report, prepare, report

    if not ns.file and not ns.boundaries:
        print("error: name a workbook, a --boundaries file, or both", file=sys.stderr)
        return 2

    wb = await asyncio.to_thread(Path(ns.file).read_bytes) if ns.file else None
    bd = await asyncio.to_thread(Path(ns.boundaries).read_bytes) if ns.boundaries else None

    async def work(redis: Any, data: RegistryData, version: int) -> int:
        p = await prepare(data, version, workbook=wb, workbook_name=Path(ns.file or "").name,
                          boundary=bd, boundary_name=Path(ns.boundaries or "").name, crs=ns.crs,
                          key=ns.key)
        c = p.candidate
        for w in c.warnings:
            print(_shown(f"提示：{w}"), file=out)
        if c.boundary:
            print(_shown(f"边界：{c.boundary}"), file=out)
        if c.problems:
            print(f"发现 {len(c.problems)} 个问题，未导入：", file=out)
            for problem in c.problems:
                print(_shown(f"  {problem}"), file=out)
            return 1
        print(f"变化（基于版本 {version}）：{p.diff.summary()}", file=out)
        for line in p.diff.lines(0 if ns.all else SHOWN):
            print(_shown(f"  {line}"), file=out)
        if ns.out:
            dump_registry(c.data, ns.out)
            print(f"wrote the registry to {ns.out}", file=out)
        if not ns.apply:
            if not ns.out:
                print("（未应用：加 --apply 应用到运行中的引擎）", file=out)
            return 0
        if redis is None:
            print("error: --apply needs the engine's Redis (redis_url in --config or "
                  "WARNBUS_REDIS_URL); --out DIR writes a registry directory instead",
                  file=sys.stderr)
            return 2
        if p.diff.empty:
            print("没有变化，未应用", file=out)
            return 0
        new = await _apply(redis, p, by=ns.by or f"cli:{getpass.getuser()}",
                           report=encode_report(report(p)))
        print(f"已应用：台账版本 {new}（运行中的各进程随即使用新台账）", file=out)
        return 0

    return await _with_engine(ns, work)


async def _apply(redis: Any, p: Any, *, by: str, report: bytes) -> int:
    import time

    from warnbus.registry import default_registry_path, load_registry
    from warnbus.runtime.config import load_settings
    from warnbus.state.registrybook import RegistryBook, data_sha

    book = RegistryBook(redis)
    current = await book.current()
    if current is not None:
        base = current.base
    else:  # the first change on top of the configured files the engine serves (it says
        # which at start); an engine never started: the files this configuration names
        base = await book.files_sha() or data_sha(
            load_registry(load_settings(None).registry or default_registry_path()).data)
    from warnbus.registry_io.service import for_history

    return await book.apply(p.candidate.data, expected=p.base_version, by=by, source=p.source,
                            base=base, at=time.time(), year=p.candidate.year,
                            summary=p.diff.summary(), diff=for_history(report))


async def _history(ns: argparse.Namespace, out: TextIO) -> int:
    from warnbus.registry_io.service import decode_report
    from warnbus.state.registrybook import RegistryBook
    from warnbus.web.console.html import bj

    async def work(redis: Any, data: RegistryData, version: int) -> int:
        if redis is None:
            print("error: the history is kept in the engine's Redis (WARNBUS_REDIS_URL)",
                  file=sys.stderr)
            return 2
        for _id, h in await RegistryBook(redis).history(ns.n):
            print(_shown(f"版本 {h.version}  {bj(h.at)}  {h.by}  {h.source}：{h.summary}"),
                  file=out)
            try:
                lines = decode_report(h.diff).diff.lines(20)
            except Exception:  # an entry not written as a report (start-up records a diff)
                lines = []
            for line in lines:
                print(_shown(f"    {line}"), file=out)
        return 0

    return await _with_engine(ns, work)


def run(ns: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    from warnbus.registry_io.export import template_workbook

    try:
        if ns.cmd == "template":
            Path(ns.out).write_bytes(template_workbook())
            print(f"wrote {ns.out}", file=out)
            return 0
        if ns.cmd == "export":
            return asyncio.run(_export(ns, out))
        if ns.cmd == "import":
            return asyncio.run(_import(ns, out))
        return asyncio.run(_history(ns, out))
    except (RegistryImportError, RegistryConflictError) as e:
        print(f"error: {e.message}", file=sys.stderr)
        return 1
    except RegistryError as e:
        print(f"error: {e.message}", file=sys.stderr)
        return 1
    except (OSError, WarnbusError) as e:
        print(f"error: {getattr(e, 'message', e)}", file=sys.stderr)
        return 2
