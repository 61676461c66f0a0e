"""Sheets and columns of a registry workbook, and where a problem is (sheet, row, column).

One sheet per record kind, Chinese headers as offices write them (with the other names the
same column goes by). A sheet's header row is found among its first rows (offices put a
title above it), columns in any order; a column the sheet does not know is reported as a
warning, never read silently.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from warnbus.registry_io.cells import Cell, CellError, text

#: How many rows above the header a sheet may have (a title, a date line).
HEADER_SEARCH_ROWS = 10
BOUNDARY_SHEET = "边界文件"
#: How the template's example row begins (`is_example`).
EXAMPLE = "示例："


@dataclass(frozen=True)
class Problem:
    """One problem of an import: where (sheet, Excel row, column header) and what, in Chinese."""

    sheet: str
    row: int | None
    column: str | None
    message: str

    def __str__(self) -> str:
        if self.sheet == BOUNDARY_SHEET:
            where = f"「{self.sheet}」" + (f"第{self.row}个要素" if self.row else "")
        else:
            where = f"「{self.sheet}」表" + (f"第{self.row}行" if self.row else "")
        if self.column:
            where += f"「{self.column}」" + ("" if self.sheet == BOUNDARY_SHEET else "列")
        return f"{where}：{self.message}"


@dataclass(frozen=True)
class Column:
    key: str  # what the reader calls it
    header: str  # what the export writes
    aliases: tuple[str, ...] = ()
    required: bool = False  # the sheet needs the column
    width: float = 14.0
    hint: str = ""  # for the template's 说明 sheet
    as_text: bool = False  # a code or number kept as text in Excel (no 1.38E+10)

    def names(self) -> tuple[str, ...]:
        return (self.header, *self.aliases)


@dataclass(frozen=True)
class SheetSpec:
    kind: str  # the record kind: regions, grids, persons, sites, site_people, rosters
    name: str
    columns: tuple[Column, ...]
    aliases: tuple[str, ...] = ()
    hint: str = ""

    def column(self, key: str) -> Column:
        return next(c for c in self.columns if c.key == key)


def _norm(header: str) -> str:
    return "".join(header.split()).replace("（", "(").replace("）", ")").removesuffix("*")


@dataclass
class Table:
    """One sheet's data rows, by Excel row number, with its columns found by header."""

    spec: SheetSpec
    sheet: str  # the name in the workbook
    header_row: int
    index: dict[str, int]  # column key -> position
    rows: list[tuple[int, Sequence[Cell]]]
    problems: list[Problem] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)  # headers read as nothing

    def has(self, key: str) -> bool:
        return key in self.index

    def has_any(self, *keys: str) -> bool:
        """Whether the sheet has one of the columns `keys` (either does); if not, a problem
        of its header row, as for a missing required column."""
        if any(self.has(k) for k in keys):
            return True
        names = "」或「".join(self.spec.column(k).header for k in keys)
        self.problem(self.header_row, keys[0], f"缺少此列（表头应有「{names}」）")
        return False

    def raw(self, cells: Sequence[Cell], key: str) -> Cell:
        i = self.index.get(key)
        return cells[i] if i is not None and i < len(cells) else None

    def problem(self, row: int | None, key: str | None, message: str) -> None:
        column = self.spec.column(key).header if key else None
        self.problems.append(Problem(self.sheet, row, column, message))

    def text(self, row: int, cells: Sequence[Cell], key: str) -> str | None:
        """The cell as text; None (and a problem) when it cannot be read as text."""
        try:
            return text(self.raw(cells, key))
        except CellError as e:
            self.problem(row, key, e.message)
            return None

    def records(self) -> Iterator[tuple[int, Sequence[Cell]]]:
        return iter(self.rows)


def find_sheet(specs: Sequence[SheetSpec], name: str, rows: Sequence[Sequence[Cell]] = (),
               ) -> SheetSpec | None:
    """The kind of a sheet: by its name, else by its header (a sheet called Sheet1 whose
    header has every required column of one kind, and more of its columns than any other)."""
    n = _norm(name)
    named = next((s for s in specs if n in {_norm(x) for x in (s.name, *s.aliases)}), None)
    if named is not None:
        return named
    scored = []
    for spec in specs:
        table = make_table(spec, name, rows[:HEADER_SEARCH_ROWS])
        if not any(p.row == table.header_row for p in table.problems):
            scored.append((len(table.index), spec.name, spec))
    scored.sort(reverse=True)
    if scored and (len(scored) == 1 or scored[0][0] > scored[1][0]):
        return scored[0][2]
    return None


def make_table(spec: SheetSpec, sheet: str, rows: Sequence[Sequence[Cell]]) -> Table:
    """Find the header row of a sheet (the first rows that name the most of its columns) and
    return its data rows; a missing required column is a problem of the header row."""
    names = {_norm(n): c.key for c in spec.columns for n in c.names()}
    best, best_hits = 0, -1
    for i, row in enumerate(rows[:HEADER_SEARCH_ROWS]):
        hits = sum(1 for v in row if isinstance(v, str) and _norm(v) in names)
        if hits > best_hits:
            best, best_hits = i, hits
    header = rows[best] if rows else []
    table = Table(spec, sheet, best + 1, {}, [])
    for pos, value in enumerate(header):
        label = value.strip() if isinstance(value, str) else ("" if value is None else str(value))
        if not label:
            continue
        key = names.get(_norm(label))
        if key is None:
            table.unknown.append(label)
        elif key in table.index:
            table.problem(best + 1, key, f"此列出现了两次（第{table.index[key] + 1}列和"
                                         f"第{pos + 1}列）")
        else:
            table.index[key] = pos
    for col in spec.columns:
        if col.required and col.key not in table.index:
            table.problems.append(Problem(sheet, best + 1, col.header,
                                          f"缺少此列（表头应有「{col.header}」）"))
    for n, row in enumerate(rows[best + 1:], start=best + 2):
        if n == best + 2 and is_example(row):
            continue
        if any(v is not None and v != "" and not (isinstance(v, str) and not v.strip())
               for v in row):
            table.rows.append((n, row))
    return table


def is_example(row: Sequence[Cell]) -> bool:
    """The template's example row (right under the header, its first cell `示例：...`): shown
    to whoever fills the sheet in, never imported."""
    first = row[0] if row else None
    return isinstance(first, str) and first.strip().startswith(EXAMPLE)
