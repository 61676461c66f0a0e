"""Message templates: per kind and channel, per hazard type and level, 演练 marking."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rules.hazards import HazardTable
from rules.templates import VALUE_MAX, Templates, bounded
from warnbus.domain.models import (
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
from warnbus.errors import ConfigError
from warnbus.flow.planner import area_text
from warnbus.ingest import parse_alert

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


# --------------------------------------------------------------------------- bounded values

REPO = Path(__file__).resolve().parents[2]
REAL = sorted([*(REPO / "tests" / "fixtures" / "cap").glob("*.*"),
               *(REPO / "config" / "alerts").glob("*.xml"),
               *(REPO.parent / "shared" / "data" / "cap").glob("*/*.*")])
KINDS_CHANNELS = [(k, c) for k in DeliveryKind for c in ("sms", "voice", "wecom", "loudspeaker")]


def test_real_alerts_render_as_without_the_bound() -> None:
    unbounded = Templates(T.table, T.hazards, value_max=10**9)
    extra = {"redial": "2", "grids": "1号网格、2号网格", "speakers": "3台"}
    checked = 0
    for path in REAL:
        if path.suffix not in (".xml", ".json", ".cap"):
            continue
        a = parse_alert(path.read_bytes())
        info = a.primary_info()
        for kind, channel in KINDS_CHANNELS:
            for level in Level:
                args = (kind, channel, a, info, level)
                kw = {"area": area_text(a), "ack_url": "http://x/ack/t", "extra": extra}
                assert T.render(*args, **kw) == unbounded.render(*args, **kw), path.name
                checked += 1
    assert checked > 1000


def test_a_warning_of_100k_character_fields_renders_a_bounded_text_quickly() -> None:
    long = Info(categories=(Category.MET,), event="暴雨" * 50_000, urgency=Urgency.IMMEDIATE,
                severity=Severity.EXTREME, certainty=Certainty.LIKELY, language="zh-CN",
                sender_name="台" * 100_000, headline="暴" * 100_000,
                description="雨持续。" * 25_000, instruction="撤离、" * 30_000)
    a = Alert("X_1", "s@example", datetime(2026, 7, 15, tzinfo=UTC), Status.ACTUAL,
              MsgType.ALERT, Scope.PUBLIC, infos=(long,))
    extra = {"grids": "网格、" * 50_000, "redial": "1", "speakers": "喇叭" * 50_000}
    start = time.thread_time()  # CPU: a busy machine's wait for a CPU is not the renderer's
    for kind, channel in KINDS_CHANNELS:
        text = T.render(kind, channel, a, long, Level.RED, area="镇、" * 100_000,
                        ack_url="http://x/ack/t", extra=extra)
        placeholders = len(re.findall(r"\{\w+\}", _template(kind, channel)))
        assert len(text) <= len(_template(kind, channel)) + placeholders * VALUE_MAX, (kind,
                                                                                        channel)
    took = time.thread_time() - start
    assert took < 0.5, f"{took:.2f} s of CPU for {len(KINDS_CHANNELS)} renderings"


def _template(kind: DeliveryKind, channel: str) -> str:
    """The longest template a kind and channel may use (any hazard, any level)."""
    found = [T.table[kind.value].get(channel) or T.table[kind.value]["default"]]
    for section in T.table.get("hazard", {}).values():
        for layer in [section, *(v for v in section.values() if isinstance(v, dict))]:
            for name in (kind.value, f"{kind.value}.{channel}"):
                if isinstance(layer.get(name), str):
                    found.append(layer[name])
    return max(found, key=len)


@pytest.mark.parametrize(("text", "expected"), [
    ("短句。" * 8, "短句。" * 8),  # within the limit: untouched
    ("句子一。" + "长" * 30, "句子一。" + "长" * 19 + "…"),  # the sentence end is too early
    ("长" * 12 + "。" + "长" * 30, "长" * 12 + "。"),  # cut after the last sentence end
    ("城关镇、" * 10, "城关镇、城关镇、城关镇、城关镇、城关镇等"),  # before a separator, 等
    ("长" * 40, "长" * 23 + "…"),
])
def test_bounded_cuts_at_a_sentence_end_or_a_list_separator(text: str, expected: str) -> None:
    assert bounded(text, 24) == expected
    assert len(bounded(text, 24)) <= 24


@pytest.mark.parametrize("kind", list(DeliveryKind))
@pytest.mark.parametrize("medium", ["voice", "sms", "wecom", "loudspeaker"])
def test_a_channel_named_by_the_deployment_gets_the_texts_of_its_medium(
        kind: DeliveryKind, medium: str) -> None:
    a = alert()
    kw = {"area": "三封寺镇", "ack_url": "http://x/ack/t"}
    assert T.render(kind, "tel", a, a.infos[0], Level.RED, medium=medium, **kw) == T.render(
        kind, medium, a, a.infos[0], Level.RED, **kw)


def test_a_channels_own_template_comes_before_its_mediums() -> None:
    table: dict[str, dict[str, str]] = {k.value: {"default": "D{ack}"} for k in DeliveryKind}
    table["warning"] |= {"voice": "V{ack}", "tel": "T{ack}"}
    table["ack"] = {"voice": "按1", "sms": "回1", "default": "确认", "link": "或{url}"}
    t = Templates(table)
    a = alert()

    def render(channel: str, medium: str | None) -> str:
        return t.render(DeliveryKind.WARNING, channel, a, None, Level.RED, medium=medium,
                        ack_url="L")

    assert render("tel", "voice") == "T按1"  # its own text, its medium's ack, no link on a call
    assert render("fax", "voice") == "V按1"
    assert render("txt", "sms") == "D回1，或L"
    assert render("voice", None) == "V按1"  # no medium: the name is taken for it
