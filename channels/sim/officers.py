"""Simulated people at the end of a channel: who answers, after how long, who is unreachable.

Decisions are deterministic for a seed, a person (address) and a message, so a demo or test
run can be repeated. Shared by every provider simulator.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass


def _unit(*parts: object) -> float:
    h = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(h, "big") / 2**64


@dataclass(frozen=True)
class Reaction:
    reachable: bool  # the handset is on / the account exists
    answers: bool  # picks up / reads and confirms this message
    delay_s: float  # real seconds before the reaction


@dataclass(frozen=True)
class OfficerModel:
    """`responsive` share of people ever confirm; each confirms a message with `per_message`."""

    seed: int = 0
    responsive: float = 0.8
    per_message: float = 0.6
    unreachable: float = 0.02
    delay_s: tuple[float, float] = (0.3, 3.0)
    #: Share of people who, having confirmed a message, then report what they did (an SMS
    #: keyword after an SMS, keys after the 1 on a mainland call: `keypad`).
    reports: float = 0.0

    def report(self, person: str, message: str) -> str | None:
        """What a person who confirmed then reports by SMS (到岗, 转移 N, 零报告, 险情 …),
        or None; as deterministic as `react`."""
        if _unit(self.seed, "report", person, message) >= self.reports:
            return None
        rnd = random.Random(f"{self.seed}|report|{person}|{message}")
        return rnd.choice(["到岗", "已到岗", "零报告", f"转移 {rnd.randint(3, 60)}",
                           f"已转移{rnd.randint(3, 60)}人", "险情 村口道路积水约30厘米"])

    def keypad(self, person: str, message: str) -> str:
        """The keys a person who confirmed a call by 1 then presses to report, as a call's
        template asks (2 到岗, 3 零报告, 4 and the number 转移 N, ended by #), or "" (no
        report); as deterministic as `report`."""
        if _unit(self.seed, "keypad", person, message) >= self.reports:
            return ""
        rnd = random.Random(f"{self.seed}|keypad|{person}|{message}")
        return rnd.choice(["2#", "3#", f"4{rnd.randint(3, 60)}#"])

    def react(self, person: str, message: str) -> Reaction:
        reachable = _unit(self.seed, "reach", person) >= self.unreachable
        responsive = _unit(self.seed, "resp", person) < self.responsive
        answers = reachable and responsive and _unit(self.seed, "msg", person, message) < (
            self.per_message)
        rnd = random.Random(f"{self.seed}|{person}|{message}")
        return Reaction(reachable, answers, rnd.uniform(*self.delay_s))


#: How an unconfirmed call can end at the mainland simulators (Aliyun, Tencent).
CALL_ENDINGS = ("heard", "hangup", "voicemail", "forwarded", "busy", "no-answer")
#: A scripted ending that confirms, then presses a report's keys: "confirm:435#".
CONFIRM = "confirm"


def scripted_keys(ending: str) -> tuple[str, str]:
    """A scripted ending and the report keys after its 1: "confirm:435#" -> ("confirm",
    "435#"); any other ending has none."""
    name, _, keys = ending.partition(":")
    return (name, keys) if name == CONFIRM else (ending, "")


@dataclass(frozen=True)
class CallHabits:
    """What people who do not confirm a call do with it, as shares of `CALL_ENDINGS`.

    `heard` listens to the end without pressing, `hangup` hangs up early, `voicemail` and
    `forwarded` let a machine or another phone take it; the rest ring out (`no-answer`).
    Deterministic for a seed, a person and a message, like `OfficerModel`."""

    heard: float = 0.3
    hangup: float = 0.15
    voicemail: float = 0.1
    forwarded: float = 0.05
    busy: float = 0.1

    def ending(self, seed: int, person: str, message: str) -> str:
        u = _unit(seed, "ending", person, message)
        for name, share in (("heard", self.heard), ("hangup", self.hangup),
                            ("voicemail", self.voicemail), ("forwarded", self.forwarded),
                            ("busy", self.busy)):
            if u < share:
                return name
            u -= share
        return "no-answer"


#: What an SMS ending does: these leave the message undelivered (the handset is off, the
#: number empty or stopped); "confirm" replies 收到; any other is delivered, unanswered.
SMS_FAILURES = ("off", "empty", "stopped")


@dataclass(frozen=True)
class Script:
    """What one scripted person does with each call, SMS and WeCom card, in turn.

    `calls`: the ending of the 1st, 2nd, ... call to their number (`CALL_ENDINGS`, "confirm"
    to press 1, or a failure such as "off"); `sms`: of each SMS ("confirm" replies 收到, one of
    `SMS_FAILURES` is not delivered, anything else is delivered and left unanswered); `cards`:
    of each WeCom card ("click" taps its button). The last of each repeats; an empty tuple
    leaves that channel to the `OfficerModel`. A plain string in a simulator's `scripted` is
    the same ending for every call and SMS."""

    calls: tuple[str, ...] = ()
    sms: tuple[str, ...] = ()
    cards: tuple[str, ...] = ()

    @staticmethod
    def of(value: str | Script) -> Script:
        return value if isinstance(value, Script) else Script((value,), (value,))

    def turn(self, what: str, n: int) -> str | None:
        """The ending of the `n`th (0-based) `what` ("calls", "sms", "cards"), or None."""
        endings = {"calls": self.calls, "sms": self.sms, "cards": self.cards}[what]
        return endings[min(n, len(endings) - 1)] if endings else None


class Turns:
    """Which call, SMS or card to a scripted address this is (the simulators' counter)."""

    def __init__(self, scripted: dict[str, str | Script]) -> None:
        self.scripted = scripted
        self._seen: dict[tuple[str, str], int] = {}

    def next(self, what: str, address: str) -> str | None:
        """The scripted ending of this `what` to `address` (None: not scripted)."""
        value = self.scripted.get(address)
        if value is None:
            return None
        n = self._seen.get((what, address), 0)
        self._seen[(what, address)] = n + 1
        return Script.of(value).turn(what, n)
