"""Cells as offices type them: phones, codes, yes/no, years; each problem said in Chinese."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from warnbus.registry_io import cells
from warnbus.registry_io.cells import CellError

PHONES = [
    ("13812345678", "+8613812345678"),
    (13812345678, "+8613812345678"),
    (13812345678.0, "+8613812345678"),  # a number cell
    ("138 1234 5678", "+8613812345678"),
    ("138-1234-5678", "+8613812345678"),
    ("１３８１２３４５６７８", "+8613812345678"),  # full-width digits (Chinese IME)
    ("+86 138 1234 5678", "+8613812345678"),
    ("8613812345678", "+8613812345678"),
    ("008613812345678", "+8613812345678"),
    ("\u200b13812345678\u3000", "+8613812345678"),  # pasted from a web page
    ("+85291234567", "+85291234567"),
    ("", None),
    (None, None),
]
BAD_PHONES = [
    ("1381234567", "号码应为11位手机号"),
    ("12812345678", "号码应为11位手机号（1开头，第二位为3-9）"),
    ("138****5678", "号码已脱敏（中间几位是*），请填写完整号码"),
    ("0730-1234567", "号码应为11位手机号"),
    ("张三", "号码应为11位手机号"),
    (date(2026, 1, 2), "应为文字，这里是日期或时间（请将单元格格式设为“文本”）"),
    ("+86abc", "号码应为11位手机号（1开头，第二位为3-9）"),
]


@pytest.mark.parametrize(("raw", "want"), PHONES)
def test_phone_as_typed(raw: cells.Cell, want: str | None) -> None:
    assert cells.phone(raw) == want


@pytest.mark.parametrize(("raw", "message"), BAD_PHONES)
def test_bad_phone_says_why(raw: cells.Cell, message: str) -> None:
    with pytest.raises(CellError) as e:
        cells.phone(raw)
    assert e.value.message == message


@pytest.mark.parametrize(("raw", "want"), [
    ("430623101001", "430623101001"), (430623101001, "430623101001"),
    ("430623101001000", "430623101001"),  # 15-digit ADCD of 山洪灾害 systems
    ("430623101", "430623101000"), ("430623", "430623000000"),
    ("４３０６２３１０１００１", "430623101001"),
])
def test_region_codes(raw: cells.Cell, want: str) -> None:
    assert cells.region_code(raw) == want


@pytest.mark.parametrize(("raw", "fragment"), [
    ("430623101001001", "自然村"), ("4306231010", "这里是10位"), ("华容县", "12位数字"),
    (4.30623101001e11 + 0.5, "12位数字"),
])
def test_bad_region_codes(raw: cells.Cell, fragment: str) -> None:
    with pytest.raises(CellError, match=fragment):
        cells.region_code(raw)


def test_yes_no_and_years() -> None:
    assert [cells.flag(v) for v in ("是", "否", "", None, "Y", 1, True, "√")] == [
        True, False, False, False, True, True, True, True]
    with pytest.raises(CellError, match="应填“是”或“否”"):
        cells.flag("也许")
    assert cells.year("2026") == 2026 and cells.year(2026.0) == 2026
    assert cells.year("2026年") == 2026
    assert cells.year(None) is None
    with pytest.raises(CellError, match="年份"):
        cells.year("26")


def test_text_refuses_dates_and_overlong() -> None:
    with pytest.raises(CellError, match="日期"):
        cells.text(datetime(2026, 1, 1))
    with pytest.raises(CellError, match="内容过长"):
        cells.text("字" * 201)
    assert cells.text(1.5) == "1.5" and cells.text(12.0) == "12"


def test_control_characters_never_reach_a_record() -> None:
    """A terminal escape in a name would act on whoever reads the CLI's output; a tab or a
    newline inside a cell is a space."""
    assert cells.text("张\x1b[2J三\x07") == "张[2J三"
    assert cells.text("备注\n第二行\t完") == "备注 第二行 完"
