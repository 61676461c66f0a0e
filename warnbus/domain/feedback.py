"""Feedback after the ack (有叫有应更要有为): 已到岗, 已转移 N 人, 险情/灾情, 零报告.

A person who confirmed a warning reports what they did: by an SMS keyword (`parse_report`),
a key on the call, the WeCom card, the ack page's form, or a console user enters it for them.
Each report is one `Report`; the store keeps every one (append-only history) and the person's
latest counts (`FeedbackState`). Pure: no I/O.

Parsing is forgiving the way people type on a phone: full-width digits and letters, spaces or
none, a colon, traditional characters, 已/人/名 around the words, Chinese numerals for the
number of people (三十五, 两百, 一百零五).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from enum import StrEnum

import msgspec

#: The most people one report may say were moved: more is a typing error, not a count.
MAX_COUNT = 1_000_000
#: The longest text of a 险情 report kept (the rest is cut), and of its photo link.
MAX_TEXT = 500
MAX_URL = 500


class FeedbackKind(StrEnum):
    """What a report says (`k` of its history entry)."""

    ARRIVED = "arrived"  # 已到岗: at their post
    EVACUATED = "evacuated"  # 已转移 N 人: N people moved to safety (the total so far)
    HAZARD = "hazard"  # 险情/灾情: a danger or damage seen, in words (and a photo link)
    ZERO = "zero"  # 零报告: nothing happened here


FEEDBACK_ZH: Mapping[FeedbackKind, str] = {
    FeedbackKind.ARRIVED: "已到岗",
    FeedbackKind.EVACUATED: "已转移",
    FeedbackKind.HAZARD: "险情",
    FeedbackKind.ZERO: "零报告",
}


class Report(msgspec.Struct, frozen=True, gc=False):
    """One report: its kind, the number of people (转移), the words and photo link (险情)."""

    kind: FeedbackKind
    count: int | None = None
    text: str = ""
    photo: str = ""

    def __post_init__(self) -> None:
        if self.kind is FeedbackKind.EVACUATED:
            if self.count is None or not 0 <= self.count <= MAX_COUNT:
                raise ValueError(f"count: 0..{MAX_COUNT} people for 转移")
        elif self.count is not None:
            raise ValueError("count: only a 转移 report has a number of people")
        if len(self.text) > MAX_TEXT or len(self.photo) > MAX_URL:
            raise ValueError(f"text: at most {MAX_TEXT} characters, photo: {MAX_URL}")
        if self.photo and not _URL.fullmatch(self.photo):
            raise ValueError("photo: an http(s) link")

    @property
    def zh(self) -> str:
        """The report as the record reads it: 已转移 35 人, 险情：桥面漫水."""
        if self.kind is FeedbackKind.EVACUATED:
            return f"已转移 {self.count} 人"
        if self.kind is FeedbackKind.HAZARD:
            return "险情：" + self.text + (f"（照片 {self.photo}）" if self.photo else "")
        return FEEDBACK_ZH[self.kind]


class FeedbackState(msgspec.Struct, frozen=True):
    """A person's latest counts in one campaign, as `feedback.lua` keeps them (JSON)."""

    n: int = 0  # reports so far
    last: float | None = None  # the time of the latest
    arrived: float | None = None  # the first 到岗
    evacuated: int | None = None  # the latest 转移 count (a total, not an increment)
    hazards: int = 0
    hazard_text: str = ""  # the latest 险情
    hazard_photo: str = ""
    zero: float | None = None  # the latest 零报告
    overdue: float | None = None  # when the report became overdue (escalated), if it did
    overdue_to: str = ""  # who was told


class Feedback(msgspec.Struct, frozen=True):
    """One entry of a campaign's feedback history (who, when, how, and who entered it)."""

    person_id: str
    at: float
    report: Report
    via: str  # an AckVia value
    by: str = ""  # the console user (or token) who entered it for the person


# --------------------------------------------------------------------------- keypad

#: What a call asks after the confirmation (keys, then # to end).
KEYPAD_PROMPT = "如需报送：已到岗请按2，零报告请按3，已转移人数请先按4再输入人数，以井号键结束。"


