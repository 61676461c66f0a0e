"""Uploaded files are parsed in a child process with limits: a bomb, a runaway or crashing
parser, or a file that is no workbook costs the child, and says so in Chinese."""

from __future__ import annotations

import io
import re
import struct
import time
import zipfile
import zlib
from datetime import date

import pytest
from openpyxl import Workbook
from xlsx_kit import preview, sample_xlsx

from warnbus.errors import RegistryImportError
from warnbus.registry_io.sandbox import MAX_ROWS, run_child, workbook_sheets


def _bomb(member_mb: int) -> bytes:
    """A workbook-looking zip whose sheet unpacks to `member_mb` MB of zeros."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        with z.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as f:
            chunk = b"\0" * (1 << 20)
            for _ in range(member_mb):
                f.write(chunk)
    return buf.getvalue()


def _lying(blob: bytes) -> bytes:
    """The same zip with every declared uncompressed size set to 100 bytes (headers lie)."""
    out = bytearray(blob)
    for sig, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        i = out.find(sig)
        while i != -1:
            if out[i + offset: i + offset + 4] != b"\xff\xff\xff\xff":
                out[i + offset: i + offset + 4] = struct.pack("<I", 100)
            i = out.find(sig, i + 4)
    return bytes(out)


async def test_a_zip_bomb_is_refused_before_any_parser_reads_it() -> None:
    blob = _bomb(40)
    assert len(blob) < 200_000
    with pytest.raises(RegistryImportError, match="文件解压后超过 16 MB，不予读取"):
        await run_child("workbook", blob, unpacked=16 * 2**20)


async def test_a_bomb_whose_headers_lie_is_refused() -> None:
    blob = _lying(_bomb(40))
    with pytest.raises(RegistryImportError, match=r"文件已损坏|超过"):
        await run_child("workbook", blob, unpacked=16 * 2**20)


@pytest.mark.parametrize(("blob", "message"), [
    (b"name,phone\n", "不是 Excel 工作簿（应为 .xlsx 或 .xls 文件）"),
    (b"PK\x03\x04" + b"\0" * 100, "文件已损坏，无法解压"),
    (zlib.compress(b"x" * 1000), "不是 Excel 工作簿"),
])
async def test_what_is_no_workbook_says_so(blob: bytes, message: str) -> None:
    with pytest.raises(RegistryImportError, match=re.escape(message)):
        await workbook_sheets(blob)


async def test_a_parser_out_of_memory_or_time_fails_the_import_only() -> None:
    with pytest.raises(RegistryImportError, match=r"无法读取文件|超出内存"):
        await run_child("workbook", sample_xlsx(), memory=48 * 2**20)
    with pytest.raises(RegistryImportError, match="读取文件超时"):
        await run_child("workbook", sample_xlsx(), wall_s=0.001)
    assert len(await workbook_sheets(sample_xlsx())) == 7  # and the next import works


def test_the_child_gets_no_secret_of_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from warnbus.registry_io.sandbox import _child_env

    monkeypatch.setenv("WARNBUS_API_TOKEN", "secret-token")
    monkeypatch.setenv("WARNBUS_REDIS_URL", "redis://:password@127.0.0.1:6379/0")
    env = _child_env()
    assert not [k for k in env if k.startswith("WARNBUS_")]
    assert "secret" not in repr(env) and "password" not in repr(env)


def _tall(sheet: str, rows: int) -> bytes:
    """A small file whose sheet `sheet` says it has `rows` rows (one cell at the bottom)."""
    wb = Workbook()
    ws = wb.active
    ws.title = sheet
    ws.cell(rows, 1).value = "x"
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


@pytest.mark.parametrize("sheet", ["值班表", "场所", "场所责任人"])
async def test_a_huge_sheet_of_rosters_or_sites_is_refused_by_the_child(sheet: str) -> None:
    blob = _tall(sheet, MAX_ROWS + 1)
    assert len(blob) < 20_000
    with pytest.raises(RegistryImportError, match=f"「{sheet}」表有 {MAX_ROWS + 1} 行，超过上限"):
        await workbook_sheets(blob)


async def test_a_roster_over_centuries_or_many_rows_is_bounded_work() -> None:
    """What the child hands over is bounded; what the parent makes of a roster is too: a
    span of centuries is one problem (no day-by-day walk), a rotation of a thousand names
    is refused at the cell, and 20,000 rows naming people by name read in seconds."""
    wb = Workbook()
    ws = wb.active
    ws.title = "值班表"
    ws.append(["值班表编号", "区划代码", "日期", "值班员", "带班领导"])
    ws.append(["v1", "430623101000", "1900-01-01至2999-12-31", "林德、徐辉", None])
    ws.append(["v2", "430623101000", "2026-01-01至2026-12-31", "、".join(["某某"] * 1000), None])
    for k in range(20_000):
        ws.append([f"v{3 + k // 300}", "430623101000",
                   date.fromordinal(date(2026, 1, 1).toordinal() + k % 300).isoformat(), "无名氏",
                   None])
    buf = io.BytesIO()
    wb.save(buf)
    started = time.monotonic()
    p = await preview(buf.getvalue())
    said = [str(x) for x in p.candidate.problems]
    assert time.monotonic() - started < 60
    assert ("「值班表」表第2行「日期」列：值班表 v1 跨 401767 天，超过 731 天"
            "（请按年度或汛期分版本）") in said
    assert "「值班表」表第3行「值班员」列：内容过长（2999个字符，最多200个）" in said
    nobody = [s for s in said if "没有名为「无名氏」的乡镇值班员：新增人员请同时填写手机" in s]
    assert len(nobody) == 20_000 and len(said) == 2 + 20_000
