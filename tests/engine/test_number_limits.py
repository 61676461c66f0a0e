"""Per-number limits of provider accounts: one shared record per number, taken atomically."""

from __future__ import annotations

import asyncio
from datetime import datetime

from redis.asyncio import Redis

from warnbus.state.numberlimits import CHINA, PRESETS, NumberLimitBook, NumberLimits, Window

TENCENT = PRESETS["tencent-voice"]
ALIYUN = PRESETS["aliyun-voice"]
NUMBER = "+8613800000001"
M = TENCENT.margin_s  # added to each window: the provider counts a send a little later


def at(text: str) -> float:
    """A Beijing time as epoch seconds: "2026-07-01 10:00:00"."""
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=CHINA).timestamp()


async def test_tencent_voice_defaults_refuse_as_the_provider_does(redis: Redis) -> None:
    """1 per 30 s, 2 per 10 min, 3 a day: the red policy's calls at 0, 180, 280 s break it at
    the third; each refusal says which limit and when it admits a call again."""
    book = NumberLimitBook(redis)
    t0 = at("2026-07-01 10:00:00")
    assert await book.take("tc", TENCENT, NUMBER, "d0", t0) is None
    r = await book.take("tc", TENCENT, NUMBER, "d1", t0 + 10)
    assert r is not None and r.which == "1" and r.free_at == t0 + 30 + M
    assert TENCENT.describe(r.which, "call") == "1 call in 30 s"
    assert await book.take("tc", TENCENT, NUMBER, "d1", t0 + 180) is None
    r = await book.take("tc", TENCENT, NUMBER, "d2", t0 + 280)
    assert r is not None and TENCENT.describe(r.which, "call") == "2 calls in 10 min"
    assert r.free_at == t0 + 600 + M  # the call at 0 leaves the 10-minute window
    assert await book.take("tc", TENCENT, NUMBER, "d2", t0 + 700) is None
    r = await book.take("tc", TENCENT, NUMBER, "d3", t0 + 3 * 3600)
    assert r is not None and r.which == "day" and r.free_at == at("2026-07-02 00:00:00")
    assert TENCENT.describe("day", "call") == "3 calls a day"
    # Another number, or the same number through another account, has its own record.
    assert await book.take("tc", TENCENT, "+8613800000002", "d4", t0 + 700) is None
    assert await book.take("ali", ALIYUN, NUMBER, "d5", t0 + 3 * 3600) is None


async def test_one_call_at_night(redis: Redis) -> None:
    book = NumberLimitBook(redis)
    t0 = at("2026-07-01 23:30:00")
    assert await book.take("tc", TENCENT, NUMBER, "a", t0) is None
    r = await book.take("tc", TENCENT, NUMBER, "b", t0 + 3600)  # 00:30: the same night
    assert r is not None and r.which == "night" and r.free_at == at("2026-07-02 08:00:00")
    assert TENCENT.describe("night", "call") == "1 call at night (22:00-08:00)"
    # A call before 22:00 does not count against the night.
    other = "+8613800000003"
    assert await book.take("tc", TENCENT, other, "c", at("2026-07-01 21:50:00")) is None
    assert await book.take("tc", TENCENT, other, "d", at("2026-07-01 22:30:00")) is None


async def test_a_delivery_taking_again_counts_once(redis: Redis) -> None:
    """A retry or a resend of the same delivery is not a second send to the number."""
    book = NumberLimitBook(redis)
    lim = NumberLimits(windows=(Window(2, 600),))
    t0 = at("2026-07-01 10:00:00")
    assert await book.take("a", lim, NUMBER, "d0", t0) is None
    assert await book.take("a", lim, NUMBER, "d0", t0 + 5) is None
    assert await book.take("a", lim, NUMBER, "d1", t0 + 10) is None
    r = await book.take("a", lim, NUMBER, "d2", t0 + 20)
    assert r is not None and r.free_at == t0 + 605 + M  # d0 counts from its retry at +5
    # Refused again, d1's own send is kept as it was.
    r = await book.take("a", lim, NUMBER, "d1", t0 + 20)
    assert r is None, "d1 retaking leaves itself out of the count"


async def test_concurrent_takes_never_pass_a_limit(redis: Redis) -> None:
    """Many workers at once: exactly the limit's count is admitted (atomic check-and-take)."""
    books = [NumberLimitBook(redis) for _ in range(4)]  # as many processes' handles
    lim = NumberLimits(windows=(Window(5, 3600),))
    t0 = at("2026-07-01 10:00:00")
    got = await asyncio.gather(*(books[i % 4].take("acct", lim, NUMBER, f"d{i}", t0 + i / 100)
                                 for i in range(40)))
    assert sum(1 for r in got if r is None) == 5


async def test_a_send_just_past_a_window_waits_for_the_margin(redis: Redis) -> None:
    """The provider counts a send when it arrives: one taken exactly a window later could
    still be in the provider's window, so the engine keeps a margin."""
    book = NumberLimitBook(redis)
    t0 = at("2026-07-01 10:00:00")
    assert await book.take("ali", ALIYUN, NUMBER, "a", t0) is None
    assert await book.take("ali", ALIYUN, NUMBER, "b", t0 + 60.5) is not None
    assert await book.take("ali", ALIYUN, NUMBER, "b", t0 + 60 + M) is None


async def test_no_limits_take_nothing(redis: Redis) -> None:
    book = NumberLimitBook(redis)
    for i in range(10):
        assert await book.take("free", NumberLimits(), NUMBER, f"d{i}", 1e9) is None
    assert await redis.keys("wb:nl:*") == []
