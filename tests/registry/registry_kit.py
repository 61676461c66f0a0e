"""Helpers of the registry tests: a tiny valid registry to break."""

from __future__ import annotations

from warnbus.domain.duty import Roster, RosterEntry, Shift
from warnbus.domain.models import (
    Device,
    Grid,
    Person,
    Region,
    RegionLevel,
    RegistryData,
    Role,
    Site,
    SiteKind,
    SitePerson,
    SiteRole,
)

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



HALF = ((29.40, 112.70), (29.40, 112.705), (29.405, 112.705), (29.405, 112.70), (29.40, 112.70))


def tiny_with_sites_and_rosters() -> RegistryData:
    """`tiny_registry` plus a hazard point and a danger zone in grid g1 (a monitor, a warden),
    a second township duty officer and a leader, and a July 2026 roster version (approved)."""
    data = tiny_registry()
    more = [
        Person("s1", "赵敏", Role.SITE, "430623101201", "+8613800000011"),
        Person("s2", "钱进", Role.SITE, "430623101201", "+8613800000012"),
        Person("p7", "孙丽", Role.TOWNSHIP_DUTY, "430623101000", "+8613800000007"),
        Person("p8", "周涛", Role.TOWNSHIP_LEADER, "430623101000", "+8613800000008"),
    ]
    data.persons.update({p.id: p for p in more})
    data.sites.update({
        "hp1": Site("hp1", "桃花村滑坡隐患点", SiteKind.HAZARD_POINT, "430623101201", "g1",
                    point=(29.403, 112.703),
                    people=(SitePerson("s1", SiteRole.MONITOR),
                            SitePerson("p3", SiteRole.RESPONSIBLE)),
                    code="430623010001"),
        "dz1": Site("dz1", "桃花村山洪危险区", SiteKind.DANGER_ZONE, "430623101201", "g1",
                    polygon=HALF, people=(SitePerson("s2", SiteRole.EVACUATION_LEAD),),
                    households=12, residents=35),
    })
    data.rosters["2026-07"] = Roster(
        "2026-07", "2026年7月值班表", "2026-07-01", "2026-07-31",
        entries=(RosterEntry("430623101000", Role.TOWNSHIP_DUTY, rotation=("p4", "p7"),
                             shifts=(Shift("2026-07-10", "p7"),)),
                 RosterEntry("430623101000", Role.TOWNSHIP_LEADER, rotation=("p8",))),
        approved_by="县应急管理局", approved_at="2026-06-25T10:00:00+08:00")
    return data