def keypad_report(digits: str) -> Report | None:
    """The keys pressed after the confirmation: 2 到岗, 3 零报告, 4 and the number 转移 N
    ("435#": 35 people); None for anything else."""
    keys = digits.strip().rstrip("#")
    if keys == "2":
        return Report(FeedbackKind.ARRIVED)
    if keys == "3":
        return Report(FeedbackKind.ZERO)
    if len(keys) > 1 and keys[0] == "4" and keys[1:].isdigit() and keys.isascii():
        n = int(keys[1:])
        return Report(FeedbackKind.EVACUATED, count=n) if n <= MAX_COUNT else None
    return None


# --------------------------------------------------------------------------- SMS keywords

_URL = re.compile(r"https?://[^\s<>\"']{1,490}")
_TRADITIONAL = str.maketrans({"險": "险", "轉": "转", "報": "报", "崗": "岗", "災": "灾",
                              "兩": "两", "萬": "万", "個": "个", "無": "无"})
_SPACE = re.compile(r"[\s:：,，、。.!！]+")
_SPLIT_NUMBER = re.compile(r"\d[\s:：,，、。.]+\d")  # "转移 35 36": which number is meant?
_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6,
           "七": 7, "八": 8, "九": 9}
_UNITS = {"十": 10, "百": 100, "千": 1000, "万": 10000}
_NUMBER = r"(\d{1,7}|[零〇一二两三四五六七八九十百千万]{1,12})"
_EVACUATED = re.compile(rf"(?:已|已经)?(?:转移|撤离)(?:了)?{_NUMBER}(?:人|名|个人|口)?")
_ARRIVED = frozenset({"到岗", "已到岗", "在岗", "已在岗", "到位", "已到位", "已到"})
_ZERO = frozenset({"零报告", "0报告", "无险情", "零报"})
_HAZARD = re.compile(r"(?:有)?(险情|灾情)(.*)", re.S)


def chinese_number(text: str) -> int | None:
    """三十五 → 35, 两百 → 200, 一百零五 → 105, 十二 → 12; None when it is not a number."""
    if text.isdigit():
        return int(text)
    total, section, digit, last_unit = 0, 0, None, None
    for ch in text:
        if ch in "零〇" and digit is None and (last_unit is not None or total):
            continue  # 一百零五: the 零 only says a place is empty
        if ch in _DIGITS:
            if digit is not None:  # two digits in a row (三五): not how counts are said
                return None
            digit = _DIGITS[ch]
        elif ch in _UNITS:
            unit = _UNITS[ch]
            if last_unit is not None and unit >= last_unit and unit != 10000:
                return None
            if unit == 10000:
                total += (section + (digit or 0)) * unit
                section, digit, last_unit = 0, None, None
                continue
            section += (1 if digit is None else digit) * unit
            digit, last_unit = None, unit
        else:
            return None
    if digit is not None and digit == 0 and last_unit is None and total == section == 0:
        return 0
    return total + section + (digit or 0)


def parse_report(body: str) -> Report | None:
    """The report an SMS reply says, or None when it says none (it may be a confirmation).

    "到岗", "已到岗" · "转移 35", "已转移35人", "转移：三十五人", "撤离 两百 人" · "零报告" ·
    "险情 桥面漫水 https://…" (the words after 险情/灾情, a link in them is the photo)."""
    raw = unicodedata.normalize("NFKC", body).translate(_TRADITIONAL).strip()
    flat = _SPACE.sub("", raw).casefold()
    if not flat:
        return None
    if flat in _ARRIVED:
        return Report(FeedbackKind.ARRIVED)
    if flat in _ZERO:
        return Report(FeedbackKind.ZERO)
    m = _EVACUATED.fullmatch(flat)
    if m and not _SPLIT_NUMBER.search(raw):
        n = chinese_number(m.group(1))
        if n is None or n > MAX_COUNT:
            return None
        return Report(FeedbackKind.EVACUATED, count=n)
    if m:
        return None
    m = _HAZARD.match(raw.lstrip("有"))
    if m is None:
        return None
    words = m.group(2).strip(" \t\r\n:：,，、")
    link = _URL.search(words)
    photo = link.group(0) if link else ""
    if link:
        words = (words[: link.start()] + words[link.end():]).strip(" \t\r\n:：,，、")
    text = words or m.group(1)
    return Report(FeedbackKind.HAZARD, text=text[:MAX_TEXT], photo=photo)
