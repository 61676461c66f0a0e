"""Helpers of the registry tests: a tiny valid registry to break."""

from __future__ import annotations

from warnbus.domain.models import Device, Grid, Person, Region, RegionLevel, RegistryData, Role

SQUARE = ((29.40, 112.70), (29.40, 112.71), (29.41, 112.71), (29.41, 112.70), (29.40, 112.70))


def tiny_registry() -> RegistryData:
    """One county, township, village and grid, each role filled once, one loudspeaker."""
    regions = [
        Region("430623000000", "华容县", RegionLevel.COUNTY),
        Region("430623101000", "章华镇", RegionLevel.TOWNSHIP, "430623000000"),
        Region("430623101201", "桃花村", RegionLevel.VILLAGE, "430623101000"),
    ]
    persons = [
        Person("p1", "王芳", Role.PRIMARY, "430623101201", "+8613800000001", "u1"),
        Person("p2", "李强", Role.BACKUP, "430623101201", "+8613800000002"),
        Person("p3", "张伟", Role.VILLAGE_HEAD, "430623101201", wecom="u3"),
        Person("p4", "刘洋", Role.TOWNSHIP_DUTY, "430623101000", "+8613800000004"),
        Person("p5", "陈静", Role.COUNTY_DUTY, "430623000000", "+8613800000005"),
    ]
    return RegistryData(
        regions={r.code: r for r in regions},
        grids={"g1": Grid("g1", "桃花村第1网格", "430623101201", SQUARE, "p1", "p2")},
        persons={p.id: p for p in persons},
        devices={"d1": Device("d1", "桃花村应急广播1号", "430623101201", "g1")},
    )

