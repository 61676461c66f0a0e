"""Synthetic grid registries: the bundled sample county and N-county registries for benchmarks.

The sample county is modelled on 华容县 (430623): 13 townships, 777 grids inside the box
29.30–29.80 N, 112.30–112.90 E. The box is tiled: townships are rectangles, villages are cells
inside them and grids cells inside villages, so geometry and region codes agree. Names, phones
and WeCom ids are synthetic. Output is deterministic for a given seed.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from warnbus.domain.models import (
    Device,
    Grid,
    Person,
    Region,
    RegionLevel,
    RegistryData,
    Role,
    Roster,
    Site,
)
from warnbus.errors import RegistryError
from warnbus.registry import (
    Registry,
    default_registry_path,
    dump_registry,
    read_registry,
    validate_registry,
)
from warnbus.tools import sites_gen

SAMPLE_COUNTY = ("430623", "华容县")
BOX_LAT, BOX_LON = 29.30, 112.30  # south-west corner of the sample county
BOX_H, BOX_W = 0.50, 0.60  # degrees

# (code 101..113, name, grids, lat0, lat1, lon0, lon1 as offsets from the south-west corner).
# Codes follow the project's CAP samples (103 三封寺, 104 治河渡, 105 北景港, 106 东山). The
# hilly 东山/插旗 lie under the geohazard sample polygon (29.40–29.55 N, 112.70–112.85 E);
# 治河渡 holds the flood sample's gauge at 29.52 N, 112.60 E.
TOWNSHIPS: tuple[tuple[int, str, int, float, float, float, float], ...] = (
    (110, "操军镇", 60, 0.37, 0.50, 0.00, 0.20),
    (101, "章华镇", 95, 0.37, 0.50, 0.20, 0.40),
    (111, "梅田湖镇", 54, 0.37, 0.50, 0.40, 0.60),
    (108, "万庾镇", 58, 0.25, 0.37, 0.00, 0.20),
    (103, "三封寺镇", 66, 0.25, 0.37, 0.20, 0.45),
    (102, "鲇鱼须镇", 48, 0.25, 0.37, 0.45, 0.60),
    (105, "北景港镇", 58, 0.10, 0.25, 0.00, 0.15),
    (104, "治河渡镇", 72, 0.10, 0.25, 0.15, 0.40),
    (106, "东山镇", 52, 0.10, 0.25, 0.40, 0.50),
    (107, "插旗镇", 50, 0.10, 0.25, 0.50, 0.60),
    (112, "新河乡", 50, 0.00, 0.10, 0.00, 0.20),
    (109, "注滋口镇", 60, 0.00, 0.10, 0.20, 0.40),
    (113, "团洲乡", 54, 0.00, 0.10, 0.40, 0.60),
)
HILLY = frozenset({106, 107})  # townships whose grids may carry `hazard_point` (地质灾害隐患点)
RIVER = (104,)  # 治河渡: danger zones on the river's low banks
GAUGE = (0.22, 0.30)  # the flood sample's gauge (29.52 N, 112.60 E) from the south-west corner
SEAT = 101  # the county seat: more 社区 (urban communities)

_SURNAMES = ("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余"
             "杜叶程魏吕丁任沈姚卢钟谭汪范金廖夏付方邹熊邱")
_GIVEN = ("伟芳娜敏静丽强磊军洋勇艳杰涛明超秀霞平刚桂英华红建国志文斌辉玲海峰兰波宇鹏雪琴春"
          "梅林云飞龙德福庆")
_STEM1 = "新东西南北红白石长黄金青桃柳杨花龙凤马鹿鹤荷梅桂松竹永太福兴胜和同团联友三五万护砖潭"
_STEM2 = "湖洲港河桥山岭塘坪垸口堤林园湾岗冲铺台咀渡"
_MOBILE_PREFIXES = ("134", "135", "136", "137", "138", "139", "150", "151", "152", "157", "158",
                    "159", "182", "183", "187", "188", "130", "131", "132", "155", "156", "185",
                    "186", "133", "153", "173", "177", "180", "181", "189", "199")

Rect = tuple[float, float, float, float]  # lat0, lat1, lon0, lon1


def _cuts(lo: float, hi: float, weights: Sequence[float]) -> list[float]:
    """Edges splitting [lo, hi] proportionally to weights, rounded so neighbours share them."""
    total, acc, edges = sum(weights), 0.0, [round(lo, 5)]
    for w in weights[:-1]:
        acc += w
        edges.append(round(lo + (hi - lo) * acc / total, 5))
    edges.append(round(hi, 5))
    return edges


def tile(rect: Rect, weights: Sequence[float]) -> list[Rect]:
    """Tile `rect` into len(weights) cells with areas proportional to weights, near-square.

    Rows of cells from south to north; cells west to east within a row.
    """
    lat0, lat1, lon0, lon1 = rect
    n = len(weights)
    h_km = (lat1 - lat0) * 111.2
    w_km = (lon1 - lon0) * 111.2 * math.cos(math.radians((lat0 + lat1) / 2))
    rows = min(n, max(1, round(math.sqrt(n * h_km / w_km))))
    bounds = [round(i * n / rows) for i in range(rows + 1)]
    groups = [list(weights[bounds[i]:bounds[i + 1]]) for i in range(rows)]
    lat_edges = _cuts(lat0, lat1, [sum(g) for g in groups])
    cells: list[Rect] = []
    for r, group in enumerate(groups):
        lon_edges = _cuts(lon0, lon1, group)
        cells += [(lat_edges[r], lat_edges[r + 1], lon_edges[c], lon_edges[c + 1])
                  for c in range(len(group))]
    return cells


def ring(rect: Rect) -> tuple[tuple[float, float], ...]:
    lat0, lat1, lon0, lon1 = rect
    return ((lat0, lon0), (lat0, lon1), (lat1, lon1), (lat1, lon0), (lat0, lon0))


def _split(total: int, parts: int, rng: random.Random, minimum: int = 3) -> list[int]:
    """Split `total` into `parts` random positive sizes of at least `minimum` (largest
    remainder)."""
    weights = [rng.uniform(0.6, 1.6) for _ in range(parts)]
    spare = total - minimum * parts
    raw = [spare * w / sum(weights) for w in weights]
    sizes = [int(x) for x in raw]
    order = sorted(range(parts), key=lambda i: raw[i] - sizes[i], reverse=True)
    for i in order[: spare - sum(sizes)]:
        sizes[i] += 1
    return [s + minimum for s in sizes]


@dataclass
class _Builder:
    rng: random.Random
    regions: dict[str, Region] = field(default_factory=dict)
    grids: dict[str, Grid] = field(default_factory=dict)
    persons: dict[str, Person] = field(default_factory=dict)
    devices: dict[str, Device] = field(default_factory=dict)
    phones: set[str] = field(default_factory=set)
    seq: int = 0
    county_grids: list[str] = field(default_factory=list)  # of the county being built
    county_persons: list[str] = field(default_factory=list)

    def name(self) -> str:
        given = "".join(self.rng.choices(_GIVEN, k=self.rng.choice((1, 2, 2))))
        return self.rng.choice(_SURNAMES) + given

    def phone(self) -> str:
        while True:
            number = f"+86{self.rng.choice(_MOBILE_PREFIXES)}{self.rng.randrange(10**8):08d}"
            if number not in self.phones:
                self.phones.add(number)
                return number

    def person(self, county: str, role: Role, region: str) -> str:
        self.seq += 1
        pid = f"p{county}{self.seq:05d}"
        wecom = f"u{county}{self.seq:05d}" if self.rng.random() > 0.07 else None
        self.persons[pid] = Person(pid, self.name(), role, region, self.phone(), wecom)
        self.county_persons.append(pid)
        return pid

    def county(self, code6: str, name: str, origin: tuple[float, float]) -> None:
        county_code = code6 + "000000"
        self.county_grids, self.county_persons = [], []
        self.regions[county_code] = Region(county_code, name, RegionLevel.COUNTY)
        self.person(code6, Role.COUNTY_DUTY, county_code)
        stems = [a + b for a in _STEM1 for b in _STEM2]
        self.rng.shuffle(stems)
        for suffix, tname, n_grids, la0, la1, lo0, lo1 in TOWNSHIPS:
            tcode = f"{code6}{suffix:03d}000"
            self.regions[tcode] = Region(tcode, tname, RegionLevel.TOWNSHIP, county_code)
            self.person(code6, Role.TOWNSHIP_DUTY, tcode)
            rect = (origin[0] + la0, origin[0] + la1, origin[1] + lo0, origin[1] + lo1)
            n_villages = self.rng.randint(9, 13) if suffix == SEAT else self.rng.randint(6, 10)
            communities = 5 if suffix == SEAT else 1
            sizes = _split(n_grids, n_villages, self.rng)
            for v, (vrect, size) in enumerate(zip(tile(rect, sizes), sizes, strict=True)):
                is_comm = v < communities
                vcode = f"{code6}{suffix:03d}{v + 1 if is_comm else 200 + v - communities + 1:03d}"
                vname = stems.pop() + ("社区" if is_comm else "村")
                self.village(code6, vcode, vname, tcode, vrect, size, hilly=suffix in HILLY)

    def village(self, code6: str, vcode: str, vname: str, tcode: str, rect: Rect, size: int,
                *, hilly: bool) -> None:
        self.regions[vcode] = Region(vcode, vname, RegionLevel.VILLAGE, tcode)
        self.person(code6, Role.VILLAGE_HEAD, vcode)
        gids: list[str] = []
        primary = ""
        for k, cell in enumerate(tile(rect, [1.0] * size), start=1):
            gid = f"{vcode}-{k:02d}"
            # Now and then one officer covers two neighbouring grids, as in practice.
            if not primary or self.rng.random() > 0.05:
                primary = self.person(code6, Role.PRIMARY, vcode)
            backup = self.person(code6, Role.BACKUP, vcode)
            tags = ("hazard_point",) if hilly and self.rng.random() < 0.3 else ()
            self.grids[gid] = Grid(gid, f"{vname}第{k}网格", vcode, ring(cell), primary, backup,
                                   tags)
            gids.append(gid)
        self.county_grids += gids
        for n in range(1, self.rng.choice((1, 2)) + 1):
            did = f"spk-{vcode}-{n}"
            self.devices[did] = Device(did, f"{vname}应急广播{n}号", vcode, self.rng.choice(gids))

    def mark_drill(self, code6: str) -> None:
        """Make a few officers of the county seat, their chain and the duty desks drill
        participants."""
        seat = f"{code6}{SEAT:03d}"
        grids = [g for g in self.county_grids if g.startswith(seat)]
        chosen = self.rng.sample(grids, 6)
        ids = {self.grids[g].primary for g in chosen} | {self.grids[g].backup or "" for g in chosen}
        villages = {self.grids[g].village for g in chosen}
        desks = {seat + "000", code6 + "000000"}  # the seat's township and the county desk
        for pid in self.county_persons:
            p = self.persons[pid]
            head = p.role is Role.VILLAGE_HEAD and p.region in villages
            if head or p.region in desks:
                ids.add(pid)
        for pid in ids & self.persons.keys():
            p = self.persons[pid]
            self.persons[pid] = Person(p.id, p.name, p.role, p.region, p.phone, p.wecom, True)


def county_codes(counties: int) -> list[tuple[str, str]]:
    """(6-digit code, name) of each county: the sample county, then synthetic 4391xx, 4392xx..."""
    if not 1 <= counties <= 1 + 9 * 99:
        raise ValueError("counties must be between 1 and 892")
    out = [SAMPLE_COUNTY]
    for i in range(1, counties):
        prefecture, county = 91 + (i - 1) // 99, (i - 1) % 99 + 1
        out.append((f"43{prefecture:02d}{county:02d}", f"示例县{i:03d}"))
    return out


def build(counties: int = 1, seed: int = 0) -> RegistryData:
    """Build a registry of `counties` counties side by side (the first is the sample county),
    each with its duty rosters and sites (`sites_gen`), added after all grids and officers."""
    b = _Builder(random.Random(seed))
    cols = math.ceil(math.sqrt(counties))
    origins: list[tuple[str, tuple[float, float]]] = []
    for i, (code6, name) in enumerate(county_codes(counties)):
        origin = (round(BOX_LAT + (i // cols) * BOX_H, 5), round(BOX_LON + (i % cols) * BOX_W, 5))
        b.county(code6, name, origin)
        b.mark_drill(code6)
        origins.append((code6, origin))
    sites: dict[str, Site] = {}
    rosters: dict[str, Roster] = {}
    for code6, origin in origins:
        got = sites_gen.add(code6, b.regions, b.grids, b.persons, b.person, seed=seed,
                            hilly=sorted(HILLY), river=RIVER,
                            toward=(origin[0] + GAUGE[0], origin[1] + GAUGE[1]))
        sites.update(got.sites)
        rosters.update(got.rosters)
        # The seat's duty desks take part in drills, as their first officers do (mark_drill).
        desks = {f"{code6}{SEAT:03d}000", code6 + "000000"}
        for pid, p in got.persons.items():
            if p.region in desks:
                b.persons[pid] = msgspec.structs.replace(p, drill=True)
    return RegistryData(b.regions, b.grids, b.persons, b.devices, sites, rosters)


def generate(out_dir: str | Path, counties: int = 1, seed: int = 0) -> RegistryData:
    """Build a registry and write it to `out_dir`."""
    data = build(counties, seed)
    dump_registry(data, out_dir)
    return data


def write_sample_county(out_dir: str | Path) -> RegistryData:
    """Write the bundled sample county (华容县, seed 0)."""
    return generate(out_dir, counties=1, seed=0)


# --------------------------------------------------------------------------- CLI


def _print_stats(stats: dict[str, int]) -> None:
    for key, value in stats.items():
        print(f"{key} {value}")


def registry_main(args: list[str]) -> int:
    """`warnbus registry generate|validate|stats|export|template|import|history ...`."""
    parser = argparse.ArgumentParser(prog="warnbus registry", description="the grid registry")
    sub = parser.add_subparsers(dest="cmd", required=True)
    gen = sub.add_parser("generate", help="write a synthetic registry")
    gen.add_argument("--counties", type=int, default=1)
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--out", required=True, help="directory to write")
    for name, text in (("validate", "check a registry"), ("stats", "count a registry")):
        p = sub.add_parser(name, help=text)
        p.add_argument("dir", nargs="?", help="registry directory (default: the sample county)")
    from warnbus.registry_io import cli as io_cli

    io_cli.add_commands(sub)
    ns = parser.parse_args(args)
    if ns.cmd in ("export", "template", "import", "history"):
        return io_cli.run(ns)
    if ns.cmd == "generate":
        data = generate(ns.out, ns.counties, ns.seed)
        print(f"wrote {len(data.grids)} grids in {ns.counties} county(ies) to {ns.out}")
        return 0
    path = Path(ns.dir) if ns.dir else default_registry_path()
    if not path.is_dir():
        print(f"error: {path}: not a directory", file=sys.stderr)
        return 1
    try:
        data, problems = read_registry(path)
    except RegistryError as e:
        problems = e.problems
    else:
        problems += validate_registry(data)
    for line in problems:
        print(line)
    if problems:
        return 1
    if ns.cmd == "validate":
        print("ok")
    _print_stats(Registry(data).stats())
    return 0
