"""CampaignMeta: the meta hash read typed, written typed, and strict where it matters."""

from __future__ import annotations

import pytest

from warnbus.domain.meta import (
    CampaignMeta,
    MessageMeta,
    decode_meta,
    encode_fields,
    message_fields,
)
from warnbus.domain.models import Level
from warnbus.domain.states import CampaignState, GridState, TargetState
from warnbus.errors import CampaignStateError

STARTED = {"state": "active", "level": "red", "root": "al_1", "latest": "al_1", "sender": "s",
           "created_at": "1784093400.0", "t0": "1784093400.0", "drill": "0", "expires_at": "",
           "event": "暴雨", "villages": "430623101001,430623101002", "headline": "h", "area": "a",
           "targets": "12", "attempts": "30", "duplicates": "1", "t_sent": "5", "t_acked": "2",
           "g_calling": "3", "g_unreached": "1"}


def test_a_started_campaign_reads_typed() -> None:
    m = decode_meta("cp_1", STARTED)
    assert m.state is CampaignState.ACTIVE and m.level is Level.RED
    assert m.t0 == 1784093400.0 and m.expires_at is None and m.drill is False
    assert m.villages == ("430623101001", "430623101002") and m.targets == 12
    assert m.target_count(TargetState.SENT) == 5 and m.target_count(TargetState.FAILED) == 0
    assert m.grid_count(GridState.CALLING) == 3 and m.grid_count(GridState.UNREACHED) == 1
    assert (m.attempts, m.duplicates) == (30, 1) and m.require_level() is Level.RED
    assert not m.over(1e12), "no expiry: active until ended"


def test_what_an_accepted_campaign_holds_is_planning() -> None:
    m = decode_meta("cp_1", {"targets": "7", "sender": "s"})
    assert m.state is CampaignState.PLANNING and m.level is None and m.over(0.0)
    with pytest.raises(CampaignStateError, match="cp_1"):
        m.require_level()


def test_a_field_of_a_newer_version_is_left_alone() -> None:
    assert decode_meta("cp_1", {**STARTED, "roster": "x"}) == decode_meta("cp_1", STARTED)


@pytest.mark.parametrize("change", [
    {"level": ""}, {"level": "purple"}, {"state": "done"}, {"t0": "soon"}, {"t_read": "1"},
    {"g_pending": "1"}, {"targets": "many"},
])
def test_what_does_not_read_is_an_error_never_a_default(change: dict[str, str]) -> None:
    with pytest.raises(CampaignStateError, match="cp_1"):
        decode_meta("cp_1", {**STARTED, **change})


def test_typed_writes_read_back() -> None:
    msg = MessageMeta(latest="al_2", level=Level.ORANGE, headline="橙色", area="章华镇",
                      expires_at=1784100000.5, villages=("430623101001",), targets=3)
    raw = {k: str(v) for k, v in message_fields(msg).items()}
    m = decode_meta("cp_1", {**STARTED, **raw})
    assert (m.latest, m.level, m.headline, m.area) == ("al_2", Level.ORANGE, "橙色", "章华镇")
    assert (m.expires_at, m.villages, m.targets) == (1784100000.5, ("430623101001",), 3)
    none = encode_fields({"expires_at": None, "drill": True, "state": CampaignState.ACTIVE})
    assert none == {"expires_at": "", "drill": 1, "state": "active"}
    with pytest.raises(KeyError):
        encode_fields({"colour": "red"})
    assert CampaignMeta(campaign_id="c").latest_alert_id == ""
