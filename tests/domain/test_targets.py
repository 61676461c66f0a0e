"""TargetRef: the `area:` / `dev:` / person target ids, parsed and formatted in one place."""

from __future__ import annotations

import pytest

from warnbus.domain.models import TargetKind
from warnbus.domain.targets import RefKind, TargetRef, area_id, device_id, kind_of


@pytest.mark.parametrize(("text", "kind", "ident", "target_kind"), [
    ("area:430623101001", RefKind.AREA, "430623101001", TargetKind.DEVICE),
    ("dev:spk-7", RefKind.DEVICE, "spk-7", TargetKind.DEVICE),
    ("dev:430623101001.3", RefKind.DEVICE, "430623101001.3", TargetKind.DEVICE),
    ("p4306231010010001", RefKind.PERSON, "p4306231010010001", TargetKind.PERSON),
    ("人员-1", RefKind.PERSON, "人员-1", TargetKind.PERSON),
])
def test_round_trip(text: str, kind: RefKind, ident: str, target_kind: TargetKind) -> None:
    ref = TargetRef.parse(text)
    assert (ref.kind, ref.id, ref.target_kind) == (kind, ident, target_kind)
    assert str(ref) == text and kind_of(text) is kind
    assert TargetRef(kind, ident) == ref


def test_constructors_write_what_the_engine_stored_before() -> None:
    assert str(TargetRef.area("430623101001")) == area_id("430623101001") == "area:430623101001"
    assert str(TargetRef.device("d1")) == device_id("d1") == "dev:d1"
    assert str(TargetRef.person("p1")) == "p1"


@pytest.mark.parametrize("text", ["area:", "dev:", ""])
def test_a_prefix_without_an_id_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        TargetRef.parse(text)
