"""Sites as data (sites.toml): which site kinds and roles a hazard calls, the sites' own policy
row, and strict loading whose errors name the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from rules.hazards import default_hazards
from rules.sites import SiteRules, default_site_rules
from warnbus.domain.models import Level, Role, SiteKind, SiteRole
from warnbus.errors import ConfigError

BUNDLED = (Path(__import__("rules").__file__).parent / "sites.toml").read_text("utf-8")
K, SR = SiteKind, SiteRole


def test_bundled_rules_call_by_hazard() -> None:
    rules = SiteRules.load(hazards={h.key for h in default_hazards().hazards})
    assert rules.kinds_for("geohazard") == {K.HAZARD_POINT}
    assert rules.roles_for(["geohazard"], K.HAZARD_POINT) == {SR.MONITOR, SR.RESPONSIBLE}
    assert {K.RESERVOIR, K.POND, K.DANGER_ZONE} <= rules.kinds_for("flood")
    assert rules.roles_for(["flood"], K.RESERVOIR) == {SR.PATROLLER}
    # A geological warning calls no reservoir patroller, a flood warning no monitor.
    assert rules.roles_for(["geohazard"], K.RESERVOIR) == frozenset()
    assert K.HAZARD_POINT not in rules.kinds_for("flood")
    # Roles of several hazards add up (a flash flood with a rainstorm).
    assert rules.roles_for(["rainstorm", "flash_flood"], K.DANGER_ZONE) == {
        SR.FLOOD_WARDEN, SR.EVACUATION_LEAD}
    # No hazard, or one no rule names: no site.
    assert rules.kinds_for(None) == rules.kinds_for("heat") == frozenset()


def test_site_policy_row_escalates_from_the_sites_people() -> None:
    red = default_site_rules().policy_for(Level.RED)
    assert red.chain == (Role.PRIMARY, Role.VILLAGE_HEAD, Role.TOWNSHIP_DUTY, Role.COUNTY_DUTY)
    assert red.device_channels == () and red.speaker_deadline_s is None
    assert red.redial_times() == (180.0, 280.0, 380.0)
    assert red.unreached_after() == 1200.0


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sites.toml"
    path.write_text(text, "utf-8")
    return path


@pytest.mark.parametrize(("old", "new", "message"), [
    ('hazard = "geohazard"', 'hazard = "meteor"',
     "rule[0].hazard: 'meteor' is not a hazard of the hazard table"),
    ('roles = ["monitor", "responsible"]', "roles = []", "rule[0]: names no site kind or no role"),
    ('chain = ["primary", "village_head", "township_duty", "county_duty"]',
     'chain = ["site", "township_duty"]', "levels.red.chain: roles after the site's people"),
    ('chain = ["primary", "village_head", "township_duty", "county_duty"]',
     'chain = ["primary", "primary"]', "each at most once"),
    ("ack_deadline_s = 180\n", 'ack_deadline_s = 180\nspeaker_deadline_s = 60\n',
     "levels.red: sites have no loudspeakers"),
    ("ack_deadline_s = 180\n", "ack_deadline_s = -1\n", "levels.red.ack_deadline_s: must be > 0"),
    ('redial_channels = ["voice", "sms"]\nchain = ["primary", "village_head", "township_duty", '
     '"county_duty"]', 'redial_channels = []\nchain = ["primary", "village_head", '
     '"township_duty", "county_duty"]', "levels.red.redial_channels: redials need"),
    ("[levels.blue]", "[levels.purple]", "levels.purple: not a level"),
    ('kinds = ["hazard_point"]', 'kinds = ["volcano"]', "volcano"),
    ('kinds = ["hazard_point"]', 'kinds = ["hazard_point"]\nextra = 1', "extra"),
])
def test_bad_rules_are_refused_naming_the_field(tmp_path: Path, old: str, new: str,
                                                message: str) -> None:
    assert old in BUNDLED
    path = _write(tmp_path, BUNDLED.replace(old, new, 1))
    with pytest.raises(ConfigError) as err:
        SiteRules.load(path, hazards={h.key for h in default_hazards().hazards})
    assert message in str(err.value)


def test_a_level_left_out_is_refused(tmp_path: Path) -> None:
    text = BUNDLED[: BUNDLED.index("[levels.blue]")]
    with pytest.raises(ConfigError, match=r"levels\.blue: missing"):
        SiteRules.load(_write(tmp_path, text))
