"""Matching alerts to grids: geocode prefixes, polygons, circles, the hazard tag rule."""

from __future__ import annotations

import math

import pytest
import shapely
from rules_kit import (
    FLOOD_CIRCLE,
    GEOHAZARD_POLYGON,
    RAINSTORM_GEOCODES,
    alert,
    area,
    info,
)

import rules.match
from rules.match import Matcher, admin_prefix, circle_geometry, most_specific
from tests.timing import cpu_seconds
from warnbus.domain.models import Circle, RegistryData
from warnbus.errors import ConfigError


def township_grids(data: RegistryData, *suffixes: int) -> set[str]:
    return {g.id for g in data.grids.values() if int(g.village[6:9]) in suffixes}


def townships(grids: tuple[str, ...]) -> set[int]:
    return {int(g[6:9]) for g in grids}


# --------------------------------------------------------------------------- geocodes


@pytest.mark.parametrize(("value", "prefix"), [
    ("430623", "430623"), ("430600", "4306"), ("430000", "43"), ("43", "43"), ("4306", "4306"),
    ("430623000000", "430623"), ("430623101000", "430623101"),
    ("430623101201", "430623101201"), ("430623101", "430623101"), (" 430623 ", "430623"),
    ("43062", None), ("华容县", None), ("４３０６２３", None), ("", None),
])
def test_admin_prefix(value: str, prefix: str | None) -> None:
    assert admin_prefix(value) == prefix


def test_most_specific() -> None:
    codes = ["430623", "430623103", "430623104", "4306", "430624", "430623104201"]
    assert most_specific(codes) == ["430623103", "430623104201", "430624"]


def test_rainstorm_townships_not_the_whole_county(matcher: Matcher,
                                                  sample_data: RegistryData) -> None:
    result = matcher.match(alert(info([area(geocodes=RAINSTORM_GEOCODES)])))
    assert set(result.grids) == township_grids(sample_data, 103, 104, 105)
    assert result.grids == tuple(sorted(result.grids))
    assert result.ignored_geocodes == ()


@pytest.mark.parametrize("geocodes", [
    [("GB/T 2260", "430623")], [("GB/T 2260", "430600")], [("gb/t2260", "43")],
    [("统计用区划代码", "430623000000")], [("GB/T 2260", "430623"), ("GB/T 2260", "430624")],
])
def test_whole_county(matcher: Matcher, geocodes: list[tuple[str, str]]) -> None:
    assert len(matcher.match(alert(info([area(geocodes=geocodes)]))).grids) == 777


def test_village_code(matcher: Matcher, sample_data: RegistryData) -> None:
    village = sorted(sample_data.regions)[-1]
    result = matcher.match(alert(info([area(geocodes=[("VILLAGE", village)])])))
    assert result.villages == (village,)
    assert set(result.grids) == {g.id for g in sample_data.grids.values() if g.village == village}
    assert set(result.devices) == {d.id for d in sample_data.devices.values()
                                   if d.region == village}


def test_codes_elsewhere_match_nothing(matcher: Matcher) -> None:
    result = matcher.match(alert(info([area(geocodes=[("GB/T 2260", "110101")])])))
    assert result.grids == result.devices == result.villages == ()


def test_unknown_names_and_values_are_reported(matcher: Matcher) -> None:
    geocodes = [("FIPS6", "006113"), ("GB/T 2260", "华容"), ("TOWNSHIP", "430623106000")]
    result = matcher.match(alert(info([area(geocodes=geocodes)])))
    assert townships(result.grids) == {106}
    assert result.ignored_geocodes == (("FIPS6", "006113"), ("GB/T 2260", "华容"))


def test_geocode_names_are_configurable(sample_data: RegistryData) -> None:
    m = Matcher(sample_data, geocode_names={"ADCODE": "admin", "FIPS6": "ignore",
                                            "TOWNSHIP": "ignore"})
    geocodes = [("adcode", "430623106000"), ("FIPS6", "006113"), ("TOWNSHIP", "430623107000")]
    result = m.match(alert(info([area(geocodes=geocodes)])))
    assert townships(result.grids) == {106} and result.ignored_geocodes == ()
    with pytest.raises(ConfigError, match="ADCODE"):
        Matcher(sample_data, geocode_names={"ADCODE": "yes"})


def test_most_specific_is_per_area(matcher: Matcher) -> None:
    # The county in one area and a township in another: the areas are a union.
    areas = [area(geocodes=[("GB/T 2260", "430623")]),
             area(geocodes=[("TOWNSHIP", "430623106000")])]
    assert len(matcher.match(alert(info(areas))).grids) == 777


# --------------------------------------------------------------------------- geometry


