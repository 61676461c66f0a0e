"""Prepare an import (parse, check, compare) and describe it; shared by the console and the CLI.

Parsing runs in the sandbox child; checking and comparing run in a worker thread (a
province's workbook is ~250k rows), so neither holds the event loop of the process.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass

import msgspec

from warnbus.domain.models import RegistryData
from warnbus.errors import RegistryImportError
from warnbus.registry_io.boundaries import BoundaryFile, read_boundary_file
from warnbus.registry_io.diff import Diff, diff
from warnbus.registry_io.sandbox import Sheet, workbook_sheets
from warnbus.registry_io.workbook import Candidate, build_candidate


@dataclass(frozen=True)
class Preview:
    """A prepared import: the candidate, what it changes, and the version it was made on."""

    candidate: Candidate
    diff: Diff
    base_version: int
    source: str  # which files, in words


#: What a caller may name as the boundary file's CRS: GCJ-02, or an EPSG code (never a PROJ
#: string or a URL for the parser to resolve).
_CRS_OPTION = re.compile(r"(?i)gcj-?02|EPSG:\d{4,5}")
#: Problems a report keeps (a province's broken workbook can have one per row); counted all.
REPORT_PROBLEMS = 5_000
#: Changes a history entry keeps in detail (a yearly refresh of a province changes most
#: people); its summary counts them all.
HISTORY_CHANGES = 2_000


class Report(msgspec.Struct, frozen=True):
    """What a preview shows and the history keeps (phones masked)."""

    diff: Diff
    problems: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    boundary: str = ""
    kinds: tuple[str, ...] = ()
    problem_count: int = 0  # all problems found (`problems` holds the first ones)
    omitted: int = 0  # changes left out of `diff` (history entries)


def _prepare(base: RegistryData, sheets: Sequence[Sheet] | None, boundary: BoundaryFile | None,
             key: str) -> tuple[Candidate, Diff]:
    cand = build_candidate(base, sheets, boundary, key=key)
    return cand, diff(base, cand.data)


async def prepare(base: RegistryData, base_version: int, *, workbook: bytes | None = None,
                  workbook_name: str = "", boundary: bytes | None = None,
                  boundary_name: str = "", crs: str = "", key: str = "") -> Preview:
    """Read a workbook and/or a boundary file onto `base`. RegistryImportError (Chinese)
    when a file cannot be read at all; problems of its content are in the candidate."""
    if crs and not _CRS_OPTION.fullmatch(crs.strip()):
        raise RegistryImportError("坐标系应为 gcj02，或 EPSG:代码（如 EPSG:4490）")
    sheets = await workbook_sheets(workbook) if workbook is not None else None
    bf = await read_boundary_file(boundary, boundary_name, crs) if boundary is not None else None
    cand, d = await asyncio.to_thread(_prepare, base, sheets, bf, key)
    names = [n for n in (workbook_name, boundary_name) if n]
    return Preview(cand, d, base_version, "导入 " + "、".join(names) if names else "导入")


def report(p: Preview) -> Report:
    c = p.candidate
    return Report(p.diff, tuple(map(str, c.problems[:REPORT_PROBLEMS])), tuple(c.warnings),
                  c.boundary, c.kinds, problem_count=len(c.problems))


def for_history(blob: bytes) -> bytes:
    """A report as the history keeps it: its first HISTORY_CHANGES changes in detail."""
    try:
        r = decode_report(blob)
    except msgspec.DecodeError:  # not a report (a record made by hand): kept as it is
        return blob
    extra = len(r.diff.changes) - HISTORY_CHANGES
    if extra <= 0:
        return blob
    kept = Diff(r.diff.changes[:HISTORY_CHANGES])
    return encode_report(msgspec.structs.replace(r, diff=kept, omitted=r.omitted + extra))


def encode_report(r: Report) -> bytes:
    return msgspec.json.encode(r)


def decode_report(blob: bytes) -> Report:
    return msgspec.json.decode(blob, type=Report)
