"""Sites and duty rosters in the registry: files, validation (in Chinese), chains by duty."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path

import msgspec
import pytest
from registry_kit import tiny_registry, tiny_with_sites_and_rosters

from warnbus.domain.duty import BEIJING, ChangeKind, DutyChange, DutySource, RosterEntry, Shift
from warnbus.domain.models import Person, RegistryData, Role, SitePerson, SiteRole
from warnbus.errors import RegistryError
from warnbus.registry import (
    Registry,
    dump_registry,
    load_registry,
    read_registry,
    validate_registry,
)

Edit = Callable[[RegistryData], None]


def bj(text: str) -> float:
    """A Beijing time as epoch seconds."""
    return datetime.fromisoformat(text).replace(tzinfo=BEIJING).timestamp()


def test_round_trip_and_optional_files(tmp_path: Path) -> None:
    data = tiny_with_sites_and_rosters()
    dump_registry(data, tmp_path)
    assert (tmp_path / "sites.json").is_file() and (tmp_path / "rosters.json").is_file()
    back = load_registry(tmp_path).data
    assert back.sites == data.sites and back.rosters == data.rosters
    # Without sites and rosters the files go (a stale one must not come back on load).
    dump_registry(tiny_registry(), tmp_path)
    assert not (tmp_path / "sites.json").exists()
    assert load_registry(tmp_path).data.sites == {}


def test_nested_unknown_key_is_an_error(tmp_path: Path) -> None:
    dump_registry(tiny_with_sites_and_rosters(), tmp_path)
    text = (tmp_path / "sites.json").read_text()
    (tmp_path / "sites.json").write_text(text.replace('"role":"monitor"',
                                                      '"role":"monitor","phone":"1"', 1))
    with pytest.raises(RegistryError) as e:
        read_registry(tmp_path)
    assert "sites.json" in str(e.value) and "phone" in str(e.value)


def _site(sid: str, **changes: object) -> Edit:
    def edit(d: RegistryData) -> None:
        d.sites[sid] = msgspec.structs.replace(d.sites[sid], **changes)
    return edit


def _entry(i: int, **changes: object) -> Edit:
    def edit(d: RegistryData) -> None:
        r = d.rosters["2026-07"]
        entries = list(r.entries)
        entries[i] = msgspec.structs.replace(entries[i], **changes)
        d.rosters["2026-07"] = msgspec.structs.replace(r, entries=tuple(entries))
    return edit


def _roster(**changes: object) -> Edit:
    def edit(d: RegistryData) -> None:
        d.rosters["2026-07"] = msgspec.structs.replace(d.rosters["2026-07"], **changes)
    return edit


def _no_duty(d: RegistryData) -> None:
    del d.persons["p4"], d.persons["p7"]
    d.rosters.clear()


CASES: list[tuple[str, Edit, str]] = [
    ("site id clash", _site("hp1", id="g1"),
     "hp1（桃花村滑坡隐患点）：登记的编号与其自身编号 g1 不同"),
    ("site id is a grid's", lambda d: d.sites.__setitem__("g1", msgspec.structs.replace(
        d.sites["hp1"], id="g1")), "编号与网格 g1 相同"),
    ("site id separator", lambda d: d.sites.__setitem__("a:b", msgspec.structs.replace(
        d.sites["hp1"], id="a:b")), "不能含“|”“,”“:”或空白"),
    ("site village", _site("hp1", village="430623101000"), "所在村 430623101000 不是台账中的村"),
    ("site grid", _site("hp1", grid="g9"), "所在网格 g9 不存在"),
    ("no location", _site("hp1", point=None), "没有位置"),
    ("point range", _site("hp1", point=(95.0, 112.7)), "超出纬度"),
    ("outside its grid", _site("hp1", point=(29.5, 112.7)), "不在所在网格 g1内"),
    ("range outside its grid", _site("dz1", point=None, polygon=(
        (29.5, 112.7), (29.5, 112.71), (29.51, 112.71), (29.5, 112.7))), "不在所在"),
    ("open ring", _site("dz1", polygon=((29.40, 112.70), (29.40, 112.705), (29.405, 112.705))),
     "闭合环"),
    ("no people", _site("hp1", people=()), "没有责任人"),
    ("unknown person", _site("hp1", people=(SitePerson("zz", SiteRole.MONITOR),)),
     "责任人 zz 不在人员台账中"),
    ("role of another kind", _site("hp1", people=(SitePerson("s1", SiteRole.PATROLLER),)),
     "职责“巡查员”不适用于地质灾害隐患点"),
    ("duplicate person", _site("hp1", people=(SitePerson("s1", SiteRole.MONITOR),) * 2),
     "责任人 s1（群测群防员）重复"),
    ("households off a danger zone", _site("hp1", households=3), "只有危险区登记户数和人数"),
    ("negative residents", _site("dz1", residents=-1), "人数不能为负数"),
    ("roster day format", _roster(first_day="2026-7-1"), "起始日期 '2026-7-1' 不是 YYYY-MM-DD"),
    ("roster backwards", _roster(last_day="2026-06-01"), "结束日期 2026-06-01 早于起始日期"),
    ("roster too long", _roster(last_day="2029-07-01"), "超过 731 天"),
    ("shift start", _roster(shift_start="8点"), "交班时间 '8点' 不是 HH:MM"),
    ("half an approval", _roster(approved_at=None), "审批人和审批时间须同时填写"),
    ("not a duty role", _entry(1, role=Role.VILLAGE_HEAD), "村负责人：不是值班职责"),
    ("wrong level", _entry(0, region="430623000000", rotation=("p5",)),
     "乡镇值班员在乡镇值班，430623000000 是县"),
    ("unknown duty person", _entry(0, rotation=("p4", "zz")), "值班人员 zz 不在人员台账中"),
    ("duty person elsewhere", _entry(0, rotation=("p5",)), "值班人员 p5（陈静）属于 华容县"),
    ("not a duty person", lambda d: d.persons.__setitem__("p7", msgspec.structs.replace(
        d.persons["p7"], role=Role.SITE)), "值班人员 p7（孙丽）是场所责任人"),
    ("gap", _entry(0, rotation=(), shifts=(Shift("2026-07-01", "p4"), *(
        Shift(f"2026-07-{n:02d}", "p7") for n in range(5, 32)))),
     "章华镇(430623101000) 乡镇值班员：2026-07-02 至 2026-07-04 无人值班"),
    ("two shifts a day", _entry(0, shifts=(Shift("2026-07-10", "p7"), Shift("2026-07-10", "p4"))),
     "2026-07-10 排了两个班次"),
    ("shift outside", _entry(0, shifts=(Shift("2026-08-01", "p7"),)),
     "不在 2026-07-01 至 2026-07-31"),
    ("entry twice",
     _roster(entries=(RosterEntry("430623101000", Role.TOWNSHIP_DUTY, ("p4",)),) * 2),
     "重复出现"),
    ("nobody on duty", _no_duty, "章华镇(430623101000)：无人值班（没有乡镇值班员"),
]


@pytest.mark.parametrize(("edit", "expect"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_problem_is_named_in_chinese(edit: Edit, expect: str) -> None:
    data = tiny_with_sites_and_rosters()
    assert validate_registry(data) == []
    edit(data)
    problems = validate_registry(data)
    assert any(expect in p for p in problems), problems


def test_chain_asks_who_is_on_duty() -> None:
    reg = Registry(tiny_with_sites_and_rosters())
    duty = Role.TOWNSHIP_DUTY

    def on(at: str) -> str | None:
        return reg.person_at("g1", duty, at=bj(at))

    assert on("2026-07-01T09:00") == "p4"  # rotation from the first day
    assert on("2026-07-02T07:59") == "p4"  # the shift runs to 08:00 the next day
    assert on("2026-07-02T08:00") == "p7"
    assert on("2026-07-09T12:00") == "p4" and on("2026-07-10T12:00") == "p7"  # a dated shift
    assert on("2026-06-30T12:00") == "p4"  # before the version: the fixed person
    chain = reg.chain("g1", at=bj("2026-07-02T12:00"))
    assert chain == ("p1", "p2", "p3", "p7", "p5", "p8", None)


def test_unapproved_version_is_not_in_force() -> None:
    data = tiny_with_sites_and_rosters()
    data.rosters["2026-07"] = msgspec.structs.replace(data.rosters["2026-07"], approved_by=None,
                                                      approved_at=None)
    reg = Registry(data)
    assert reg.person_at("g1", Role.TOWNSHIP_DUTY, at=bj("2026-07-02T12:00")) == "p4"
    assert reg.person_at("g1", Role.TOWNSHIP_LEADER, at=bj("2026-07-02T12:00")) == "p8"  # fixed


def test_site_chain() -> None:
    reg = Registry(tiny_with_sites_and_rosters())
    at = bj("2026-07-02T12:00")
    assert reg.site_chain("hp1", at=at) == ("s1", None, "p3", "p7", "p5", "p8", None, "p1")
    assert reg.chain_of("hp1", at=at) == reg.site_chain("hp1", at=at)
    assert reg.chain_of("g1", at=at) == reg.chain("g1", at=at)
    assert reg.is_site("dz1") and not reg.is_site("g1")
    assert reg.sites_held_by("p3") == ("hp1",)
    stats = reg.stats()
    assert (stats["sites"], stats["site.hazard_point"], stats["site.danger_zone"]) == (2, 1, 1)


def test_person_role_levels() -> None:
    data = tiny_with_sites_and_rosters()
    data.persons["s1"] = Person("s1", "赵敏", Role.SITE, "430623000000", "+8613800000011")
    assert any("a site serves a township or village" in p for p in validate_registry(data))


def test_a_change_naming_a_person_no_longer_in_the_registry_is_ignored() -> None:
    # A console override kept in Redis outlives a registry import that removed its person:
    # the roster holds that shift again, rather than a step going to nobody who can be called.
    reg = Registry(tiny_with_sites_and_rosters())
    at = bj("2026-07-02T12:00")
    assert reg.person_at("g1", Role.TOWNSHIP_DUTY, at=at) == "p7"

    def override(person: str) -> DutyChange:
        return DutyChange("430623101000", Role.TOWNSHIP_DUTY, "2026-07-02", person,
                          ChangeKind.OVERRIDE, "alan", "替班", at, was="p7")

    book = reg.duty.with_state({}, [override("p4")])
    assert reg.person_at("g1", Role.TOWNSHIP_DUTY, at=at, duty=book) == "p4"
    gone = reg.duty.with_state({}, [override("p9")])
    assert reg.person_at("g1", Role.TOWNSHIP_DUTY, at=at, duty=gone) == "p7"
    assert reg.duty.with_state({}, [override("p9")]).shift(
        "430623101000", Role.TOWNSHIP_DUTY, date(2026, 7, 2)).source is DutySource.ROSTER
