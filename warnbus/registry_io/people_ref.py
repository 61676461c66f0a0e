"""A person named in a row of another sheet (值班表, 场所责任人): by 人员编号, by name, or new.

A row names a person by id, or by name alone where one person of that name fits (its phone
picks among namesakes); a name that nobody fits, with a phone, is a new person, numbered as
the 人员 sheet numbers them (one new person however many rows name them). A phone written
next to a known person is read too: the person's own phone (or the one the 人员 sheet had
before this import) says nothing; another number is that person's new phone, which every
row and the 人员 sheet must then agree on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import msgspec

from warnbus.domain.models import Person, Role, mask_phone
from warnbus.registry_io import cells
from warnbus.registry_io.kinds import _ID, Build, next_free
from warnbus.registry_io.sheets import Table

#: Keys of the columns that name one kind of person in a sheet: id, name, phone.
Columns = tuple[str, str, str]


@dataclass(frozen=True)
class Named:
    """What a row says of one person: any of id, name, phone ("" / None when not given)."""

    pid: str
    name: str
    phone: str | None


def named(table: Table, n: int, row: Sequence[cells.Cell], keys: Columns,
          *, many: bool = False) -> list[Named] | None:
    """The people a row names in its columns `keys` (a list in each cell when `many`);
    None after a problem (located)."""
    id_key, name_key, phone_key = keys
    try:
        key = id_key
        ids = _split(table, row, id_key, many, cells.ascii_text)
        key = name_key
        names = _split(table, row, name_key, many, cells.text)
        key = phone_key
        raw = _split(table, row, phone_key, many, cells.ascii_text)
        phones = [cells.phone(p) if p else None for p in raw]
    except cells.CellError as e:
        table.problem(n, key, e.message)
        return None
    count = max(len(ids), len(names))
    for got, key in ((ids, id_key), (names, name_key), (phones, phone_key)):
        if got and len(got) != count:
            table.problem(n, key, f"人数（{len(got)}）与{_other(table, key, keys)}的人数"
                          f"（{count}）不一致")
            return None
    if not many and count > 1:
        table.problem(n, name_key if names else id_key, "只能填一人")
        return None
    for pid in ids:
        if not _ID.fullmatch(pid):
            table.problem(n, id_key, "编号只能由字母、数字和 _ . - 组成")
            return None
    return [Named(ids[i] if ids else "", names[i] if names else "", phones[i] if phones else None)
            for i in range(count)]


def _split(table: Table, row: Sequence[cells.Cell], key: str, many: bool,
           read: Callable[[cells.Cell], str]) -> list[str]:
    if not table.has(key):
        return []
    value = read(table.raw(row, key))
    if not value:
        return []
    return [w for w in (cells.words(value) if many else (value,)) if w]


def _other(table: Table, key: str, keys: Columns) -> str:
    return "、".join(f"「{table.spec.column(k).header}」" for k in keys if k != key
                    and table.has(k))


@dataclass
class People:
    """Resolves the people of one sheet's rows onto `build.persons`."""

    build: Build
    table: Table
    fresh: Iterator[str] = field(init=False)
    made: dict[tuple[str, Role, str, str], str] = field(default_factory=dict)
    #: New phones set by this import, by person: (phone, sheet, row) of the first row.
    phones: dict[str, tuple[str, str, int]] = field(default_factory=dict)

    #: Person ids by name (a sheet of a province's rows looks names up, not every person).
    by_name: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.fresh = next_free("p-", (*self.build.persons, *self.build.base.persons), width=5)
        for pid in sorted(self.build.persons):
            self.by_name.setdefault(self.build.persons[pid].name, []).append(pid)

    def resolve(self, n: int, keys: Columns, who: Named, *, label: str,
                candidates: Callable[[Person], bool], fits: Callable[[Person], str | None],
                new: tuple[Role, str] | None) -> str | None:
        """The person id a row names ("" when none); None after a problem, located at the
        row's id or name column (its phone column for a phone). `candidates`: whom a name
        alone may mean; `fits`: why a person cannot be here (None: they can); `new`: the
        role and region of a person created."""
        t, persons = self.table, self.build.persons
        key = keys[0] if who.pid or not t.has(keys[1]) else keys[1]
        if who.pid:
            person = persons.get(who.pid)
            if person is None:
                if not self.build.is_broken("persons", who.pid):
                    t.problem(n, key, f"「人员」表中没有编号为 {who.pid} 的人员")
                return None
            if who.name and who.name != person.name:
                t.problem(n, keys[1], f"{label}姓名「{who.name}」与人员 {who.pid} 的姓名"
                          f"「{person.name}」不一致")
                return None
        elif who.name:
            found = [p for i in self.by_name.get(who.name, ())
                     if (p := persons[i]) and candidates(p)]
            if len(found) > 1 and who.phone:
                found = [p for p in found if who.phone in (p.phone, self._was(p.id))]
            if len(found) > 1:
                t.problem(n, key, f"有{len(found)}位名为「{who.name}」的{label}，请填写人员编号")
                return None
            if not found:
                return self._new(n, key, who, label, new)
            person = found[0]
        else:
            return ""
        why = fits(person)
        if why:
            t.problem(n, key, why)
            return None
        if who.phone and not self._phone(n, keys[2], person, who.phone):
            return None
        return person.id

    def _was(self, pid: str) -> str | None:
        old = self.build.base.persons.get(pid)
        return old.phone if old else None

    def _new(self, n: int, key: str, who: Named, label: str,
             new: tuple[Role, str] | None) -> str | None:
        if new is None:
            self.table.problem(n, key, f"没有名为「{who.name}」的{label}")
            return None
        if not who.phone:
            self.table.problem(n, key, f"没有名为「{who.name}」的{label}：新增人员请同时填写手机")
            return None
        role, region = new
        made = (region, role, who.name, who.phone)
        pid = self.made.get(made)
        if pid is None:
            pid = self.made[made] = next(self.fresh)
            self.build.persons[pid] = Person(pid, who.name, role, region, phone=who.phone)
            self.by_name.setdefault(who.name, []).append(pid)
            self.build.where[("persons", pid)] = (self.table.sheet, n)
        return pid

    def _phone(self, n: int, key: str, person: Person, phone: str) -> bool:
        """A phone written next to a known person: theirs, the one before this import (an
        old copy), or their new phone."""
        was = self._was(person.id)
        if phone in (person.phone, was):
            return True
        if person.phone != was:  # changed already: by another row, sheet or the 人员 sheet
            set_by = self.phones.get(person.id)
            where = f"本表第{set_by[2]}行" if set_by else "「人员」表或另一张表"
            self.table.problem(n, key, f"{person.name}（{person.id}）的手机号已在{where}改为"
                               f"另一个号码（{mask_phone(person.phone or '')}），两处须一致")
            return False
        self.phones[person.id] = (phone, self.table.sheet, n)
        self.build.persons[person.id] = msgspec.structs.replace(person, phone=phone)
        return True
