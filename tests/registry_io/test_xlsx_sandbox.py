"""Uploaded files are parsed in a child process with limits: a bomb, a runaway or crashing
parser, or a file that is no workbook costs the child, and says so in Chinese."""

from __future__ import annotations

import io
import re
import struct
import zipfile
import zlib

import pytest
from xlsx_kit import sample_xlsx

from warnbus.errors import RegistryImportError
from warnbus.registry_io.sandbox import run_child, workbook_sheets


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
