"""One cell of an office's workbook, read the way people type it; problems in Chinese.

A workbook gives text, numbers (a phone typed into a number cell is 13812345678 or
1.3812345678E10), booleans and dates. Each reader here takes any of them and returns the
registry's value or raises CellError with what is wrong, for the sheet/row/column report.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from datetime import date, datetime, time, timedelta
from typing import TypeVar

from warnbus.registry import phone_problem

Cell = str | int | float | bool | date | datetime | time | timedelta | None
_T = TypeVar("_T")

#: Longest text a cell may hold for a name, an id or a note (a workbook cell holds 32,767).
MAX_TEXT = 200
# Zero-width and bidi marks (pasted from web pages) and control characters (a terminal
# escape in a name would reach whoever reads the CLI's output) are not text anyone typed.
_INVISIBLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202f\u2060\ufeff]")
_SPACES = re.compile(r"[\t\n\r\u3000\xa0]")
_PHONE_SEPARATORS = re.compile(r"[\s\-()（）.]")


class CellError(ValueError):
    """What is wrong with one cell, in Chinese."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def text(value: Cell, *, limit: int = MAX_TEXT) -> str:
    """The cell as trimmed text ("" for empty); numbers without a trailing ".0"."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise CellError("不是有效的数值")
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, (date, datetime, time, timedelta)):
        raise CellError("应为文字，这里是日期或时间（请将单元格格式设为“文本”）")
    out = _INVISIBLE.sub("", _SPACES.sub(" ", str(value))).strip()
    if len(out) > limit:
        raise CellError(f"内容过长（{len(out)}个字符，最多{limit}个）")
    return out


def ascii_text(value: Cell, *, limit: int = MAX_TEXT) -> str:
    """Text with full-width letters and digits made half-width (ids, codes, numbers)."""
    return unicodedata.normalize("NFKC", text(value, limit=limit)).strip()


def phone(value: Cell) -> str | None:
    """A mobile number as E.164 (+86...), or None for an empty cell.

    11 digits starting 1[3-9] are a Chinese mobile; spaces, hyphens and brackets are dropped;
    86 / 0086 / +86 in front are accepted; other countries need the + form.
    """
    raw = ascii_text(value, limit=40)
    if not raw:
        return None
    if "*" in raw:
        raise CellError("号码已脱敏（中间几位是*），请填写完整号码")
    digits = _PHONE_SEPARATORS.sub("", raw)
    if digits.startswith("+"):
        number = digits
    elif digits.startswith("0086"):
        number = "+" + digits[2:]
    elif digits.startswith("86") and len(digits) == 13:
        number = "+" + digits
    elif len(digits) == 11 and digits.startswith("1"):
        number = "+86" + digits
    else:
        raise CellError("号码应为11位手机号")
    if not number[1:].isdigit() or phone_problem(number):
        if number.startswith("+86"):
            raise CellError("号码应为11位手机号（1开头，第二位为3-9）")
        raise CellError("国际号码应为“+国家代码+号码”，如 +85291234567")
    return number


def choice(value: Cell, words: Mapping[str, _T], what: str, names: Iterable[str]) -> _T:
    """One of a closed list (职位, 类型, 职责): its Chinese name or another word for it."""
    hit = words.get(text(value, limit=20))
    if hit is None:
        raise CellError(f"{what}应为：" + "、".join(names))
    return hit


_YES = frozenset({"是", "y", "yes", "true", "1", "√", "✓", "参加"})
_NO = frozenset({"", "否", "n", "no", "false", "0", "×", "不参加"})


def flag(value: Cell) -> bool:
    """A yes/no cell: 是/否 (or Y/N, 1/0, √); empty is no."""
    if isinstance(value, bool):
        return value
    word = ascii_text(value, limit=10).lower()
    if word in _YES:
        return True
    if word in _NO:
        return False
    raise CellError("应填“是”或“否”")


def region_code(value: Cell) -> str:
    """A 12-digit 统计用区划代码 from 12 digits, a 15-digit ADCD ending 000 (山洪灾害 systems
    add three digits for natural villages), or a 6-digit county / 9-digit township code."""
    code = ascii_text(value, limit=20)
    if not code.isdigit():
        raise CellError("区划代码应为12位数字（统计用区划代码）或15位 ADCD")
    if len(code) == 15:
        if code[12:] != "000":
            raise CellError("15位 ADCD 的末三位不是000：自然村不单独成为区划，请填所属行政村的代码")
        return code[:12]
    if len(code) == 9:
        return code + "000"
    if len(code) == 6:
        return code + "000000"
    if len(code) != 12:
        raise CellError(f"区划代码应为12位数字（统计用区划代码）或15位 ADCD，这里是{len(code)}位")
    return code


def year(value: Cell) -> int | None:
    """A roster year (年份): four digits, 2000-2100; None for an empty cell."""
    word = ascii_text(value, limit=10).removesuffix("年")
    if not word:
        return None
    if not word.isdigit() or not 2000 <= int(word) <= 2100:
        raise CellError("年份应为四位数字，如 2026")
    return int(word)


def words(value: Cell) -> tuple[str, ...]:
    """A list in one cell, separated by 、，,；; or spaces."""
    return tuple(w for w in re.split(r"[、，,；;\s]+", text(value)) if w)
