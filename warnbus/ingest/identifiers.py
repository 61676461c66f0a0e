"""GB/T 35965.1-2018 alert identifiers: `ZZZZZZDDDUUUXX_YYYYMMDDhhmmss_N`, 31 characters.

- `ZZZZZZDDDUUUXX`, the issuing unit's code: ZZZZZZ its GB/T 2260 administrative division,
  DDD its department (GB/T 4657), UUU a unit inside the department ("000" by default) and XX
  the standard's two-digit extension code, called `serial` here ("00" by default);
- `YYYYMMDDhhmmss`, when the alert was entered, in Beijing time (UTC+8, no daylight saving);
- `N`, one digit: the alerts the same unit entered in the same second, counted from 0.

Foreign CAP feeds use other identifiers and are valid CAP, so the parser never applies this
form by itself: it is for the alerts warnbus originates and for an optional check.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from warnbus.errors import IngestError

#: Beijing time as GB/T 35965.1 uses it: a fixed UTC+8 (China has had no DST since 1991).
BEIJING = timezone(timedelta(hours=8), "CST")
FIELD = "identifier"
_TIME = "%Y%m%d%H%M%S"
_SHAPE = "ZZZZZZDDDUUUXX_YYYYMMDDhhmmss_N"

# GB/T 2260 province-level codes, the first two digits of every division code: 11-15 North,
# 21-23 North-east, 31-37 East, 41-46 Centre-South, 50-54 South-west, 61-65 North-west,
# 71 Taiwan, 81-82 Hong Kong and Macao. National-level publishers write "100000".
_PROVINCE = re.compile(r"1[1-5]|2[1-3]|3[1-7]|4[1-6]|5[0-4]|6[1-5]|71|8[12]")
_NATIONAL = "100000"
_PARTS = (("region", 6), ("department", 3), ("unit", 3), ("serial", 2))


@dataclass(frozen=True, slots=True)
class Gb35965Id:
    """The parts of a GB/T 35965.1 identifier; `str()` gives the identifier back."""

    region: str  # 6 digits, GB/T 2260 division
    department: str  # 3 digits, GB/T 4657
    unit: str  # 3 digits
    serial: str  # 2 digits, the standard's extension code
    entered: datetime  # aware, Beijing time, whole seconds
    sequence: int  # 0-9

    @property
    def sender_code(self) -> str:
        """The 14-digit issuing unit code, ZZZZZZDDDUUUXX."""
        return self.region + self.department + self.unit + self.serial

    def __str__(self) -> str:
        return f"{self.sender_code}_{self.entered.strftime(_TIME)}_{self.sequence}"


def parse_identifier(s: str) -> Gb35965Id:
    """Split a GB/T 35965.1 identifier into its parts.

    Raises IngestError("invalid", field="identifier") naming the part that is wrong.
    """
    parts = s.split("_")
    if len(parts) != 3:
        raise _bad(
            f"{_show(s)} is not a GB/T 35965.1 identifier: expected {_SHAPE} (three parts "
            f"joined by '_'), got {len(parts)} part(s)"
        )
    code, stamp, seq = parts
    if not _digits(code, 14):
        raise _bad(
            f"issuing unit code {_show(code)} must be 14 digits: region 6 + department 3 + "
            "unit 3 + serial 2"
        )
    region = code[:6]
    if problem := _region_problem(region):
        raise _bad(f"region {region!r} {problem}")
    if not _digits(stamp, 14):
        raise _bad(f"time {_show(stamp)} must be 14 digits, YYYYMMDDhhmmss in Beijing time")
    try:
        entered = datetime.strptime(stamp, _TIME).replace(tzinfo=BEIJING)
    except ValueError:
        raise _bad(f"time {stamp!r} is not a real date and time (YYYYMMDDhhmmss)") from None
    if not _digits(seq, 1):
        raise _bad(f"sequence number {_show(seq)} must be one digit, 0-9")
    return Gb35965Id(region, code[6:9], code[9:12], code[12:14], entered, int(seq))


def is_gb35965(s: str) -> bool:
    """Whether `s` is a well-formed GB/T 35965.1 identifier."""
    try:
        parse_identifier(s)
    except IngestError:
        return False
    return True


def new_identifier(
    region6: str, dept: str, unit: str, serial: str, when: datetime, seq: int
) -> str:
    """The identifier of an alert warnbus originates, entered at `when` (any time zone).

    `when` must be timezone-aware: it is written in Beijing time whatever its zone, and
    fractions of a second are dropped. Raises ValueError for a part of the wrong form.
    """
    for (name, width), value in zip(_PARTS, (region6, dept, unit, serial), strict=True):
        if not _digits(value, width):
            raise ValueError(f"{name} must be {width} digits, got {value!r}")
    if problem := _region_problem(region6):
        raise ValueError(f"region {region6!r} {problem}")
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError("when must be timezone-aware: a naive time has no Beijing time")
    if isinstance(seq, bool) or not 0 <= seq <= 9:
        raise ValueError(f"seq must be 0-9 (one digit), got {seq!r}")
    entered = when.astimezone(BEIJING).replace(microsecond=0)
    return str(Gb35965Id(region6, dept, unit, serial, entered, seq))


def _digits(s: str, width: int) -> bool:
    # ASCII only: str.isdigit() would accept full-width and other Unicode digits.
    return len(s) == width and re.fullmatch(r"[0-9]+", s) is not None


def _region_problem(region: str) -> str | None:
    if region == _NATIONAL or _PROVINCE.fullmatch(region[:2]):
        return None
    return f"is not a GB/T 2260 division code: no province {region[:2]!r}"


def _show(s: str) -> str:
    return repr(s if len(s) <= 40 else s[:39] + "…")


def _bad(message: str) -> IngestError:
    return IngestError("invalid", message, FIELD)
