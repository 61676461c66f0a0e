"""Fit a message to a channel's limit at sentence boundaries, in time linear in its length.

Every channel with a length limit (SMS parts, a call's TwiML, a speaker's TTS text) shortens
a long warning the same way: `fit_sentences`. A warning's text is outside input (a CAP
headline or description), so the work must not grow faster than the text: the sentences are
split once, candidates longer than `bound` characters are never measured (each character
costs at least one unit of the limit, so a text that fits has at most `bound` of them), and
the longest candidate that fits is found by bisection. A call measures O(log n) texts of at
most `bound` characters, whatever the text.
"""

from __future__ import annotations

import re
from collections.abc import Callable

_SENTENCE = re.compile(r"[^。！？]*[。！？]+|[^。！？]+$")
ELLIPSIS = "…"


def fit_sentences(text: str, fits: Callable[[str], bool], keep: str | None = None, *,
                  bound: int) -> str:
    """Shorten `text` until `fits`, dropping whole sentences (ending 。！？) from the middle.

    The first sentence (level, headline) and the tail from the sentence holding `keep` (the
    ack instruction and link) or else the last sentence stay; middle sentences go from the
    end. Only if that is not enough is the first sentence cut, with "…". `keep` is never cut,
    even when that means going over the limit. A result is never longer than `bound` (or
    `keep`): when the first sentence and the tail together are, only `keep` stays of the tail
    (without `keep`: nothing) and the text before it is cut.

    `fits` must be monotone (a text that fits still fits with a sentence or a character
    less); `bound` is the most characters a text that fits can have.
    """
    if len(text) <= bound and fits(text):
        return text
    parts = _SENTENCE.findall(text)
    at = next((i for i, p in enumerate(parts) if keep and keep in p), len(parts) - 1)
    if at <= 0:  # the kept part is in the first sentence: cut just before it
        cut = text.find(keep) if keep and keep in text else len(text)
        head, tail, middle = text[:cut], text[cut:], []
    else:
        head, tail, middle = parts[0], "".join(parts[at:]), parts[1:at]
    size = len(head) + len(tail)
    if size <= bound:
        top = 0  # the most middle sentences that stay within `bound`
        for sentence in middle:
            size += len(sentence)
            if size > bound:
                break
            top += 1
        n = _last(lambda k: fits(head + "".join(middle[:k]) + tail), top)
        if n >= 0:
            return head + "".join(middle[:n]) + tail
    if len(tail) >= bound or not fits(ELLIPSIS + tail):
        if len(head) + len(tail) <= bound:
            # Even the tail alone is too long: going over the limit beats losing the headline
            # or the link (the provider still sends a longer message, in more parts).
            return head + tail
        # Longer than any message: only `keep` stays of the tail, and what precedes it is cut.
        cut = text.find(keep) if keep and keep in text else len(text)
        head, tail = text[:cut], keep if keep and keep in text else ""
        if len(tail) >= bound or not fits(ELLIPSIS + tail):  # over the limit, as above
            room = bound - len(tail) - 1
            return head[:room].rstrip() + ELLIPSIS + tail if room > 0 else tail
    top = min(len(head) - 1, bound - 1 - len(tail))
    n = _last(lambda k: fits(head[:k].rstrip() + ELLIPSIS + tail), top)
    return head[: max(n, 0)].rstrip() + ELLIPSIS + tail


def _last(fits_at: Callable[[int], bool], top: int) -> int:
    """The largest k in 0..top with `fits_at(k)` (true up to some k, false after); -1: none."""
    lo, hi = -1, top
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits_at(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo
