"""A campaign's `meta` hash as a typed record, and how its fields are written and read.

Redis keeps the hash as strings (the Lua scripts count into it); `warnbus.state.store` reads
it into a `CampaignMeta` with `decode_meta` and writes the typed values of `MessageMeta` with
`encode_fields`. A started campaign always has a level: a missing or unknown one is an error
(`CampaignStateError`), never a default. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from warnbus.domain.models import Level
from warnbus.domain.states import CampaignState, GridState, TargetState
from warnbus.errors import CampaignStateError

#: Field prefixes of the counters the scripts keep: targets per TargetState, grids per GridState.
TARGET_COUNT = "t_"
GRID_COUNT = "g_"


class CampaignMeta(msgspec.Struct, frozen=True, kw_only=True):
    """What a campaign's `meta` hash says (`campaign_id` is its key's, not a field)."""

    campaign_id: str
    state: CampaignState = CampaignState.PLANNING
    level: Level | None = None  # None only while planning
    root: str = ""  # the Alert that started the thread
    latest: str = ""  # the newest message planned (the Alert, or an Update)
    sender: str = ""  # the CAP sender that owns the thread (kept at acceptance)
    created_at: float | None = None
    t0: float | None = None  # when the first wave started
    ended_at: float | None = None
    expires_at: float | None = None  # None: the alert does not expire
    drill: bool = False  # an exercise (演练): only drill participants
    event: str = ""
    villages: tuple[str, ...] = ()  # the villages the latest message reaches
    headline: str = ""
    area: str = ""  # the area as people read it (`planner.area_text`)
    targets: int = 0  # what the campaign sends to: persons, plus areas for loudspeakers
    cancelled_by: str = ""  # the Cancel that lifted it
    attempts: int = 0  # provider calls recorded
    duplicates: int = 0  # possible duplicate sends (a lease ran out mid-send)
    uncontacted: int = 0  # grids moved on past a person no message had reached
    target_counts: dict[TargetState, int] = {}
    grid_counts: dict[GridState, int] = {}

    @property
    def latest_alert_id(self) -> str:
        """The message whose content the campaign carries now."""
        return self.latest or self.root

    def over(self, now: float) -> bool:
        """Nothing more is sent and a confirmation is late: ended, or past its expiry while
        the expiry timer has not yet said so (the ack and claim scripts judge the same)."""
        if self.state is not CampaignState.ACTIVE:
            return True
        return self.expires_at is not None and now >= self.expires_at

    def ended_as(self, now: float) -> CampaignState | None:
        """How the campaign is over: lifted, or expired (also when past its expiry before
        the expiry timer has said so, as `over` judges); None while it runs or before its
        first wave is planned."""
        if self.state in CampaignState.ENDED:
            return self.state
        if self.state is CampaignState.ACTIVE and self.over(now):
            return CampaignState.EXPIRED
        return None

    def require_level(self) -> Level:
        """The campaign's level; planning has none yet, which is an error for whoever asks."""
        if self.level is None:
            raise CampaignStateError(f"campaign {self.campaign_id} has no level: not started")
        return self.level

    def target_count(self, state: TargetState) -> int:
        return self.target_counts.get(state, 0)

    def grid_count(self, state: GridState) -> int:
        return self.grid_counts.get(state, 0)


class MessageMeta(msgspec.Struct, frozen=True, kw_only=True):
    """What the meta keeps of the message a campaign carries now (its Alert or an Update)."""

    latest: str
    level: Level
    headline: str
    area: str
    expires_at: float | None
    villages: tuple[str, ...]
    targets: int


#: The fields of the hash (the Lua scripts name them through `warnbus.state.scripts`).
META_FIELDS: tuple[str, ...] = tuple(
    f for f in CampaignMeta.__struct_fields__
    if f not in ("campaign_id", "target_counts", "grid_counts"))
_OPTIONAL = frozenset(f.name for f in msgspec.structs.fields(CampaignMeta)
                      if f.default is None or f.default == "")
_SEP = ","  # villages are joined by it (12-digit codes hold none)


def encode_fields(fields: Mapping[str, object]) -> dict[str, str | int | float]:
    """Redis values of typed meta fields: enums by value, booleans 1/0, None "", lists joined."""
    out: dict[str, str | int | float] = {}
    for name, value in fields.items():
        if name not in META_FIELDS:
            raise KeyError(f"{name} is no field of a campaign's meta")
        if value is None:
            out[name] = ""
        elif isinstance(value, bool):
            out[name] = int(value)
        elif isinstance(value, tuple):
            out[name] = _SEP.join(value)
        elif isinstance(value, str | int | float):
            out[name] = str(value) if isinstance(value, str) else value
        else:
            raise TypeError(f"meta field {name}: {type(value).__name__} is not stored")
    return out


def message_fields(msg: MessageMeta) -> dict[str, str | int | float]:
    return encode_fields(msgspec.structs.asdict(msg))


def decode_meta(campaign_id: str, raw: Mapping[str, str]) -> CampaignMeta:
    """Read a campaign's meta hash. Fields this version does not know are left alone (a newer
    version may add some); a known one that does not read, an unknown state of a counter, or
    a started campaign without its level raise CampaignStateError."""
    fields: dict[str, Any] = {"campaign_id": campaign_id}
    targets: dict[str, str] = {}
    grids: dict[str, str] = {}
    for name, value in raw.items():
        if name.startswith(TARGET_COUNT):
            targets[name[len(TARGET_COUNT):]] = value
        elif name.startswith(GRID_COUNT):
            grids[name[len(GRID_COUNT):]] = value
        elif name in META_FIELDS and not (value == "" and name in _OPTIONAL):
            fields[name] = value
    if "villages" in fields:
        fields["villages"] = tuple(filter(None, fields["villages"].split(_SEP)))
    fields["target_counts"] = targets
    fields["grid_counts"] = grids
    try:
        # Not strict: numbers and booleans are read from the strings Redis keeps.
        meta = msgspec.convert(fields, CampaignMeta, strict=False)
    except msgspec.ValidationError as e:
        raise CampaignStateError(f"campaign {campaign_id}: its meta does not read: {e}") from e
    if meta.level is None and meta.state is not CampaignState.PLANNING:
        raise CampaignStateError(f"campaign {campaign_id} is {meta.state.value} without a level")
    return meta
