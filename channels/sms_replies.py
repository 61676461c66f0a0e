"""SMS replies that confirm a warning, whatever the provider: "1", "收到", "确认" and kin.

A reply confirms every open campaign of the sender's number (`sink.confirm_from`). Full-width
digits, traditional characters, trailing punctuation and case do not matter.
"""

from __future__ import annotations

import unicodedata

#: Replies that confirm, after `normalize_reply`.
CONFIRM_REPLIES = frozenset({"1", "收到", "确认", "收到了", "确认收到", "已收到", "ok", "好",
                             "好的"})
_TRADITIONAL = str.maketrans({"確": "确", "認": "认"})
_TRAILING = " \t\r\n。.!！~～,，、"


def normalize_reply(body: str) -> str:
    """`" １。"` → `"1"`, `"確認"` → `"确认"`, `"OK!"` → `"ok"`."""
    text = unicodedata.normalize("NFKC", body).translate(_TRADITIONAL)
    return text.strip(_TRAILING).casefold()


def is_confirmation(body: str) -> bool:
    return normalize_reply(body) in CONFIRM_REPLIES
