"""Helpers of the rules tests: alerts built by hand (the CAP parser is tested elsewhere)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from warnbus.domain.models import (
    Alert,
    Area,
    Category,
    Certainty,
    Circle,
    Info,
    MsgType,
    Scope,
    Severity,
    Status,
    Urgency,
)

# The geometry of /work/shared/data/cap/cn: geohazard-orange.xml and flood-orange.xml.
GEOHAZARD_POLYGON = ((29.40, 112.70), (29.40, 112.85), (29.55, 112.85), (29.55, 112.70),
                     (29.40, 112.70))
FLOOD_CIRCLE = Circle(29.52, 112.60, 20.0)
# rainstorm-red-alert.xml: the county as context plus three townships.
RAINSTORM_GEOCODES = (("GB/T 2260", "430623"), ("TOWNSHIP", "430623103000"),
                      ("TOWNSHIP", "430623104000"), ("TOWNSHIP", "430623105000"))


def info(areas: Sequence[Area] = (), *, event: str = "暴雨",
         severity: Severity = Severity.EXTREME, parameters: Sequence[tuple[str, str]] = (),
         event_codes: Sequence[tuple[str, str]] = (), language: str = "zh-CN") -> Info:
    return Info(categories=(Category.MET,), event=event, urgency=Urgency.IMMEDIATE,
                severity=severity, certainty=Certainty.LIKELY, language=language,
                parameters=tuple(parameters), event_codes=tuple(event_codes), areas=tuple(areas))


def alert(*infos: Info, status: Status = Status.ACTUAL) -> Alert:
    return Alert(identifier="t-1", sender="test@example.cn",
                 sent=datetime(2026, 7, 15, tzinfo=UTC), status=status,
                 msg_type=MsgType.ALERT, scope=Scope.PUBLIC, infos=infos)


def area(*, polygons: Sequence[tuple[tuple[float, float], ...]] = (),
         circles: Sequence[Circle] = (), geocodes: Sequence[tuple[str, str]] = ()) -> Area:
    return Area(desc="test", polygons=tuple(polygons), circles=tuple(circles),
                geocodes=tuple(geocodes))