def test_geohazard_polygon(matcher: Matcher, sample_data: RegistryData) -> None:
    result = matcher.match(alert(info([area(polygons=[GEOHAZARD_POLYGON])], event="暴雨")))
    # 东山镇 lies wholly under the polygon, 插旗镇 partly; neighbours only share an edge.
    assert township_grids(sample_data, 106) <= set(result.grids)
    assert townships(result.grids) == {106, 107}
    assert result.villages == tuple(sorted({g[:12] for g in result.grids}))
    assert set(result.devices) == {d.id for d in sample_data.devices.values()
                                   if d.region in result.villages}


def test_polygon_on_township_edges_takes_no_neighbours(matcher: Matcher,
                                                       sample_data: RegistryData) -> None:
    dongshan = ((29.40, 112.70), (29.40, 112.80), (29.55, 112.80), (29.55, 112.70),
                (29.40, 112.70))
    result = matcher.match(alert(info([area(polygons=[dongshan])])))
    assert set(result.grids) == township_grids(sample_data, 106)


def test_flood_circle(matcher: Matcher, sample_data: RegistryData) -> None:
    result = matcher.match(alert(info([area(circles=[FLOOD_CIRCLE])], event="洪水")))
    assert 104 in townships(result.grids)  # 治河渡镇 holds the gauge
    lat0, lon0 = FLOOD_CIRCLE.lat, FLOOD_CIRCLE.lon
    kx = 111.195 * math.cos(math.radians(lat0))

    def km(lat: float, lon: float) -> float:
        return math.hypot((lat - lat0) * 111.195, (lon - lon0) * kx)

    for g in sample_data.grids.values():
        near = min(km(lat, lon) for lat, lon in g.polygon)
        far = max(km(lat, lon) for lat, lon in g.polygon)
        if far < 19.5:  # wholly inside the circle
            assert g.id in result.grids
        if g.id in result.grids:
            # Some part of the grid is within the radius: its nearest corner is within the
            # radius plus the grid's own size.
            assert near < 20.0 + (far - near)
    assert 200 < len(result.grids) < 777


def test_circle_is_in_kilometres() -> None:
    lo_lon, lo_lat, hi_lon, hi_lat = circle_geometry(Circle(29.52, 112.60, 20.0)).bounds
    assert hi_lat - lo_lat == pytest.approx(2 * 20 / 111.195, rel=1e-3)
    assert hi_lon - lo_lon == pytest.approx(2 * 20 / (111.195 * math.cos(math.radians(29.52))),
                                            rel=1e-3)


def test_zero_radius_circle_is_a_point(matcher: Matcher) -> None:
    result = matcher.match(alert(info([area(circles=[Circle(29.45, 112.75, 0)])])))
    assert len(result.grids) == 1 and townships(result.grids) == {106}


def test_geometry_takes_precedence_over_geocodes(matcher: Matcher) -> None:
    both = area(polygons=[GEOHAZARD_POLYGON], geocodes=[("GB/T 2260", "430623")])
    assert townships(matcher.match(alert(info([both]))).grids) == {106, 107}
    # A degenerate polygon falls back to the geocodes rather than warning nobody.
    line = area(polygons=[((29.4, 112.7), (29.5, 112.8))], geocodes=[("TOWNSHIP", "430623104000")])
    assert townships(matcher.match(alert(info([line]))).grids) == {104}


def test_self_intersecting_polygon(matcher: Matcher) -> None:
    bowtie = ((29.40, 112.70), (29.55, 112.85), (29.40, 112.85), (29.55, 112.70),
              (29.40, 112.70))
    result = matcher.match(alert(info([area(polygons=[bowtie])])))
    assert result.grids and townships(result.grids) <= {106, 107}


SHAPES = [
    GEOHAZARD_POLYGON,
    ((29.31, 112.31), (29.79, 112.62), (29.33, 112.89), (29.31, 112.31)),  # a big triangle
    ((29.2, 112.2), (29.2, 113.0), (29.9, 113.0), (29.9, 112.2), (29.2, 112.2)),  # everything
    ((29.35, 112.40), (29.75, 112.40), (29.75, 112.80), (29.50, 112.60), (29.35, 112.80),
     (29.35, 112.40)),  # concave
]


