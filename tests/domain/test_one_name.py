"""One name, one thing: a state lives in one enum, and the records of a campaign's state are
each one class (issue 15: two `Outcome`s, two `DeviceState`s, `GridView` beside `HeldGrid`).

A lint over the source (its syntax trees): every StrEnum of `warnbus/`, `channels/` and
`rules/` has a name no other class there takes, and no two StrEnums hold the same values (a
copy under another name); the records of `warnbus/domain/states.py` are defined nowhere else,
under their name or as a dataclass of the same fields.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STATES = REPO / "warnbus" / "domain" / "states.py"


def classes() -> Iterator[tuple[str, ast.ClassDef]]:
    """(file, class) for every class of the three packages, nested ones too."""
    for top in ("warnbus", "channels", "rules"):
        for path in sorted((REPO / top).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef):
                    yield str(path.relative_to(REPO)), node


def is_strenum(node: ast.ClassDef) -> bool:
    return any(isinstance(b, ast.Name) and b.id == "StrEnum" for b in node.bases)


def values(node: ast.ClassDef) -> frozenset[str]:
    """The member values of an enum's body (`NAME = "value"`)."""
    return frozenset(
        stmt.value.value for stmt in node.body
        if isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Constant)
        and isinstance(stmt.value.value, str))


def fields(node: ast.ClassDef) -> frozenset[str]:
    """The annotated fields of a record's body."""
    return frozenset(stmt.target.id for stmt in node.body
                     if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name))


def test_an_enum_name_names_one_class() -> None:
    where: dict[str, list[str]] = defaultdict(list)
    enums: list[str] = []
    for path, node in classes():
        where[node.name].append(f"{path}:{node.lineno}")
        if is_strenum(node):
            enums.append(node.name)
    assert len(enums) > 20  # the lint sees the real enums
    twice = {name: where[name] for name in enums if len(where[name]) > 1}
    assert not twice, f"a StrEnum's name names another class too: {twice}"


def test_no_enum_copies_another() -> None:
    by_values: dict[frozenset[str], list[str]] = defaultdict(list)
    for path, node in classes():
        if is_strenum(node):
            by_values[values(node)].append(f"{path}:{node.lineno} {node.name}")
    copies = [names for vals, names in by_values.items() if vals and len(names) > 1]
    assert not copies, f"StrEnums with the same values: {copies}"


def test_the_state_records_are_defined_once() -> None:
    tree = ast.parse(STATES.read_text(encoding="utf-8"))
    records = {n.name: fields(n) for n in tree.body
               if isinstance(n, ast.ClassDef) and not is_strenum(n)}
    assert "GridView" in records
    again = []
    for path, node in classes():
        if path == str(STATES.relative_to(REPO)) or not fields(node):
            continue
        mine = fields(node)
        for name, theirs in records.items():
            if node.name == name or (len(theirs) > 2 and mine <= theirs and len(mine) > 2):
                again.append(f"{path}:{node.lineno} {node.name} (like {name})")
    assert not again, f"records of domain/states.py defined again: {again}"
