"""What every message says: each kind x medium x level rendered with the bundled templates,
read for what it must and must not say (issue 17: a 解除 announced a warning, an Update did
not say what changed, SMS and WeCom texts carried no figures, calls said the headline twice).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rules.hazards import HazardTable
from rules.templates import Templates
from rules.wording import clip, share, substance, title
from warnbus.domain.models import (
    LEVEL_NAMES_ZH,
    Alert,
    Area,
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
MEDIA = ("voice", "sms", "wecom", "loudspeaker")
LINK = "https://warnbus.example/ack/TOKEN"
#: What each medium asks a person who is to confirm (none on a loudspeaker).
ASKS = {"voice": "按1", "sms": "回复1", "wecom": "确认收到", "loudspeaker": None}
ISSUED = datetime(2026, 7, 14, 21, 30, tzinfo=UTC)  # 05:30 Beijing time
LIFTED = datetime(2026, 7, 15, 6, 30, tzinfo=UTC)  # 14:30 Beijing time
AREA = "三封寺镇、治河渡镇、北景港镇"


def message(msg_type: MsgType, level: Level, *, drill: bool = False, description: str = "",
            instruction: str | None = "危险区域人员立即转移；网格员逐户确认。") -> Alert:
    zh = LEVEL_NAMES_ZH[level]
    verb = {MsgType.ALERT: "发布", MsgType.UPDATE: "更新", MsgType.CANCEL: "解除"}[msg_type]
    when = ISSUED if msg_type is MsgType.ALERT else LIFTED
    headline = f"华容县气象台{verb}暴雨{zh}预警信号"
    # As agencies write it: the headline again, with its time, before the figures.
    description = description or (
        f"华容县气象台2026年07月15日05时30分{verb}暴雨{zh}预警信号：预计未来3小时内，三封寺镇降雨量"
        "将达100毫米以上，并伴有雷电和短时强降水。")
    if msg_type is MsgType.CANCEL:
        description, instruction = f"华容县气象台2026年07月15日14时30分解除暴雨{zh}预警信号。", None
    info = Info(categories=(Category.MET,), event="暴雨", urgency=Urgency.IMMEDIATE,
                severity=Severity.EXTREME, certainty=Certainty.LIKELY, language="zh-CN",
                effective=when, expires=when + timedelta(hours=12), sender_name="华容县气象台",
                headline=headline, description=description, instruction=instruction,
                areas=(Area(desc=AREA),))
    return Alert(f"43062304100000_{msg_type.value}", "430623@qx.example.cn", when,
                 Status.EXERCISE if drill else Status.ACTUAL, msg_type, Scope.PUBLIC,
                 infos=(info,))


KIND_MESSAGE = {DeliveryKind.WARNING: MsgType.ALERT, DeliveryKind.UPDATE: MsgType.UPDATE,
                DeliveryKind.REDIAL: MsgType.ALERT, DeliveryKind.ESCALATION: MsgType.ALERT,
                DeliveryKind.CANCEL: MsgType.CANCEL, DeliveryKind.NOTICE: MsgType.ALERT,
                DeliveryKind.FEEDBACK: MsgType.ALERT}
EXTRA = {"redial": "2", "grids": "马家嘴村1号网格", "speakers": "马家嘴村1号喇叭",
         "feedback": "请于7月15日14时30分前报送到岗、转移人数、险情或零报告。",
         "changes": "变化：级别由橙色升为红色；新增区域：东山镇；有效期延至7月15日20时30分。"}


def render(kind: DeliveryKind, medium: str, level: Level, *, drill: bool = False,
           confirm: bool | None = None, max_length: int | None = None,
           alert: Alert | None = None, extra: dict[str, str] | None = None) -> str:
    a = alert or message(KIND_MESSAGE[kind], level, drill=drill)
    return T.render(kind, medium, a, a.primary_info(), level, area=AREA, ack_url=LINK,
                    extra=extra or EXTRA, confirm=confirm, max_length=max_length)


def check_common(text: str, level: Level, medium: str) -> None:
    """Whatever the kind: the level, no headline twice, no restated lead, no empty labels."""
    assert LEVEL_NAMES_ZH[level] in text, text
    for verb in ("发布", "更新", "解除"):
        assert text.count(f"华容县气象台{verb}暴雨{LEVEL_NAMES_ZH[level]}预警信号") <= 1, text
    assert "2026年07月15日" not in text, text  # the description's lead restating the headline
    assert "。。" not in text and "：。" not in text, text
    if medium in ("voice", "loudspeaker", "wecom"):
        assert LINK not in text, text


LEVELS = list(Level)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("medium", MEDIA)
def test_a_warning_carries_its_figures_its_instruction_and_how_to_confirm(
        medium: str, level: Level) -> None:
    text = render(DeliveryKind.WARNING, medium, level)
    check_common(text, level, medium)
    assert "100毫米" in text and "危险区域人员立即转移" in text, text
    if medium != "loudspeaker":
        assert "三封寺镇" in text, text
    asks = ASKS[medium]
    if asks is None:
        assert "按1" not in text and "回复1" not in text, text
    else:
        assert asks in text, text
    assert (LINK in text) is (medium == "sms")


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("medium", MEDIA)
def test_an_update_says_update_and_what_changed(medium: str, level: Level) -> None:
    text = render(DeliveryKind.UPDATE, medium, level)
    check_common(text, level, medium)
    assert "更新" in text and EXTRA["changes"].removesuffix("。") in text, text
    assert "100毫米" in text, text
    asks = ASKS[medium]
    assert asks is None or asks in text, text
    # To someone who confirmed already: the new content, nothing asked.
    quiet = render(DeliveryKind.UPDATE, medium, level, confirm=False)
    assert "更新" in quiet and "按1" not in quiet and "回复1" not in quiet and LINK not in quiet
    assert "确认收到" not in quiet, quiet


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("medium", ["voice", "sms", "wecom"])
def test_a_redial_and_an_escalation_say_what_they_are_with_the_substance(
        medium: str, level: Level) -> None:
    redial = render(DeliveryKind.REDIAL, medium, level)
    check_common(redial, level, medium)
    assert "第2次提醒" in redial and "尚未确认" in redial and "100毫米" in redial, redial
    escalation = render(DeliveryKind.ESCALATION, medium, level)
    check_common(escalation, level, medium)
    assert "马家嘴村1号网格" in escalation and "入户" in escalation, escalation
    assert "100毫米" in escalation, escalation
    for text in (redial, escalation):
        assert ASKS[medium] in text, text  # type: ignore[operator]


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("medium", MEDIA)
def test_a_cancel_announces_the_lifting_and_asks_nothing(medium: str, level: Level) -> None:
    text = render(DeliveryKind.CANCEL, medium, level)
    check_common(text, level, medium)
    assert "解除" in text and "华容县气象台" in text and "暴雨" in text, text
    assert "7月15日14时30分" in text and "三封寺镇" in text, text  # since when, for which area
    for never in ("按1", "回复1", "确认收到", LINK, "紧急通知", "立即转移", "停止集会",
                  f"【{LEVEL_NAMES_ZH[level]}预警】", "发布"):
        assert never not in text, (never, text)


@pytest.mark.parametrize("medium", MEDIA)
def test_a_cancel_the_policy_wants_confirmed_asks_for_it(medium: str) -> None:
    text = render(DeliveryKind.CANCEL, medium, Level.RED, confirm=True)
    assert "解除" in text and "立即转移" not in text, text
    asks = ASKS[medium]
    if asks is None:
        assert "按1" not in text and "回复1" not in text, text
    else:
        assert asks in text, text


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("medium", MEDIA)
def test_the_area_an_update_drops_gets_its_own_lifting(medium: str, level: Level) -> None:
    upd = message(MsgType.UPDATE, level)
    text = render(DeliveryKind.CANCEL, medium, level, alert=upd, extra={"lifted": "治河渡镇"})
    check_common(text, level, medium)
    assert "解除" in text and "7月15日14时30分" in text, text
    if medium != "loudspeaker":
        assert "治河渡镇" in text and "三封寺镇" not in text, text
    for never in ("按1", "回复1", LINK, "100毫米", "立即转移", "紧急通知"):
        assert never not in text, (never, text)
    # Re-rendered without the dropped area's name (a fallback channel): never the area kept.
    again = T.render(DeliveryKind.CANCEL, medium, upd, upd.primary_info(), level, area=AREA)
    assert "三封寺镇" not in again and "解除" in again, again


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("medium", ["voice", "sms", "wecom"])
def test_a_feedback_reminder_says_what_to_report_and_asks_no_key(medium: str, level: Level
                                                                  ) -> None:
    text = render(DeliveryKind.FEEDBACK, medium, level, confirm=False)
    assert "反馈" in text and "转移人数" in text and "14时30分" in text, text
    assert "按1" not in text and "回复1" not in text and LINK not in text, text


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("medium", ["voice", "sms", "wecom"])
def test_a_notice_asks_for_door_to_door_and_no_key(medium: str, level: Level) -> None:
    text = render(DeliveryKind.NOTICE, medium, level)
    check_common(text, level, medium)
    assert "未确认播放" in text and "入户" in text and "100毫米" in text, text
    assert "按1" not in text and "回复1" not in text and LINK not in text, text


@pytest.mark.parametrize("kind", list(DeliveryKind))
@pytest.mark.parametrize("medium", MEDIA)
def test_an_exercise_is_marked_in_every_text(kind: DeliveryKind, medium: str) -> None:
    assert "【演练】" in render(kind, medium, Level.RED, drill=True)
    assert "演练" not in render(kind, medium, Level.RED)
    upd = message(MsgType.UPDATE, Level.RED, drill=True)
    assert "【演练】" in render(DeliveryKind.CANCEL, medium, Level.RED, alert=upd,
                                extra={"lifted": "治河渡镇"})


FIGURES = "".join(f"第{i}站3小时累计降雨量{100 + i}毫米，" for i in range(120)) + "山洪风险极高。"
STEPS = "".join(f"{i}.第{i}项防御措施须立即落实；" for i in range(1, 60)) + "危险区域人员立即转移。"


@pytest.mark.parametrize("limit", [160, 402, 1800])
@pytest.mark.parametrize("medium", MEDIA)
@pytest.mark.parametrize("kind", [DeliveryKind.WARNING, DeliveryKind.UPDATE, DeliveryKind.REDIAL])
def test_within_a_channels_limit_each_part_keeps_its_beginning(
        kind: DeliveryKind, medium: str, limit: int) -> None:
    """A long description and instruction share the room: the text fits, and carries the
    first figures and the first steps, the headline once and how to confirm."""
    long = message(KIND_MESSAGE[kind], Level.RED, description=FIGURES, instruction=STEPS)
    text = render(kind, medium, Level.RED, alert=long, max_length=limit)
    assert len(text) <= limit, (len(text), text)
    # The figures begin every text; a whole one where the room allows (an SMS of 160
    # characters spends a third of them on its link).
    assert "第0站3小时累计降雨量1" in text, text
    assert limit < 402 or "第0站3小时累计降雨量100毫米" in text, text
    assert "1.第1项防御措施" in text, text
    asks = ASKS[medium]
    assert asks is None or asks in text, text
    full = render(kind, medium, Level.RED, alert=long)
    assert len(full) > limit and STEPS.removesuffix("。") in full  # nothing cut without a limit


def test_substance_drops_what_restates_the_headline() -> None:
    head = "华容县气象台发布暴雨红色预警信号"
    assert substance("华容县气象台2026年07月15日05时30分发布暴雨红色预警信号:预计降雨100毫米。",
                     head) == "预计降雨100毫米。"
    assert substance("华容县气象台2026年07月15日14时30分解除暴雨红色预警信号。",
                     "华容县气象台解除暴雨红色预警信号") == ""
    assert substance("时间：今晚。预计降雨100毫米。", head) == "时间：今晚。预计降雨100毫米。"
    assert (title("三封寺镇暴雨", "暴雨", "红色", "县应急管理局")
            == "县应急管理局发布暴雨红色预警：三封寺镇暴雨")
    assert title(head, "暴雨", "红色", "县气象台") == head


def test_clip_and_share() -> None:
    assert clip("三封寺镇、治河渡镇、北景港镇、东山镇", 12) == "三封寺镇、治河渡镇等"
    assert (clip("预计未来3小时内，三封寺镇降雨量将达100毫米以上。", 20)
            == "预计未来3小时内，三封寺镇降雨量将达…。")
    assert clip("预计未来3小时内，三封寺镇降雨量将达100毫米以上，伴有雷电。", 30) == (
        "预计未来3小时内，三封寺镇降雨量将达100毫米以上…。")
    assert clip("第一句话很长很长。第二句话也很长。", 12) == "第一句话很长很长。"
    assert share(30, {"a": 5, "b": 100, "c": 100}) == {"a": 5, "b": 12, "c": 13}
    assert share(0, {"a": 50}) == {"a": 10}  # never below the floor: the channel fits the rest
