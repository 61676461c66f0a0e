"""Per-number limits as the mainland providers enforce them, for their simulators.

Counts per sliding window (30 s, a minute, an hour), per natural day and per night
(22:00-08:00), all on Beijing time, per called number. A refused request is not counted.
"""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

CHINA = timezone(timedelta(hours=8))


@dataclass(frozen=True)
class Window:
    count: int
    seconds: float
    code: str  # the provider's refusal code


@dataclass(frozen=True)
class NumberLimits:
    """One account's limits per called number."""

    windows: tuple[Window, ...] = ()
    per_day: Window | None = None  # count per natural day; `seconds` unused
    per_night: Window | None = None  # count per night 22:00-08:00; `seconds` unused
    night: tuple[int, int] = (22, 8)


#: Tencent voice's defaults: 1 per 30 s, 2 per 10 minutes, 3 a day, 1 at night.
TENCENT_VOICE = NumberLimits(
    windows=(Window(1, 30, "LimitExceeded.DeliveryFrequencyLimit"),
             Window(2, 600, "LimitExceeded.DeliveryFrequencyLimit")),
    per_day=Window(3, 0, "LimitExceeded.DeliveryFrequencyLimit"),
    per_night=Window(1, 0, "LimitExceeded.DeliveryFrequencyLimit"))
#: Tencent SMS's defaults (频率限制): 1 per 30 s, 5 an hour, 10 a day.
TENCENT_SMS = NumberLimits(
    windows=(Window(1, 30, "LimitExceeded.PhoneNumberThirtySecondLimit"),
             Window(5, 3600, "LimitExceeded.PhoneNumberOneHourLimit")),
    per_day=Window(10, 0, "LimitExceeded.PhoneNumberDailyLimit"))
#: Aliyun voice's flow control per called number: 1 a minute, 5 an hour, 20 a day.
ALIYUN_VOICE = NumberLimits(
    windows=(Window(1, 60, "isv.BUSINESS_LIMIT_CONTROL"),
             Window(5, 3600, "isv.BUSINESS_LIMIT_CONTROL")),
    per_day=Window(20, 0, "isv.BUSINESS_LIMIT_CONTROL"))
#: Aliyun SMS's default flow control per number: 1 a minute, 5 an hour, 10 a day.
ALIYUN_SMS = NumberLimits(
    windows=(Window(1, 60, "isv.BUSINESS_LIMIT_CONTROL"),
             Window(5, 3600, "isv.BUSINESS_LIMIT_CONTROL")),
    per_day=Window(10, 0, "isv.BUSINESS_LIMIT_CONTROL"))
NONE = NumberLimits()


class NumberCounter:
    """Admits or refuses each request to a number under `limits`; `now` is epoch seconds."""

    def __init__(self, limits: NumberLimits) -> None:
        self.limits = limits
        self._times: dict[str, deque[float]] = defaultdict(deque)

    def admit(self, number: str, now: float) -> str | None:
        """None (and counted) when allowed, else the provider's refusal code."""
        times = self._times[number]
        longest = max([w.seconds for w in self.limits.windows] + [36 * 3600.0])
        while times and now - times[0] > longest:
            times.popleft()
        for w in self.limits.windows:
            if sum(1 for t in times if now - t < w.seconds) >= w.count:
                return w.code
        if self.limits.per_night and self._in_night(now):
            start = self._night_start(now)
            if sum(1 for t in times if t >= start) >= self.limits.per_night.count:
                return self.limits.per_night.code
        if self.limits.per_day:
            day = datetime.fromtimestamp(now, CHINA).date()
            if sum(1 for t in times if datetime.fromtimestamp(t, CHINA).date() == day) >= (
                    self.limits.per_day.count):
                return self.limits.per_day.code
        times.append(now)
        return None

    def _in_night(self, now: float) -> bool:
        start, end = self.limits.night
        hour = datetime.fromtimestamp(now, CHINA).hour
        return hour >= start or hour < end

    def _night_start(self, now: float) -> float:
        local = datetime.fromtimestamp(now, CHINA)
        start = local.replace(hour=self.limits.night[0], minute=0, second=0, microsecond=0)
        if local.hour < self.limits.night[1]:
            start -= timedelta(days=1)
        return start.timestamp()
