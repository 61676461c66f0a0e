"""What a message says of an alert, and how its parts share a channel's room.

Pure helpers of `rules.templates`: the description without what restates the headline
(`substance`), the headline that names its warning (`title`), times in Beijing time, and the
fitting of a text's parts into a channel's `max_length` (`share`, `clip`). Each is linear in
the length of its input: a CAP field is outside input.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone

BEIJING = timezone(timedelta(hours=8), "北京时间")
#: Most characters a description's lead may have to be taken for a restated headline.
LEAD_MAX = 80
#: No part of a fitted text is cut below this many characters (its beginning says what it is).
SHARE_MIN = 10
_SENTENCE = re.compile(r"[^。！？!?]*[。！？!?]+|[^。！？!?]+$")
# A date and time as agencies write them in a description: 2026年07月15日05时30分, 15日5时 ...
_DATETIME = re.compile(r"(\d{2,4}年)?(\d{1,2}月)?\d{1,2}日(\d{1,2}[时点](\d{1,2}分)?)?")
_NOT_WORDS = re.compile(r"[\s\W_]+")
_ENDS = "。！？!?；;"


def beijing(when: datetime | None) -> str:
    """`when` as people read it in China: 7月15日14时30分 (14时 on the hour); "" for None."""
    if when is None:
        return ""
    t = when.astimezone(BEIJING)
    return f"{t.month}月{t.day}日{t.hour}时" + (f"{t.minute:02d}分" if t.minute else "")


def _words(text: str) -> str:
    """The words of a sentence, without dates, times, spaces and punctuation."""
    return _NOT_WORDS.sub("", _DATETIME.sub("", text))


def substance(description: str, headline: str) -> str:
    """The description without what only restates the headline.

    Agencies open a description with the headline and its time ("华容县气象台2026年07月15日05时
    30分发布暴雨红色预警信号：预计…"): a lead of at most LEAD_MAX characters before the first
    colon that names a warning (预警, 警报) goes, and so does any sentence whose words (dates,
    times and punctuation aside) are the headline's. What stays is the figures, in order."""
    text = " ".join(description.split())
    colon = min((i for i in (text.find("："), text.find(":")) if i >= 0), default=-1)
    if 0 < colon <= LEAD_MAX and ("预警" in text[:colon] or "警报" in text[:colon]):
        text = text[colon + 1:].lstrip()
    head = _words(headline)
    if head:
        text = "".join(s for s in _SENTENCE.findall(text) if _words(s) != head)
    return text.strip()


def title(headline: str, event: str, level_zh: str, sender: str) -> str:
    """What warning a call or a broadcast is about, said once: the headline when it names
    the warning, else who issues which warning, then the headline."""
    if "预警" in headline or "警报" in headline:
        return headline
    lead = f"{sender}发布{event}{level_zh}预警"
    return f"{lead}：{headline}" if headline and headline != event else lead


def clip(text: str, limit: int) -> str:
    """`text` in at most `limit` characters, keeping its beginning: cut after its last
    sentence end (。！？；) in the second half of the limit, else before its last ，(with
    "…"), else before its last 、 (with 等: a list of areas or grids), each in the second
    half, else with "…".
    A text that ended a sentence still does (with 。), so the template's next sentence stays
    apart."""
    if len(text) <= limit:
        return text
    if limit <= 1:
        return ""
    head = text[: limit - 1]
    sentence = text.endswith(tuple(_ENDS))
    end = max(head.rfind(c) for c in _ENDS)
    if end >= limit // 2:
        return head[:end] + "。"
    room = head[: limit - 2] if sentence else head
    stop = "。" if sentence else ""
    sep = room.rfind("、")
    comma = max(room.rfind("，"), room.rfind(","))
    if comma >= limit // 2:
        return room[:comma].rstrip() + "…" + stop
    if sep >= limit // 2:
        return room[:sep] + "等" + stop
    return room.rstrip() + "…" + stop


def share(room: int, lengths: Mapping[str, int], floor: int = SHARE_MIN) -> dict[str, int]:
    """How many characters of `room` each part gets: every part all it needs when that fits,
    else the same share, a short part giving what it does not use to the longer ones (but
    never less than `floor`, even when that goes over: the channel's own fitting drops whole
    sentences then)."""
    out: dict[str, int] = {}
    left = max(room, 0)
    parts = sorted(lengths.items(), key=lambda kv: kv[1])
    for i, (name, length) in enumerate(parts):
        give = min(length, max(floor, left // (len(parts) - i)))
        out[name] = give
        left -= give
    return out
