"""The 场所责任人 sheet: who answers for each site, and as what (群测群防员, 巡查员 ...).

One row per site and person, in the order they are called (the first is the site's first
call). The person is named by 人员编号, or by name (and phone) among the people of the
site's village and township; a name nobody has there, with a phone, is a new person
(场所责任人) of the site's village. A phone next to a known person is their new phone
(`people_ref`). The sheet gives every site its people: a site with no row has nobody.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from functools import partial

import msgspec

from warnbus.domain.models import Person, RegistryData, Role, Site, SitePerson
from warnbus.domain.sites import SITE_KIND_ZH, SITE_ROLE_ZH, SITE_ROLES, SiteRole
from warnbus.registry_io import cells
from warnbus.registry_io.kinds import _YEAR, Build, _cell, _year
from warnbus.registry_io.people_ref import People, named
from warnbus.registry_io.sheets import Column, SheetSpec, Table

SPEC = SheetSpec("site_people", "场所责任人", (
    Column("site", "场所编号", (), width=20, as_text=True,
           hint="「场所」表的场所编号（新增场所未编号时，可只填场所名称）"),
    Column("site_name", "场所名称", ("名称",), width=22, hint="仅供核对；或代替场所编号"),
    Column("person_id", "人员编号", ("编号",), width=16, as_text=True,
           hint="「人员」表的人员编号；可只填姓名和手机（新人员即新增）"),
    Column("name", "姓名", ("责任人", "责任人姓名"), width=10),
    Column("role", "职责", ("场所职责", "责任类型", "角色"), required=True, width=16,
           hint=" / ".join(SITE_ROLE_ZH.values())),
    Column("phone", "手机", ("手机号", "联系电话", "电话"), width=16, as_text=True,
           hint="改号码即修改此人的手机号（「人员」表同时改时须一致）"),
    _YEAR,
), aliases=("场所人员", "监测员", "责任人名单"), hint="每行一个场所的一位责任人，按呼叫顺序")

_ROLE_WORDS: Mapping[str, SiteRole] = {
    **{v: k for k, v in SITE_ROLE_ZH.items()}, **{r.value: r for r in SiteRole},
    "监测员": SiteRole.MONITOR, "群测群防监测员": SiteRole.MONITOR,
    "防灾责任人": SiteRole.RESPONSIBLE, "责任人": SiteRole.RESPONSIBLE,
    "巡查责任人": SiteRole.PATROLLER, "水利工程巡查员": SiteRole.PATROLLER,
    "预警员": SiteRole.FLOOD_WARDEN, "管理员": SiteRole.SHELTER_MANAGER,
    "转移责任人": SiteRole.EVACUATION_LEAD,
}
_KEYS = ("person_id", "name", "phone")


def _role(value: cells.Cell) -> SiteRole:
    return cells.choice(value, _ROLE_WORDS, "职责", SITE_ROLE_ZH.values())


class SitePeople:
    spec = SPEC

    def read(self, table: Table, build: Build) -> None:
        if not (table.has_any("site", "site_name") and table.has_any("name", "person_id")):
            return
        people = People(build, table)
        names = Counter(s.name for s in build.sites.values())
        by_name = {s.name: sid for sid, s in build.sites.items() if names[s.name] == 1}
        got: dict[str, list[SitePerson]] = defaultdict(list)
        seen: dict[tuple[str, str, SiteRole], int] = {}
        for n, row in table.records():
            site = self._site(table, build, by_name, names, n, row)
            role = _cell(table, n, row, "role", _role)
            who = named(table, n, row, _KEYS)
            _year(table, build, n, row)
            if site is None or not isinstance(role, SiteRole) or who is None:
                continue
            if role not in SITE_ROLES[site.kind]:
                allowed = "、".join(SITE_ROLE_ZH[r] for r in sorted(SITE_ROLES[site.kind]))
                table.problem(n, "role", f"{SITE_ROLE_ZH[role]}不适用于{SITE_KIND_ZH[site.kind]}"
                              f"（可用：{allowed}）")
                continue
            if not who or not (who[0].pid or who[0].name):
                table.problem(n, "name", "没有责任人：请填写人员编号或姓名")
                continue
            pid = people.resolve(n, _KEYS, who[0], label="人员",
                                 candidates=partial(_near, build, site),
                                 fits=lambda p: None, new=(Role.SITE, site.village))
            if not pid:
                continue
            if (site.id, pid, role) in seen:
                table.problem(n, "name", f"与第{seen[(site.id, pid, role)]}行重复")
                continue
            seen[(site.id, pid, role)] = n
            got[site.id].append(SitePerson(pid, role))
        build.sites = {sid: msgspec.structs.replace(s, people=tuple(got.get(sid, ())))
                       for sid, s in build.sites.items()}
        build.read.add("site_people")

    @staticmethod
    def _site(table: Table, build: Build, by_name: Mapping[str, str], names: Counter[str],
              n: int, row: Sequence[cells.Cell]) -> Site | None:
        sid = _cell(table, n, row, "site", cells.ascii_text) if table.has("site") else ""
        name = table.text(n, row, "site_name") if table.has("site_name") else ""
        if sid is None or name is None:
            return None
        if sid:
            site = build.sites.get(str(sid))
            if site is None:
                if not build.is_broken("sites", str(sid)):
                    table.problem(n, "site", f"「场所」中没有编号为 {sid} 的场所")
                return None
            if name and name != site.name:
                table.problem(n, "site_name", f"与场所 {sid} 的名称「{site.name}」不一致")
                return None
            return site
        if not name:
            table.problem(n, "site", "请填写场所编号（或场所名称）")
            return None
        found = by_name.get(name)
        if found is None:
            table.problem(n, "site_name", f"有{names[name]}处场所叫「{name}」，请填写场所编号"
                          if names[name] else f"「场所」中没有名为「{name}」的场所")
            return None
        return build.sites[found]

    def check(self, build: Build) -> None:
        for sid, s in build.sites.items():
            if not s.people and not build.is_broken("sites", sid):
                build.at("sites", sid, "场所编号", f"场所 {sid}（{s.name}）没有责任人：请在"
                         "「场所责任人」表中填写", SPEC.name)
        if "site_people" in build.read:
            return
        for sid, s in build.sites.items():  # people kept while the 人员 sheet changed
            for sp in s.people:
                if sp.person not in build.persons and not build.is_broken("persons", sp.person):
                    build.at("persons", sp.person, None, f"场所 {sid}（{s.name}）的责任人 "
                             f"{sp.person} 已不在「人员」表中", "人员")

    def rows(self, data: RegistryData, year: int | None) -> Iterable[Sequence[str | None]]:
        for sid in sorted(data.sites, key=lambda k: (data.sites[k].village, k)):
            s = data.sites[sid]
            for sp in s.people:
                p = data.persons.get(sp.person)
                yield (sid, s.name, sp.person, p.name if p else None,
                       SITE_ROLE_ZH.get(sp.role, sp.role), p.phone if p else None,
                       str(year) if year else None)


def _near(build: Build, site: Site, person: Person) -> bool:
    """Whom a name alone may mean at a site: the people of its village and township."""
    village = build.regions.get(site.village)
    return person.region in (site.village, village.parent if village else None)
