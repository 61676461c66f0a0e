"""One person edited by hand (phone, position): the registry it makes, or why not, in Chinese."""

from __future__ import annotations

import msgspec

from warnbus.domain.models import RegistryData, Role
from warnbus.registry import validate_registry
from warnbus.registry_io import cells
from warnbus.registry_io.kinds import (
    _ROLE_WORDS,
    LEVEL_ZH,
    ROLE_ZH,
    levels_zh,
    role_levels,
    role_zh,
)


def edit_person(base: RegistryData, pid: str, *, phone: str, role: str,
                ) -> tuple[RegistryData, list[str]]:
    """`base` with person `pid`'s phone and position changed; the problems when it cannot
    be (the change is then not made)."""
    person = base.persons.get(pid)
    if person is None:
        return base, [f"台账中没有人员 {pid}"]
    problems: list[str] = []
    try:
        new_phone = cells.phone(phone)
    except cells.CellError as e:
        problems.append(f"手机：{e.message}")
        new_phone = person.phone
    new_role = _ROLE_WORDS.get(role.strip())
    if new_role is None:
        problems.append("职位应为：" + "、".join(ROLE_ZH.values()))
        new_role = person.role
    region = base.regions.get(person.region)
    if region is not None and region.level not in role_levels(new_role):
        problems.append(f"职位：{role_zh(new_role)}应属于{levels_zh(role_levels(new_role))}，"
                        f"此人属于{region.name}（{LEVEL_ZH[region.level]}）")
    if not new_phone and not person.wecom:
        problems.append("手机：没有手机号，也没有企业微信账号：无法通知此人")
    if new_role is not person.role:
        for g in sorted(base.grids.values(), key=lambda g: g.id):
            for held, as_role in ((g.primary, Role.PRIMARY), (g.backup, Role.BACKUP)):
                if held == pid and new_role is not as_role:
                    problems.append(f"职位：此人是网格 {g.id}（{g.name}）的{role_zh(as_role)}，"
                                    "请先在网格中换人，再改职位")
    if problems:
        return base, problems
    changed = msgspec.structs.replace(person, phone=new_phone, role=new_role)
    data = msgspec.structs.replace(base, persons={**base.persons, pid: changed})
    return data, [f"校验未通过：{line}" for line in validate_registry(data)]
