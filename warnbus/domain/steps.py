"""Delivery steps: `10 × chain level + redial`, and the two steps outside the chain.

Step 0 is the first wave to a grid's primary officer, 1..9 its redials; 10 is the backup
officer, 20 the village head, 30 the township duty officer, 40 the county duty officer (the
chain level is the index in `models.CHAIN_ORDER`). `Step.NOTICE` (90) tells an officer that
a loudspeaker of their grid did not play, `Step.FEEDBACK_REMIND` (91) reminds a person that
their report after the ack is due, `Step.FEEDBACK_OVERDUE` (92) tells the next person that it
is overdue (one per overdue person: its deliveries' ids are salted with that person, see
`PlanContext.id_salt`), `Step.DOOR_TO_DOOR` (95) is the console's order to go door to door.
Update and Cancel notices go at the first wave's step.

The integers never change: a delivery's id hashes its step (`models.delivery_ids`), and a
replay after an upgrade must find the deliveries queued before it. A `Delivery` and a
timer carry the integer (`int(step)`); `Step.of` reads one back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

_PER_LEVEL = 10
#: Chain levels go below this; the steps from `10 × _BEYOND_CHAIN` on are not in the chain.
_BEYOND_CHAIN = 9


@dataclass(frozen=True, slots=True)
class Step:
    """One step of a campaign's deliveries (see the module)."""

    code: int

    NOTICE: ClassVar[Step]
    FEEDBACK_REMIND: ClassVar[Step]
    FEEDBACK_OVERDUE: ClassVar[Step]
    DOOR_TO_DOOR: ClassVar[Step]

    @classmethod
    def of(cls, code: int) -> Step:
        """The step a delivery or timer carries."""
        if not 0 <= code < _PER_LEVEL * _PER_LEVEL:
            raise ValueError(f"no delivery step {code}")
        return cls(code)

    @classmethod
    def first_wave(cls) -> Step:
        return cls(0)

    @classmethod
    def redial(cls, n: int) -> Step:
        """The `n`-th redial (1..9) of a grid's primary officer."""
        if not 1 <= n < _PER_LEVEL:
            raise ValueError(f"redial {n} is not 1..{_PER_LEVEL - 1}")
        return cls(n)

    @classmethod
    def chain(cls, level: int) -> Step:
        """The message to the person at `level` of a grid's chain (0: the first wave)."""
        if not 0 <= level < _BEYOND_CHAIN:
            raise ValueError(f"chain level {level} is not 0..{_BEYOND_CHAIN - 1}")
        return cls(_PER_LEVEL * level)

    @property
    def level(self) -> int:
        """The chain level (0 primary officer, 1 backup, ...) of a chain step."""
        return self.code // _PER_LEVEL

    @property
    def redials(self) -> int:
        """How many redials this step is (0 for the first message to a level)."""
        return self.code % _PER_LEVEL

    @property
    def in_chain(self) -> bool:
        """A step of the 叫应 chain (not NOTICE or DOOR_TO_DOOR)."""
        return self.code < _PER_LEVEL * _BEYOND_CHAIN

    def __int__(self) -> int:
        return self.code

    def __str__(self) -> str:
        return str(self.code)


Step.NOTICE = Step(90)
Step.FEEDBACK_REMIND = Step(91)
Step.FEEDBACK_OVERDUE = Step(92)
Step.DOOR_TO_DOOR = Step(95)
