"""What a registry change adds, changes and removes, field by field; phones masked.

Shown before a change is applied (console preview, `warnbus registry import`) and kept in the
change history. A changed phone is flagged: it is what a running campaign's next call uses.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

import msgspec

from warnbus.domain.duty import parse_day, schedule
from warnbus.domain.models import (
    Device,
    Grid,
    Person,
    Region,
    RegistryData,
    Roster,
    Site,
    mask_phone,
    mask_text,
)
from warnbus.domain.sites import SITE_KIND_ZH, SITE_ROLE_ZH
from warnbus.registry_io.kinds import LEVEL_ZH, TAG_ZH, role_zh

KIND_ZH = {"regions": "区划", "persons": "人员", "grids": "网格", "devices": "应急广播",
           "sites": "场所", "rosters": "值班表"}
OP_ZH = {"added": "新增", "changed": "修改", "removed": "删除"}


class FieldChange(msgspec.Struct, frozen=True):
    label: str
    old: str
    new: str
    phone: bool = False  # a phone number changed: highlighted


class Change(msgspec.Struct, frozen=True):
    kind: str  # regions | grids | persons
    op: str  # added | changed | removed
    id: str
    name: str
    fields: tuple[FieldChange, ...] = ()

    @property
    def phone_changed(self) -> bool:
        return any(f.phone for f in self.fields)


class Diff(msgspec.Struct, frozen=True):
    changes: tuple[Change, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.changes

    def counts(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {k: dict.fromkeys(OP_ZH, 0) for k in KIND_ZH}
        for c in self.changes:
            out.setdefault(c.kind, dict.fromkeys(OP_ZH, 0))[c.op] += 1
        return out

    @property
    def phones_changed(self) -> int:
        return sum(1 for c in self.changes if c.kind == "persons" and c.op == "changed"
                   and c.phone_changed)

    def summary(self) -> str:
        parts = []
        for kind, ops in self.counts().items():
            said = "，".join(f"{OP_ZH[op]}{n}" for op, n in ops.items() if n)
            if said:
                parts.append(f"{KIND_ZH.get(kind, kind)}：{said}")
        if self.phones_changed:
            parts.append(f"其中手机号变更 {self.phones_changed} 人")
        return "；".join(parts) or "没有变化"

    def lines(self, limit: int = 0) -> list[str]:
        """One line per change (CLI): `人员 修改 p1 张三：手机 138****0000 → 139****1111 ◆`."""
        out = []
        for c in self.changes[: limit or None]:
            what = "；".join(f"{f.label} {f.old or '（空）'} → {f.new or '（空）'}"
                            + (" ◆手机号变更" if f.phone else "") for f in c.fields)
            out.append(f"{KIND_ZH.get(c.kind, c.kind)} {OP_ZH[c.op]} {c.id} {c.name}"
                       + (f"：{what}" if what else ""))
        if limit and len(self.changes) > limit:
            out.append(f"……另有 {len(self.changes) - limit} 处变化")
        return out


def _region(data: RegistryData) -> Callable[[str | None], str]:
    def show(code: str | None) -> str:
        r = data.regions.get(code or "")
        return f"{code} {r.name}" if r else (code or "")
    return show


def _person_fields(data: RegistryData) -> Mapping[str, Callable[[Person], str]]:
    region = _region(data)
    return {
        "姓名": lambda p: p.name, "职位": lambda p: role_zh(p.role),
        "所属": lambda p: region(p.region),
        "手机": lambda p: mask_phone(p.phone) if p.phone else "",
        "企业微信": lambda p: mask_text(p.wecom) if p.wecom else "",
        "参加演练": lambda p: "是" if p.drill else "否", "备注": lambda p: p.note or "",
    }


def _grid_fields(data: RegistryData) -> Mapping[str, Callable[[Grid], str]]:
    region = _region(data)

    def who(pid: str | None) -> str:
        p = data.persons.get(pid or "")
        return f"{pid} {p.name}" if p else (pid or "")

    return {
        "网格名": lambda g: g.name, "村": lambda g: region(g.village),
        "网格员": lambda g: who(g.primary), "备岗": lambda g: who(g.backup),
        "标签": lambda g: "、".join(TAG_ZH.get(t, t) for t in g.tags),
        "边界": lambda g: f"{len(g.polygon) - 1}个顶点" if g.polygon else "",
        "备注": lambda g: g.note or "",
    }


def _region_fields(data: RegistryData) -> Mapping[str, Callable[[Region], str]]:
    return {"名称": lambda r: r.name, "级别": lambda r: LEVEL_ZH[r.level],
            "上级": lambda r: r.parent or ""}


def _table(kind: str, old: Mapping[str, Any], new: Mapping[str, Any],
           old_fields: Mapping[str, Callable[[Any], str]],
           new_fields: Mapping[str, Callable[[Any], str]]) -> list[Change]:
    out = []
    for rid in sorted(old.keys() | new.keys()):
        a, b = old.get(rid), new.get(rid)
        if a == b:
            continue
        if a is None and b is not None:
            out.append(Change(kind, "added", rid, getattr(b, "name", ""), tuple(
                FieldChange(label, "", show(b), label == "手机")
                for label, show in new_fields.items() if show(b))))
        elif b is None and a is not None:
            out.append(Change(kind, "removed", rid, getattr(a, "name", "")))
        elif a is not None and b is not None:
            fields = []
            for label, show in new_fields.items():
                before, after = old_fields[label](a), show(b)
                if label == "边界" and getattr(a, "polygon", None) != getattr(b, "polygon", None):
                    fields.append(FieldChange(label, before, after + "（已更新）"))
                elif before != after or (label == "手机" and getattr(a, "phone", None) != getattr(
                        b, "phone", None)):
                    fields.append(FieldChange(label, before, after, label == "手机"))
            out.append(Change(kind, "changed", rid, getattr(b, "name", ""), tuple(fields)))
    return out


def _device_fields(data: RegistryData) -> Mapping[str, Callable[[Device], str]]:
    region = _region(data)
    return {"名称": lambda d: d.name, "村": lambda d: region(d.region),
            "网格": lambda d: d.grid or ""}


def _site_fields(data: RegistryData) -> Mapping[str, Callable[[Site], str]]:
    region = _region(data)

    def people(s: Site) -> str:
        out = []
        for sp in s.people:
            p = data.persons.get(sp.person)
            out.append(f"{sp.person} {p.name if p else ''}（{SITE_ROLE_ZH.get(sp.role, sp.role)}）")
        return "、".join(out)

    def count(v: int | None) -> str:
        return "" if v is None else str(v)

    return {
        "名称": lambda s: s.name, "类型": lambda s: SITE_KIND_ZH.get(s.kind, s.kind),
        "统一编号": lambda s: s.code or "", "村": lambda s: region(s.village),
        "网格": lambda s: s.grid or "",
        "位置": lambda s: f"{s.point[1]}, {s.point[0]}" if s.point else "",
        "边界": lambda s: f"{len(s.polygon) - 1}个顶点" if s.polygon else "",
        "户数": lambda s: count(s.households), "人数": lambda s: count(s.residents),
        "容纳人数": lambda s: count(s.capacity), "责任人": people,
    }


def _roster_fields(data: RegistryData) -> Mapping[str, Callable[[Roster], str]]:
    return {
        "名称": lambda r: r.name, "起止": lambda r: f"{r.first_day} 至 {r.last_day}",
        "交班时间": lambda r: r.shift_start,
        "审批": lambda r: f"已审批（{r.approved_by}）" if r.approved_by else "待审批",
        "职责数": lambda r: str(len(r.entries)),
    }


#: Who differs on how many days, shown per region and duty role of a changed version.
SHIFTS_SHOWN = 5


def _shift_fields(old: RegistryData, new: RegistryData, a: Roster, b: Roster
                  ) -> list[FieldChange]:
    """The shifts a changed version changes: per region and role, the first days, who held
    them before and who holds them now."""
    plan_a, plan_b = schedule(a), schedule(b)
    first_a, first_b = parse_day(a.first_day), parse_day(b.first_day)
    if first_a is None or first_b is None:
        return []

    def name(data: RegistryData, pid: str | None) -> str:
        p = data.persons.get(pid or "")
        return p.name if p else (pid or "无人")

    out = []
    for key in sorted(plan_a.keys() | plan_b.keys()):
        was = {first_a + timedelta(days=k): pid for k, pid in enumerate(plan_a.get(key, ()))}
        now = {first_b + timedelta(days=k): pid for k, pid in enumerate(plan_b.get(key, ()))}
        changed = sorted(d for d in was.keys() | now.keys() if was.get(d) != now.get(d))
        if not changed:
            continue
        region = new.regions.get(key[0]) or old.regions.get(key[0])
        label = f"{region.name if region else key[0]} {role_zh(key[1])}"
        more = f" 等{len(changed)}天" if len(changed) > SHIFTS_SHOWN else ""
        shown = changed[:SHIFTS_SHOWN]
        out.append(FieldChange(
            label, "、".join(f"{d:%m-%d} {name(old, was.get(d))}" for d in shown) + more,
            "、".join(f"{d:%m-%d} {name(new, now.get(d))}" for d in shown) + more))
    return out


Fields = Callable[[RegistryData], Mapping[str, Callable[[Any], str]]]
#: The tables compared, in order, with how each shows its fields (a changed roster version
#: also with the shifts it changes); a table not listed is compared as a whole record
#: (`_whole`), so no change of the registry goes unshown.
TABLES: dict[str, Fields] = {
    "regions": _region_fields, "persons": _person_fields, "grids": _grid_fields,
    "devices": _device_fields, "sites": _site_fields, "rosters": _roster_fields,
}


def _whole(data: RegistryData) -> Mapping[str, Callable[[Any], str]]:
    return {"内容": lambda r: msgspec.json.encode(msgspec.to_builtins(r)).decode()[:200]}


def diff(old: RegistryData, new: RegistryData) -> Diff:
    """What `new` changes of `old`: the TABLES in order, then any other table."""
    names = [*TABLES, *(f for f in new.__struct_fields__ if f not in TABLES)]
    out: list[Change] = []
    for name in names:
        fields = TABLES.get(name, _whole)
        changes = _table(name, getattr(old, name), getattr(new, name), fields(old), fields(new))
        if name == "rosters":  # and which shifts a changed version changes
            changes = [msgspec.structs.replace(c, fields=(*c.fields, *_shift_fields(
                old, new, old.rosters[c.id], new.rosters[c.id]))) if c.op == "changed" else c
                for c in changes]
        out += changes
    return Diff(tuple(out))
