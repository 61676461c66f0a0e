"""Parse an uploaded workbook or boundary file in a child process with memory and CPU limits.

The parsers are native code (calamine in Rust, GDAL in C) fed by whoever uploads a file: a
zip bomb, a file that makes a parser run away or crash costs a child process, never the
engine or the console. The child sets its own limits before it imports a parser, reads the
file from stdin and writes one msgpack reply to stdout: `{"ok": ...}` or `{"error": "<中文>"}`.

    python -m warnbus.registry_io.sandbox workbook|boundaries [--name N] [--crs C] < FILE
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import sys
import weakref
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

import msgspec
import structlog

from warnbus.errors import RegistryImportError

#: Most bytes an uploaded file may have (a province's workbook is ~15 MB).
MAX_UPLOAD = 64 * 1024 * 1024
#: Most bytes the members of an uploaded zip (an .xlsx is one) may unpack to, together.
MAX_UNPACKED = 512 * 1024 * 1024
MAX_ROWS = 500_000  # per sheet: a province has ~250k people
MAX_COLUMNS = 64
MAX_CELLS = 8_000_000  # all sheets together (a province: ~3 million)
#: Most bytes a child's reply may have: the parent holds it in memory.
MAX_REPLY = 512 * 1024 * 1024
CHILD_MEMORY = 3 * 1024 * 1024 * 1024  # address space of the child (calamine: ~350 MB/province)
CHILD_CPU_S = 240
CHILD_WALL_S = 300.0

log = structlog.get_logger("warnbus.registry_io")

_DATE_EXT = 1
_OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # .xls (BIFF in an OLE container)


class Refused(Exception):
    """The file cannot be read; the message (Chinese) goes back to the person."""


@dataclass(frozen=True)
class Sheet:
    name: str
    visible: bool
    rows: list[list[Any]]


def check_zip(payload: bytes, *, limit: int = MAX_UNPACKED) -> zipfile.ZipFile:
    """Open a zip after unpacking every member once, counting: a member's declared size is
    not trusted (a bomb declares little), its CRC is checked by reading it to the end."""
    try:
        z = zipfile.ZipFile(io.BytesIO(payload))
        total = 0
        for info in z.infolist():
            if info.flag_bits & 0x1:
                raise Refused("文件已加密，无法读取")
            with z.open(info) as member:
                while chunk := member.read(1 << 20):
                    total += len(chunk)
                    if total > limit:
                        raise Refused(f"文件解压后超过 {limit // 2**20} MB，不予读取")
        return z
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, NotImplementedError) as e:
        raise Refused(f"文件已损坏，无法解压（{type(e).__name__}）") from e


def _cell(value: Any) -> Any:
    if isinstance(value, (datetime, date, time, timedelta)):
        return msgspec.msgpack.Ext(_DATE_EXT, str(value).encode())
    return value


def read_workbook(payload: bytes, unpacked: int = MAX_UNPACKED) -> list[Sheet]:
    """Every worksheet's cells from A1, merged ranges filled with their first cell's value."""
    if payload[:4] == b"PK\x03\x04":
        check_zip(payload, limit=unpacked)
    elif payload[:8] != _OLE:
        raise Refused("不是 Excel 工作簿（应为 .xlsx 或 .xls 文件）")
    from python_calamine import CalamineError, CalamineWorkbook, SheetTypeEnum, SheetVisibleEnum

    try:
        wb = CalamineWorkbook.from_filelike(io.BytesIO(payload))
        out = []
        cells = 0
        for meta in wb.sheets_metadata:
            if meta.typ != SheetTypeEnum.WorkSheet:
                continue
            sheet = wb.get_sheet_by_name(meta.name)
            # total_height is the last row's index (0-based): the sheet has one row more.
            height = sheet.total_height + 1
            if height > MAX_ROWS:
                raise Refused(f"「{meta.name}」表有 {height} 行，超过上限 {MAX_ROWS} 行")
            rows = [row[:MAX_COLUMNS] for row in sheet.to_python(skip_empty_area=False)]
            for (r0, c0), (r1, c1) in sheet.merged_cell_ranges or ():
                if r0 >= len(rows) or c0 >= MAX_COLUMNS:
                    continue
                value = rows[r0][c0] if c0 < len(rows[r0]) else ""
                for r in range(r0, min(r1, MAX_ROWS) + 1):
                    while r >= len(rows):
                        rows.append([])
                    row = rows[r]
                    row.extend([""] * (min(c1, MAX_COLUMNS - 1) + 1 - len(row)))
                    for c in range(c0, min(c1, MAX_COLUMNS - 1) + 1):
                        row[c] = value
            cleaned = [[_cell(v) for v in _trim(row)] for row in rows]
            cells += sum(map(len, cleaned))
            if cells > MAX_CELLS:
                raise Refused(f"工作簿的单元格过多（超过 {MAX_CELLS} 个）")
            out.append(Sheet(meta.name, meta.visible == SheetVisibleEnum.Visible, cleaned))
        return out
    except CalamineError as e:
        raise Refused(f"无法读取工作簿：{str(e)[:200]}") from e


def _trim(row: list[Any]) -> list[Any]:
    end = len(row)
    while end and (row[end - 1] is None or row[end - 1] == ""):
        end -= 1
    return row[:end]


def _limit(memory: int, cpu_s: int) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 5))


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m warnbus.registry_io.sandbox")
    p.add_argument("what", choices=("workbook", "boundaries"))
    p.add_argument("--name", default="")
    p.add_argument("--crs", default="")
    p.add_argument("--memory", type=int, default=CHILD_MEMORY)
    p.add_argument("--cpu", type=int, default=CHILD_CPU_S)
    p.add_argument("--unpacked", type=int, default=MAX_UNPACKED)
    args = p.parse_args(argv)
    _limit(args.memory, args.cpu)
    payload = sys.stdin.buffer.read(MAX_UPLOAD + 1)
    enc = msgspec.msgpack.Encoder()
    try:
        if len(payload) > MAX_UPLOAD:
            raise Refused(f"文件超过 {MAX_UPLOAD // 2**20} MB")
        if args.what == "workbook":
            result: Any = read_workbook(payload, args.unpacked)
        else:
            from warnbus.registry_io.gisread import read_boundaries

            result = read_boundaries(payload, args.name, args.crs, args.unpacked)
        reply = enc.encode({"ok": result})
        if len(reply) > MAX_REPLY:
            raise Refused(f"文件内容过多（读出超过 {MAX_REPLY // 2**20} MB）")
    except Refused as e:
        reply = enc.encode({"error": str(e)})
    except MemoryError:
        reply = enc.encode({"error": "文件过大或过于复杂：读取时超出内存上限"})
    except Exception as e:  # a parser's own error on a malformed file
        reply = enc.encode({"error": f"无法读取文件（{type(e).__name__}：{str(e)[:160]}）"})
    sys.stdout.buffer.write(reply)
    sys.stdout.buffer.flush()
    return 0


def _ext(code: int, data: memoryview) -> Any:
    """A date or time cell as the child wrote it (`str` of the value): a duty roster's day
    and shift start are read from it; a text column says it wants text (`cells`)."""
    if code != _DATE_EXT:
        raise ValueError(code)
    said = bytes(data[:64]).decode("ascii", "replace")
    for parse in (date.fromisoformat, datetime.fromisoformat, time.fromisoformat):
        try:
            return parse(said)
        except ValueError:
            continue
    return timedelta(0)  # a duration: no column of the workbook holds one


async def run_child(what: str, payload: bytes, *, name: str = "", crs: str = "",
                    wall_s: float = CHILD_WALL_S, memory: int = CHILD_MEMORY,
                    unpacked: int = MAX_UNPACKED) -> Any:
    """Parse `payload` in a child process; its result, or RegistryImportError in Chinese."""
    if len(payload) > MAX_UPLOAD:
        raise RegistryImportError(f"文件超过 {MAX_UPLOAD // 2**20} MB")
    async with _slot():
        return await _run(what, payload, name=name, crs=crs, wall_s=wall_s, memory=memory,
                          unpacked=unpacked)


#: Children at once per process: each may take CHILD_MEMORY; more uploads wait their turn.
CHILDREN = 2
_slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary())


def _slot() -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    slot = _slots.get(loop)
    if slot is None:
        slot = _slots[loop] = asyncio.Semaphore(CHILDREN)
    return slot


def _child_env() -> dict[str, str]:
    """What the child needs of the environment, nothing more (no WARNBUS_* secrets); GDAL
    never reaches for a network path."""
    keep = ("PATH", "PYTHONPATH", "LANG", "LC_ALL", "TMPDIR", "PROJ_DATA", "GDAL_DATA")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env.update({"PYTHONWARNINGS": "ignore", "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".none",
                "GDAL_HTTP_TIMEOUT": "1", "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR"})
    return env


async def _run(what: str, payload: bytes, *, name: str, crs: str, wall_s: float, memory: int,
               unpacked: int) -> Any:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "warnbus.registry_io.sandbox", what, "--name", name[:200],
        "--crs", crs[:100], "--memory", str(memory), "--unpacked", str(unpacked),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=_child_env())
    try:
        out, _err = await asyncio.wait_for(proc.communicate(payload), wall_s)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise RegistryImportError("读取文件超时：文件过大或过于复杂") from None
    try:
        reply = msgspec.msgpack.decode(out, ext_hook=_ext)
    except msgspec.DecodeError:
        reply = None
    if not isinstance(reply, dict) or proc.returncode != 0:
        log.warning("registry file parser failed", returncode=proc.returncode,
                    stderr=_err.decode(errors="replace")[-500:])
        raise RegistryImportError("无法读取文件：解析器超出内存或时间上限，或文件已损坏"
                                  f"（退出码 {proc.returncode}）")
    if "error" in reply:
        raise RegistryImportError(str(reply["error"]))
    return reply["ok"]


async def workbook_sheets(payload: bytes) -> list[Sheet]:
    raw = await run_child("workbook", payload)
    return [Sheet(str(s["name"]), bool(s["visible"]), s["rows"]) for s in raw]


if __name__ == "__main__":
    # Run the imported module's main, not this __main__ copy's: the readers raise the
    # imported module's Refused, which this copy's `except Refused` would not catch.
    from warnbus.registry_io import sandbox

    raise SystemExit(sandbox.main())
