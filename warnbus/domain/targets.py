"""Target ids: `area:<village>`, `dev:<device>` and a person's id, parsed and formatted here.

A campaign's targets are keyed by these strings everywhere (its `targets` and `tstate`
hashes, deliveries, provider reports): a loudspeaker command goes to an area (one per village,
the broker fans out to its speakers), each speaker reports its playout as a device, and a
person's id is the registry's. Registry ids hold no ":" (`registry.validate`), so the
prefixes never clash with a person. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from warnbus.domain.models import TargetKind


class RefKind(StrEnum):
    """What a target id names."""

    AREA = "area"  # the loudspeakers of a village (one command per area)
    DEVICE = "dev"  # one loudspeaker (its playout report)
    PERSON = "person"  # a responsible person (the id carries no prefix)


AREA_PREFIX = RefKind.AREA.value + ":"
DEVICE_PREFIX = RefKind.DEVICE.value + ":"


@dataclass(frozen=True, slots=True)
class TargetRef:
    """A target id as (kind, id): `str(ref)` is the id as stored."""

    kind: RefKind
    id: str

    @classmethod
    def parse(cls, target_id: str) -> TargetRef:
        """Read a stored target id; a prefix without an id is an error."""
        kind = kind_of(target_id)
        ref = cls(kind, target_id if kind is RefKind.PERSON else target_id.split(":", 1)[1])
        if not ref.id:
            raise ValueError(f"target id {target_id!r} names no {kind.value}")
        return ref

    @classmethod
    def area(cls, village: str) -> TargetRef:
        return cls(RefKind.AREA, village)

    @classmethod
    def device(cls, device_id: str) -> TargetRef:
        return cls(RefKind.DEVICE, device_id)

    @classmethod
    def person(cls, person_id: str) -> TargetRef:
        return cls(RefKind.PERSON, person_id)

    @property
    def target_kind(self) -> TargetKind:
        """Areas and devices are loudspeakers: a device target; a person is a person."""
        return TargetKind.PERSON if self.kind is RefKind.PERSON else TargetKind.DEVICE

    def __str__(self) -> str:
        if self.kind is RefKind.PERSON:
            return self.id
        return f"{self.kind.value}:{self.id}"


def kind_of(target_id: str) -> RefKind:
    """What a target id names, by its prefix alone (`TargetRef.parse` also checks the id)."""
    if target_id.startswith(AREA_PREFIX):
        return RefKind.AREA
    if target_id.startswith(DEVICE_PREFIX):
        return RefKind.DEVICE
    return RefKind.PERSON


def area_id(village: str) -> str:
    """The target id of a village's loudspeakers (`str(TargetRef.area(village))`)."""
    return AREA_PREFIX + village


def device_id(device: str) -> str:
    """The target id of one loudspeaker (`str(TargetRef.device(device))`)."""
    return DEVICE_PREFIX + device
