"""Registry validation: each kind of problem is caught, with a message naming the record."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest
from registry_kit import SQUARE, tiny_registry

from warnbus.domain.models import Device, Grid, Person, Region, RegionLevel, RegistryData, Role
from warnbus.errors import NotFoundError, RegistryError
from warnbus.registry import (
    Registry,
    dump_registry,
    load_registry,
    phone_problem,
    validate_registry,
)

Edit = Callable[[RegistryData], None]


def _region(code: str, level: RegionLevel, parent: str | None) -> Edit:
    def edit(d: RegistryData) -> None:
        d.regions[code] = Region(code, "某地", level, parent)
    return edit


def _grid(**changes: object) -> Edit:
    def edit(d: RegistryData) -> None:
        d.grids["g1"] = msgspec.structs.replace(d.grids["g1"], **changes)
    return edit


def _person(pid: str, **changes: object) -> Edit:
    def edit(d: RegistryData) -> None:
        d.persons[pid] = msgspec.structs.replace(d.persons[pid], **changes)
    return edit


def _device(**changes: object) -> Edit:
    def edit(d: RegistryData) -> None:
        d.devices["d1"] = msgspec.structs.replace(d.devices["d1"], **changes)
    return edit


def _add_device(did: str) -> Edit:
    def edit(d: RegistryData) -> None:
        d.devices[did] = Device(did, "广播", "430623101201")
    return edit


def _add_person_as(pid: str) -> Edit:
    def edit(d: RegistryData) -> None:
        d.persons[pid] = msgspec.structs.replace(d.persons["p3"], id=pid)
    return edit


def _add_grid_as(gid: str) -> Edit:
    def edit(d: RegistryData) -> None:
        d.grids[gid] = msgspec.structs.replace(d.grids["g1"], id=gid)
    return edit


BOWTIE = ((29.40, 112.70), (29.41, 112.71), (29.40, 112.71), (29.41, 112.70), (29.40, 112.70))
FLAT = ((29.40, 112.70), (29.40, 112.71), (29.40, 112.72), (29.40, 112.70))

CASES: list[tuple[str, Edit, str]] = [
    ("code not 12 digits", _region("43062310120", RegionLevel.VILLAGE, "430623101000"),
     "region 43062310120: code must be 12 digits"),
    ("county code shape", _region("430623101000", RegionLevel.COUNTY, None), "a county code"),
    ("township outside county", _region("430624102000", RegionLevel.TOWNSHIP, "430623000000"),
     "region 430624102000: a township code is its county's 6 digits"),
    ("township with village digits", _region("430623102005", RegionLevel.TOWNSHIP,
                                             "430623000000"), "a township code"),
    ("village outside township", _region("430623102201", RegionLevel.VILLAGE, "430623101000"),
     "region 430623102201: a village code is its township's 9 digits"),
    ("village under a county", _region("430623101202", RegionLevel.VILLAGE, "430623000000"),
     "parent 430623000000 is a county, expected a township"),
    ("missing parent", _region("430623105000", RegionLevel.TOWNSHIP, "430699000000"),
     "region 430623105000: parent '430699000000' does not exist"),
    ("grid without primary", _grid(primary=""), "grid g1: has no primary officer"),
    ("unknown primary", _grid(primary="p9"), "grid g1: primary p9 does not exist"),
    ("primary with wrong role", _grid(primary="p2", backup=None),
     "grid g1: primary p2 has role backup, expected primary"),
    ("backup with wrong role", _grid(backup="p3"),
     "grid g1: backup p3 has role village_head, expected backup"),
    ("backup is primary", _grid(backup="p1"), "grid g1: backup is the primary officer"),
    ("unknown village", _grid(village="430623101299"), "grid g1: village '430623101299'"),
    ("polygon not closed", _grid(polygon=SQUARE[:-1]), "grid g1: polygon must be a closed ring"),
    ("polygon too short", _grid(polygon=SQUARE[:2] + SQUARE[:1]), "closed ring of at least 4"),
    ("polygon self-intersecting", _grid(polygon=BOWTIE), "grid g1: polygon is invalid"),
    ("polygon without area", _grid(polygon=FLAT), "grid g1: polygon is invalid"),
    ("polygon off the globe", _grid(polygon=tuple((lon, lat) for lat, lon in SQUARE)),
     "grid g1: polygon has a point outside"),
    ("no contact point", _person("p3", wecom=None), "person p3: has no contact point"),
    ("short +86 number", _person("p1", phone="+8613800"), "person p1: phone"),
    ("+86 not mobile", _person("p1", phone="+8612800000001"), "not a Chinese mobile number"),
    ("no plus", _person("p1", phone="13800000001"), "is not E.164"),
    ("spaces", _person("p1", phone="+86 138 0000 0001"), "is not E.164"),
    ("role at wrong level", _person("p4", region="430623101201"),
     "person p4: a township_duty serves a township"),
    ("person in unknown region", _person("p5", region="430699000000"),
     "person p5: region '430699000000' does not exist"),
    ("device in unknown region", _device(region="430623101299"),
     "device d1: region '430623101299' does not exist"),
    ("device on unknown grid", _device(grid="g9"), "device d1: grid 'g9' does not exist"),
    ("device id shared with a person", _add_device("p1"), "person p1: id is also a device id"),
    ("device id with a separator", _add_device("spk|1"), "device 'spk|1': an id must not"),
    ("device id with a space", _add_device("spk 1"), "device 'spk 1': an id must not"),
    ("person id with a colon", _add_person_as("p:1"), "person 'p:1': an id must not"),
    ("grid id with a comma", _add_grid_as("g,1"), "grid 'g,1': an id must not"),
]


def test_tiny_registry_is_valid() -> None:
    assert validate_registry(tiny_registry()) == []


@pytest.mark.parametrize(("edit", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_validation_finds_problem(edit: Edit, expected: str) -> None:
    data = tiny_registry()
    edit(data)
    problems = validate_registry(data)
    assert any(expected in p for p in problems), problems


@pytest.mark.parametrize("phone", ["+8613912345678", "+8619912345678", "+14155550100",
                                   "+867306201234", "+442071838750"])
def test_valid_phones(phone: str) -> None:
    assert phone_problem(phone) is None


def test_problem_messages_mask_phone_numbers() -> None:
    problem = phone_problem("+86128000012345")
    assert problem is not None and "000012" not in problem


def test_dump_then_load_round_trips(tmp_path: Path) -> None:
    data = tiny_registry()
    dump_registry(data, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "devices.json", "grids.json", "persons.json", "regions.json"]
    assert load_registry(tmp_path).data == data


def test_load_raises_with_every_problem(tmp_path: Path) -> None:
    data = tiny_registry()
    _grid(primary="p9")(data)
    _person("p3", wecom=None)(data)
    dump_registry(data, tmp_path)
    with pytest.raises(RegistryError) as info:
        load_registry(tmp_path)
    assert len(info.value.problems) == 2
    assert "grid g1" in str(info.value) and "person p3" in str(info.value)


def test_unknown_key_names_file_and_key(tmp_path: Path) -> None:
    dump_registry(tiny_registry(), tmp_path)
    text = (tmp_path / "grids.json").read_text(encoding="utf-8")
    (tmp_path / "grids.json").write_text(text.replace('"id":', '"colour":"red","id":', 1),
                                         encoding="utf-8")
    with pytest.raises(RegistryError) as info:
        load_registry(tmp_path)
    (problem,) = info.value.problems
    assert "grids.json" in problem and "`colour`" in problem


def test_duplicate_ids_are_problems(tmp_path: Path) -> None:
    dump_registry(tiny_registry(), tmp_path)
    path = tmp_path / "persons.json"
    lines = path.read_text(encoding="utf-8").splitlines()
    lines.insert(2, lines[1] if lines[1].endswith(",") else lines[1] + ",")
    path.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(RegistryError) as info:
        load_registry(tmp_path)
    assert any("persons.json: duplicate id p1" in p for p in info.value.problems)


def test_missing_file_and_bad_json(tmp_path: Path) -> None:
    dump_registry(tiny_registry(), tmp_path)
    (tmp_path / "devices.json").unlink()
    with pytest.raises(RegistryError, match=r"devices\.json: file missing"):
        load_registry(tmp_path)
    (tmp_path / "devices.json").write_text("[{", encoding="utf-8")
    with pytest.raises(RegistryError, match=r"devices\.json: "):
        load_registry(tmp_path)


def test_registry_indexes() -> None:
    data = tiny_registry()
    data.grids["g2"] = Grid("g2", "第2网格", "430623101201", SQUARE, "p1", "p2")
    data.persons["p6"] = Person("p6", "周敏", Role.COUNTY_DUTY, "430623000000", "+8613800000006")
    reg = Registry(data)
    assert reg.county_code == "430623000000"
    assert reg.township_of("430623101201") == "430623101000"
    assert reg.township_of("999") is None
    assert reg.children_of("430623000000") == ("430623101000",)
    assert reg.grids_of_village("430623101201") == ("g1", "g2")
    assert reg.devices_of_village("430623101201") == ("d1",)
    assert reg.devices_of_village("430623101202") == ()
    # Several county duty officers and no roster: the chain takes the lowest id.
    assert reg.chain("g1", at=0) == ("p1", "p2", "p3", "p4", "p5", None, None)
    assert reg.person_at("g1", Role.TOWNSHIP_DUTY, at=0) == "p4"
    assert [p.id for p in reg.persons_by_role(Role.COUNTY_DUTY)] == ["p5", "p6"]
    assert reg.stats()["grids"] == 2 and reg.stats()["role.county_duty"] == 2
    with pytest.raises(NotFoundError):
        reg.chain("nope", at=0)


def test_chain_with_vacant_roles() -> None:
    data = tiny_registry()
    del data.persons["p3"], data.persons["p5"]
    data.grids["g1"] = msgspec.structs.replace(data.grids["g1"], backup=None)
    assert Registry(data).chain("g1", at=0) == ("p1", None, None, "p4", None, None, None)
