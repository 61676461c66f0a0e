"""Per-number limits of provider accounts, shared by every process (one ZSET per number).

Mainland providers refuse a call or SMS to a number that had too many lately: Tencent voice by
default 1 per 30 s, 2 per 10 minutes, 3 a day and 1 at night (22:00-08:00 Beijing time); Aliyun
voice 1 a minute, 5 an hour, 20 a day. The engine keeps the same count itself, per provider
account and number, so that it takes another path *before* the provider would refuse
(`flow.routes`). One Lua script checks every limit and takes the send atomically
(take_number.lua), so two workers never both take the last one.

Times are the engine's clock (`Clock.now`: epoch seconds; compressed in the demo, like the
simulators it drives); days and nights are Beijing's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from warnbus.state import keys, scripts
from warnbus.state.client import RedisClient

TAKE_NUMBER = scripts.load(__file__, "take_number")
CHINA = timezone(timedelta(hours=8))
#: How long a send stays in a number's record when no window is longer: a Beijing day and a
#: night (22:00-08:00) both fit, whatever the time of the send.
KEEP_S = 36 * 3600.0


@dataclass(frozen=True)
class Window:
    """At most `count` sends to a number within any `seconds`."""

    count: int
    seconds: float

    def __post_init__(self) -> None:
        if self.count < 1 or self.seconds <= 0:
            raise ValueError("a window needs count >= 1 and seconds > 0")


@dataclass(frozen=True)
class NumberLimits:
    """One provider account's limits per called number (0: no such limit)."""

    windows: tuple[Window, ...] = ()
    per_day: int = 0  # per natural day, Beijing time
    per_night: int = 0  # per night, from night[0]:00 to night[1]:00 Beijing time
    night: tuple[int, int] = (22, 8)
    # Seconds added to each window: the provider counts a send when it arrives, a little
    # after the engine took it, so a window checked to the second could admit a send the
    # provider still counts within the window.
    margin_s: float = 2.0

    def __post_init__(self) -> None:
        if self.per_day < 0 or self.per_night < 0 or self.margin_s < 0:
            raise ValueError("per_day, per_night and margin_s must be >= 0")
        if not all(0 <= h <= 23 for h in self.night) or self.night[0] == self.night[1]:
            raise ValueError("night is two different hours, 0..23 (start, end)")

    @property
    def empty(self) -> bool:
        return not self.windows and not self.per_day and not self.per_night

    def describe(self, which: str, noun: str) -> str:
        """A refused limit as a person reads it: "2 calls in 10 min", "3 calls a day"."""
        if which == "day":
            return f"{_n(self.per_day, noun)} a day"
        if which == "night":
            start, end = self.night
            return f"{_n(self.per_night, noun)} at night ({start:02d}:00-{end:02d}:00)"
        w = self.windows[int(which) - 1]
        return f"{_n(w.count, noun)} in {_span(w.seconds)}"

    def bounds(self, now: float) -> tuple[float, float, float, float]:
        """(day start, day end, night start, night end) around `now`; the night's are 0 by day."""
        local = datetime.fromtimestamp(now, CHINA)
        day = local.replace(hour=0, minute=0, second=0, microsecond=0)
        start, end = self.night
        in_night = (local.hour >= start or local.hour < end) if start > end else (
            start <= local.hour < end)
        if not in_night:
            n0 = n1 = 0.0
        else:
            first = day.replace(hour=start)
            if first > local:
                first -= timedelta(days=1)
            last = first.replace(hour=end)
            if last <= first:
                last += timedelta(days=1)
            n0, n1 = first.timestamp(), last.timestamp()
        return day.timestamp(), (day + timedelta(days=1)).timestamp(), n0, n1


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _span(seconds: float) -> str:
    if seconds % 3600 == 0:
        return f"{int(seconds // 3600)} h"
    if seconds % 60 == 0:
        return f"{int(seconds // 60)} min"
    return f"{seconds:g} s"


#: The providers' documented defaults per called number, by channel type.
PRESETS: dict[str, NumberLimits] = {
    # Tencent Cloud VMS: 1 per 30 s, 2 per 10 min, 3 a day (notices 5), 1 at night.
    "tencent-voice": NumberLimits(windows=(Window(1, 30), Window(2, 600)), per_day=3,
                                  per_night=1),
    # Aliyun 语音服务 flow control: 1 a minute, 5 an hour, 20 a day.
    "aliyun-voice": NumberLimits(windows=(Window(1, 60), Window(5, 3600)), per_day=20),
    # Tencent Cloud SMS 频率限制: 1 per 30 s, 5 an hour, 10 a day.
    "tencent-sms": NumberLimits(windows=(Window(1, 30), Window(5, 3600)), per_day=10),
    # Aliyun 短信服务 flow control: 1 a minute, 5 an hour, 10 a day.
    "aliyun-sms": NumberLimits(windows=(Window(1, 60), Window(5, 3600)), per_day=10),
}


@dataclass(frozen=True)
class Refusal:
    """A send the account's limits would refuse: which limit, and when it admits one again."""

    which: str  # the window's position (1..), "day" or "night"
    free_at: float


class NumberLimitBook:
    """The shared per-number records: check and take a send atomically."""

    def __init__(self, redis: RedisClient) -> None:
        self._take = TAKE_NUMBER.bind(redis)

    async def take(self, account: str, limits: NumberLimits, number: str, member: str,
                   now: float) -> Refusal | None:
        """Take one send of `member` (a delivery's attempt) to `number`: None when admitted
        (it counts from now on), else the limit that refuses it (nothing is taken). The same
        member taking again moves its send to `now` and counts once."""
        if limits.empty:
            return None
        d0, d1, n0, n1 = limits.bounds(now)
        longest = max([w.seconds for w in limits.windows] + [KEEP_S])
        pairs: list[str] = []
        for w in limits.windows:
            pairs += (str(w.count), repr(w.seconds + limits.margin_s))
        reply = await self._take(
            {"record": keys.number_limit(account, number)}, *pairs, now=repr(now),
            member=member, day_start=repr(d0), day_end=repr(d1), night_start=repr(n0),
            night_end=repr(n1), per_day=str(limits.per_day), per_night=str(limits.per_night),
            keep=repr(longest))
        if int(reply[0]) == 1:
            return None
        which = reply[1].decode() if isinstance(reply[1], bytes) else str(reply[1])
        return Refusal(which, float(reply[2]))


__all__ = ["KEEP_S", "PRESETS", "NumberLimitBook", "NumberLimits", "Refusal", "Window"]