@pytest.mark.parametrize("ring", SHAPES)
def test_big_area_shortcut_matches_exact_test(
    matcher: Matcher, sample_data: RegistryData, ring: tuple[tuple[float, float], ...],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a = alert(info([area(polygons=[ring], circles=[Circle(29.6, 112.5, 12.5)])]))
    monkeypatch.setattr(rules.match, "_EXACT_MAX", 10**9)
    exact = matcher.match(a)
    monkeypatch.setattr(rules.match, "_EXACT_MAX", 0)
    assert matcher.match(a) == exact
    # And the exact result is what shapely says grid by grid.
    polygon = shapely.Polygon([(lon, lat) for lat, lon in ring])
    shape = shapely.union_all([shapely.make_valid(polygon),
                               circle_geometry(Circle(29.6, 112.5, 12.5))])
    expected = set()
    for g in sample_data.grids.values():
        poly = shapely.Polygon([(lon, lat) for lat, lon in g.polygon])
        if shape.intersects(poly) and not shape.touches(poly):
            expected.add(g.id)
    assert set(exact.grids) == expected and expected


# --------------------------------------------------------------------------- unions, tags


def test_union_over_infos_and_areas(matcher: Matcher, sample_data: RegistryData) -> None:
    zh = info([area(geocodes=[("TOWNSHIP", "430623101000")]),
               area(geocodes=[("TOWNSHIP", "430623102000")])])
    en = info([area(geocodes=[("TOWNSHIP", "430623113000")])], language="en-US", event="Rainstorm")
    result = matcher.match(alert(zh, en))
    assert set(result.grids) == township_grids(sample_data, 101, 102, 113)
    assert result.hazards == ("rainstorm",)


def test_geological_hazard_keeps_hazard_points(matcher: Matcher,
                                               sample_data: RegistryData) -> None:
    geo = info([area(polygons=[GEOHAZARD_POLYGON])], event="地质灾害气象风险预警")
    result = matcher.match(alert(geo))
    assert result.grids and result.hazards == ("geohazard",)
    assert all("hazard_point" in sample_data.grids[g].tags for g in result.grids)
    untagged = matcher.match(alert(info([area(polygons=[GEOHAZARD_POLYGON])])))
    assert set(result.grids) == {g for g in untagged.grids
                                 if "hazard_point" in sample_data.grids[g].tags}
    assert set(result.devices) <= set(untagged.devices)


def test_tag_rule_is_per_info(matcher: Matcher) -> None:
    geo = info([area(geocodes=[("TOWNSHIP", "430623106000")])], event="滑坡")
    rain = info([area(geocodes=[("TOWNSHIP", "430623101000")])], event="暴雨")
    result = matcher.match(alert(geo, rain))
    assert townships(result.grids) == {101, 106}
    assert result.hazards == ("geohazard", "rainstorm")


def test_match_areas(matcher: Matcher, sample_data: RegistryData) -> None:
    areas = [area(geocodes=[("GB/T 2260", "430623")])]
    tagged = matcher.match_areas(areas, required_tags=["hazard_point"])
    assert set(tagged.grids) == {g.id for g in sample_data.grids.values()
                                 if "hazard_point" in g.tags}
    assert len(matcher.match_areas(areas).grids) == 777


def test_alert_without_infos(matcher: Matcher) -> None:
    assert matcher.match(alert()) == rules.match.MatchResult()


# --------------------------------------------------------------------------- empty areas


def test_empty_areas_are_named_in_the_same_pass(matcher: Matcher) -> None:
    """The areas that hold no grid, by position, judged by geography alone: a geological
    hazard's area of untagged grids is not empty; an area repeated in another info is
    named there too."""
    outside = area(geocodes=[("TOWNSHIP", "430623199000")])
    far = area(polygons=[((30.5, 113.5), (30.5, 113.6), (30.6, 113.6), (30.5, 113.5))])
    zh = info([area(geocodes=[("TOWNSHIP", "430623101000")]), outside, far],
              event="地质灾害气象风险预警")
    en = info([outside], language="en-US")
    result = matcher.match(alert(zh, en))
    assert result.empty_areas == ((0, 1), (0, 2), (1, 0))
    assert matcher.match_areas([outside, area(geocodes=RAINSTORM_GEOCODES)]).empty_areas == (
        (0, 0),)
    assert matcher.match(alert(info([area(geocodes=RAINSTORM_GEOCODES)]))).empty_areas == ()


def test_a_huge_polygon_is_built_from_one_array() -> None:
    """A 160,000-point ring as one array, not point by point: same shape, a fraction of the
    time (point by point it took ~0.2 s of a thread holding the GIL)."""
    n = 160_000
    ring = tuple((round(29.55 + 0.2 * math.sin(2 * math.pi * k / n), 7),
                  round(112.6 + 0.25 * math.cos(2 * math.pi * k / n), 7)) for k in range(n))
    ring = (*ring, ring[0])
    geom = rules.match.polygon_geometry(ring)
    assert geom is not None and shapely.equals(
        geom, shapely.Polygon([(lon, lat) for lat, lon in ring]))
    best = min(_timed(rules.match.polygon_geometry, ring) for _ in range(3))
    by_point = min(_timed(lambda r: shapely.Polygon([(lon, lat) for lat, lon in r]), ring)
                   for _ in range(3))
    assert best < by_point / 3, (best, by_point)


def _timed(fn: object, arg: object) -> float:
    return cpu_seconds(lambda: fn(arg))[1]  # type: ignore[operator]
