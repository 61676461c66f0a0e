"""Door to door (入户叫应): what a visit found, and who said so. Pure: no I/O.

A console user sends someone (the grid's village head, else the township duty officer) door to
door for a grid; the grid closes on the visit's result, entered by a console user or by the
person sent through a link signed for them and that grid (`warnbus.flow.doors`).
"""

from __future__ import annotations

from enum import StrEnum

import msgspec

#: Most characters of a result's note (what "其他" was, how many people moved ...).
NOTE_MAX = 500


class DoorOutcome(StrEnum):
    """What a door-to-door visit found."""

    TOLD = "told"  # 已当面告知: the people were told in person
    NOBODY_HOME = "nobody_home"  # 无人在家
    MOVED = "moved"  # 已转移: the people had been moved to safety
    OTHER = "other"  # 其他: the note says what


class DoorVia(StrEnum):
    """Who entered a door-to-door result."""

    CONSOLE = "console"  # a console user (drafter or approver)
    LINK = "link"  # the person sent, through the link signed for them and the grid


class DoorResult(msgspec.Struct, frozen=True):
    """The result of a door-to-door visit of one grid."""

    grid: str
    outcome: DoorOutcome
    note: str
    by: str  # the console user, or the name of the person sent (`person`)
    via: DoorVia
    at: float
    person: str = ""  # through a link: the id of the person sent
