"""Message templates: per kind and channel, per hazard type and level, 演练 marking."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from rules.hazards import HazardTable
from rules.templates import Templates
from warnbus.errors import ConfigError
from warnbus.models import (
    Alert,
    Category,
    Certainty,
    DeliveryKind,
    Info,
    Level,
    MsgType,
    Scope,
    Severity,
    Status,
    Urgency,
)

T = Templates.load(hazards=HazardTable.load())


def alert(event: str = "暴雨", instruction: str | None = "立即转移。", *,
          status: Status = Status.ACTUAL, category: Category = Category.MET) -> Alert:
    info = Info(categories=(category,), event=event, urgency=Urgency.IMMEDIATE,
                severity=Severity.EXTREME, certainty=Certainty.LIKELY, language="zh-CN",
                sender_name="华容县气象台", headline=f"华容县发布{event}预警",
                description="预计降雨量100毫米以上。", instruction=instruction)
    return Alert("X_1", "s@example", datetime(2026, 7, 15, tzinfo=UTC), status, MsgType.ALERT,
                 Scope.PUBLIC, infos=(info,))


def render(a: Alert, kind: DeliveryKind, channel: str, level: Level = Level.RED) -> str:
    return T.render(kind, channel, a, a.infos[0], level, area="三封寺镇",
                    ack_url="http://x/ack/t")


def test_hazard_and_level_override_the_channel_text() -> None:
    a = alert()
    assert "请立即组织危险区域人员转移" in render(a, DeliveryKind.WARNING, "voice")
    assert "请立即组织危险区域人员转移" not in render(a, DeliveryKind.WARNING, "voice",
                                                     Level.ORANGE)
    assert "低洼地带" in render(a, DeliveryKind.WARNING, "loudspeaker")


def test_guidance_fills_a_missing_instruction() -> None:
    a = alert(instruction=None)
    assert "停止集会" in render(a, DeliveryKind.WARNING, "sms")
    assert "停止集会" not in render(alert(), DeliveryKind.WARNING, "sms")


def test_geohazard_has_its_own_warning_for_every_level() -> None:
    a = alert("地质灾害", category=Category.GEO)
    for level, zh in ((Level.RED, "红色"), (Level.ORANGE, "橙色"), (Level.YELLOW, "黄色")):
        assert render(a, DeliveryKind.WARNING, "sms", level).startswith(f"【地质灾害{zh}预警】")


@pytest.mark.parametrize("kind", list(DeliveryKind))
@pytest.mark.parametrize("channel", ["sms", "voice", "wecom", "loudspeaker"])
def test_every_drill_message_is_marked(kind: DeliveryKind, channel: str) -> None:
    text = render(alert(status=Status.EXERCISE), kind, channel)
    assert "演练" in text
    assert "演练" not in render(alert(), kind, channel)


def test_sms_carries_the_ack_link_voice_does_not() -> None:
    a = alert()
    assert "http://x/ack/t" in render(a, DeliveryKind.WARNING, "sms")
    assert "http://x/ack/t" not in render(a, DeliveryKind.WARNING, "voice")
    assert "http://x/ack/t" not in render(a, DeliveryKind.CANCEL, "sms")


def test_bad_template_files_are_config_errors() -> None:
    base = dict(T.table)
    with pytest.raises(ConfigError, match="unknown kind"):
        Templates({**base, "hazard": {"rainstorm": {"warnin": "x"}}})
    with pytest.raises(ConfigError, match="not a level"):
        Templates({**base, "hazard": {"rainstorm": {"purple": {"warning": "x"}}}})
    with pytest.raises(ConfigError, match="default"):
        Templates({k: v for k, v in base.items() if k != "cancel"})
