"""The synthetic registry generator and the `warnbus registry` commands."""

from __future__ import annotations

from pathlib import Path

import pytest

from warnbus.registry import Registry, load_registry, validate_registry
from warnbus.tools.registry_gen import build, county_codes, generate, registry_main, tile


def test_deterministic_for_a_seed(tmp_path: Path) -> None:
    assert build(1, seed=7) == build(1, seed=7)
    assert build(1, seed=7).persons != build(1, seed=8).persons
    generate(tmp_path / "a", seed=3)
    generate(tmp_path / "b", seed=3)
    for name in ("regions.json", "grids.json", "persons.json", "devices.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


@pytest.mark.parametrize("seed", [1, 2])
def test_any_seed_gives_the_contract_structure(seed: int) -> None:
    reg = Registry(build(1, seed))
    assert validate_registry(reg.data) == []
    assert (reg.stats()["grids"], reg.stats()["townships"]) == (777, 13)


def test_two_counties_side_by_side() -> None:
    data = build(2, seed=0)
    reg = Registry(data)
    assert validate_registry(data) == []
    assert reg.county_codes == ("430623000000", "439101000000")
    assert reg.stats()["grids"] == 2 * 777
    for county in reg.county_codes:
        assert len(reg.children_of(county)) == 13
        grids = [g for g in data.grids.values() if g.village[:6] == county[:6]]
        assert len(grids) == 777
    # The second county sits east of the first, not on top of it.
    east = [lon for g in data.grids.values() if g.village.startswith("439101")
            for _lat, lon in g.polygon]
    assert min(east) >= 112.90 - 1e-9
    ids = list(data.persons) + list(data.devices)
    assert len(set(ids)) == len(ids)


def test_county_codes() -> None:
    codes = county_codes(101)
    assert codes[0] == ("430623", "华容县")
    assert codes[1][0] == "439101" and codes[99][0] == "439199" and codes[100][0] == "439201"
    with pytest.raises(ValueError):
        county_codes(0)


def test_tile_covers_the_rectangle_exactly() -> None:
    cells = tile((29.0, 29.1, 112.0, 112.3), [1, 2, 3, 1, 1])
    assert len(cells) == 5
    area = sum((c[1] - c[0]) * (c[3] - c[2]) for c in cells)
    assert abs(area - 0.1 * 0.3) < 1e-9
    assert all(29.0 <= c[0] < c[1] <= 29.1 and 112.0 <= c[2] < c[3] <= 112.3 for c in cells)


def test_cli_generate_validate_stats(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "reg"
    assert registry_main(["generate", "--counties", "2", "--seed", "5", "--out", str(out)]) == 0
    assert load_registry(out).stats()["counties"] == 2
    capsys.readouterr()
    assert registry_main(["validate", str(out)]) == 0
    text = capsys.readouterr().out
    assert text.startswith("ok\n") and "grids 1554" in text
    assert registry_main(["stats", str(out)]) == 0
    assert "townships 26" in capsys.readouterr().out


def test_cli_validate_reports_problems(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    generate(tmp_path, seed=0)
    path = tmp_path / "persons.json"
    path.write_text(path.read_text(encoding="utf-8").replace('"+86', '"86', 1), encoding="utf-8")
    assert registry_main(["validate", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "is not E.164" in out and "ok" not in out.split()
    assert registry_main(["validate", str(tmp_path / "nowhere")]) == 1


def test_cli_validate_defaults_to_the_sample(capsys: pytest.CaptureFixture[str]) -> None:
    assert registry_main(["validate"]) == 0
    assert "grids 777" in capsys.readouterr().out
