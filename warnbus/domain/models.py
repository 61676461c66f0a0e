"""The records of warnbus: alerts, the grid registry, targets, deliveries, attempts, acks.

Pure data, no I/O. Records are frozen msgspec Structs so they are cheap to encode and to
hash; statuses are StrEnums with named sets. Coordinates are (lat, lon) everywhere, as in
CAP; conversion to (x=lon, y=lat) happens only inside the geometry code of `rules`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from enum import StrEnum
from typing import ClassVar

import msgspec

from warnbus.domain.duty import Roster as Roster
from warnbus.domain.roles import CHAIN_ORDER as CHAIN_ORDER
from warnbus.domain.roles import SITE_CHAIN_ORDER as SITE_CHAIN_ORDER
from warnbus.domain.roles import RegionLevel as RegionLevel
from warnbus.domain.roles import Role as Role
from warnbus.domain.sites import Site as Site
from warnbus.domain.sites import SiteKind as SiteKind
from warnbus.domain.sites import SitePerson as SitePerson
from warnbus.domain.sites import SiteRole as SiteRole

# --------------------------------------------------------------------------- CAP


class Status(StrEnum):
    ACTUAL = "Actual"
    EXERCISE = "Exercise"
    SYSTEM = "System"
    TEST = "Test"
    DRAFT = "Draft"


#: Statuses whose messages go only to drill participants and are marked 演练.
DRILL_STATUSES = frozenset({Status.EXERCISE, Status.TEST})


class MsgType(StrEnum):
    ALERT = "Alert"
    UPDATE = "Update"
    CANCEL = "Cancel"
    ACK = "Ack"
    ERROR = "Error"


class Scope(StrEnum):
    PUBLIC = "Public"
    RESTRICTED = "Restricted"
    PRIVATE = "Private"


class Category(StrEnum):
    GEO = "Geo"
    MET = "Met"
    SAFETY = "Safety"
    SECURITY = "Security"
    RESCUE = "Rescue"
    FIRE = "Fire"
    HEALTH = "Health"
    ENV = "Env"
    TRANSPORT = "Transport"
    INFRA = "Infra"
    CBRNE = "CBRNE"
    OTHER = "Other"


class ResponseType(StrEnum):
    SHELTER = "Shelter"
    EVACUATE = "Evacuate"
    PREPARE = "Prepare"
    EXECUTE = "Execute"
    AVOID = "Avoid"
    MONITOR = "Monitor"
    ASSESS = "Assess"
    ALL_CLEAR = "AllClear"
    NONE = "None"


class Urgency(StrEnum):
    IMMEDIATE = "Immediate"
    EXPECTED = "Expected"
    FUTURE = "Future"
    PAST = "Past"
    UNKNOWN = "Unknown"


class Severity(StrEnum):
    EXTREME = "Extreme"
    SEVERE = "Severe"
    MODERATE = "Moderate"
    MINOR = "Minor"
    UNKNOWN = "Unknown"


class Certainty(StrEnum):
    OBSERVED = "Observed"
    LIKELY = "Likely"
    POSSIBLE = "Possible"
    UNLIKELY = "Unlikely"
    UNKNOWN = "Unknown"
    VERY_LIKELY = "Very Likely"  # CAP 1.0 only; kept so 1.0 feeds parse


# The CAP records are untracked by the cyclic collector too (see the note on gc=False
# below): an accepted alert is kept decoded for the planner, and the largest one's 1,000
# areas were walked by every full collection of the engine while it was kept.


class Circle(msgspec.Struct, frozen=True, gc=False):
    """A CAP circle: centre (WGS 84) and radius in kilometres."""

    lat: float
    lon: float
    radius_km: float


class Area(msgspec.Struct, frozen=True, gc=False):
    """A CAP area. Polygons are closed rings of (lat, lon)."""

    desc: str
    polygons: tuple[tuple[tuple[float, float], ...], ...] = ()
    circles: tuple[Circle, ...] = ()
    geocodes: tuple[tuple[str, str], ...] = ()  # (valueName, value)
    altitude: float | None = None
    ceiling: float | None = None


class Resource(msgspec.Struct, frozen=True, gc=False):
    desc: str
    mime_type: str
    size: int | None = None
    uri: str | None = None
    digest: str | None = None


class Info(msgspec.Struct, frozen=True, gc=False):
    """One CAP info block (one language of the warning)."""

    categories: tuple[Category, ...]
    event: str
    urgency: Urgency
    severity: Severity
    certainty: Certainty
    language: str = "en-US"
    response_types: tuple[ResponseType, ...] = ()
    audience: str | None = None
    event_codes: tuple[tuple[str, str], ...] = ()
    effective: datetime | None = None
    onset: datetime | None = None
    expires: datetime | None = None
    sender_name: str | None = None
    headline: str | None = None
    description: str | None = None
    instruction: str | None = None
    web: str | None = None
    contact: str | None = None
    parameters: tuple[tuple[str, str], ...] = ()
    resources: tuple[Resource, ...] = ()
    areas: tuple[Area, ...] = ()

    def parameter(self, name: str) -> str | None:
        """Return the first parameter value named `name` (case-insensitive), if any."""
        low = name.lower()
        for key, value in self.parameters:
            if key.lower() == low:
                return value
        return None


class Reference(msgspec.Struct, frozen=True, gc=False):
    """One entry of CAP `references`: `sender,identifier,sent`."""

    sender: str
    identifier: str
    sent: str

    @property
    def key(self) -> tuple[str, str]:
        return (self.sender, self.identifier)


def alert_id_for(sender: str, identifier: str) -> str:
    """Deterministic alert id from the CAP key (sender, identifier)."""
    digest = hashlib.sha256(f"{sender}\x1f{identifier}".encode()).hexdigest()
    return "al_" + digest[:20]


class Alert(msgspec.Struct, frozen=True, gc=False):
    """One normalized warning. Its key is (sender, identifier)."""

    identifier: str
    sender: str
    sent: datetime
    status: Status
    msg_type: MsgType
    scope: Scope
    source: str | None = None
    restriction: str | None = None
    addresses: str | None = None
    codes: tuple[str, ...] = ()
    note: str | None = None
    references: tuple[Reference, ...] = ()
    incidents: str | None = None
    infos: tuple[Info, ...] = ()
    cap_version: str = "1.2"  # "1.0" | "1.1" | "1.2" | "json"

    @property
    def key(self) -> tuple[str, str]:
        return (self.sender, self.identifier)

    @property
    def alert_id(self) -> str:
        return alert_id_for(self.sender, self.identifier)

    @property
    def is_drill(self) -> bool:
        return self.status in DRILL_STATUSES

    def primary_info(self, prefer: tuple[str, ...] = ("zh-CN", "zh")) -> Info | None:
        """Return the info block to disseminate: the first in a preferred language."""
        for lang in prefer:
            for info in self.infos:
                if info.language.lower().startswith(lang.lower()):
                    return info
        return self.infos[0] if self.infos else None

    def expires_at(self) -> datetime | None:
        """Latest expiry over all infos (None if any info has none)."""
        values = [i.expires for i in self.infos]
        if not values or any(v is None for v in values):
            return None
        return max(v for v in values if v is not None)


# --------------------------------------------------------------------------- levels


class Level(StrEnum):
    """Warning colour (预警级别). Order matters: red is the most urgent."""

    RED = "red"
    ORANGE = "orange"
    YELLOW = "yellow"
    BLUE = "blue"

    @property
    def rank(self) -> int:
        """0 for red .. 3 for blue; also the queue priority (lower is sooner)."""
        return _LEVEL_RANK[self]


_LEVEL_RANK: dict[Level, int] = {Level.RED: 0, Level.ORANGE: 1, Level.YELLOW: 2, Level.BLUE: 3}

LEVEL_NAMES_ZH: Mapping[Level, str] = {
    Level.RED: "红色",
    Level.ORANGE: "橙色",
    Level.YELLOW: "黄色",
    Level.BLUE: "蓝色",
}

# --------------------------------------------------------------------------- registry
# Regions and roles are in `roles.py`, sites in `sites.py`, duty rosters in `duty.py`; this
# module re-exports their records.

# gc=False on records that hold only strings, numbers, enums and tuples of them: they can
# be in no reference cycle, so the cyclic collector need not track them. A province is
# ~250k registry records and a first wave a Delivery per send; tracked, every full
# collection walked them all (tests/engine/test_heap.py, docs/benchmarks.md).


class Region(msgspec.Struct, frozen=True, gc=False):
    """An administrative region with its 12-digit 统计用区划代码."""

    code: str
    name: str
    level: RegionLevel
    parent: str | None = None


class Grid(msgspec.Struct, frozen=True, gc=False):
    """A grid (网格): a polygon inside a village with its responsible officers."""

    id: str
    name: str
    village: str  # 12-digit village code
    polygon: tuple[tuple[float, float], ...]  # closed ring of (lat, lon)
    primary: str  # person id
    backup: str | None = None
    tags: tuple[str, ...] = ()
    note: str | None = None  # 备注, as the office's workbook has it


class Person(msgspec.Struct, frozen=True, gc=False):
    """A responsible person and the contact points warnbus may use."""

    id: str
    name: str
    role: Role
    region: str  # the code of the region the person serves
    phone: str | None = None  # E.164, e.g. +8613800000000
    wecom: str | None = None  # WeCom userid
    drill: bool = False  # takes part in exercises (演练)
    note: str | None = None  # 备注, as the office's workbook has it


class Device(msgspec.Struct, frozen=True, gc=False):
    """A village loudspeaker (村村响) reachable over MQTT."""

    id: str
    name: str
    region: str  # village code; area topic is per region code
    grid: str | None = None
    kind: str = "loudspeaker"


class RegistryData(msgspec.Struct, frozen=True):
    """The whole registry, indexed by id/code. Built and validated by warnbus.registry.

    Sites (`warnbus.domain.sites`) and duty roster versions (`warnbus.domain.duty`) are
    optional: a registry without them calls grids only, with its fixed duty persons."""

    regions: dict[str, Region]
    grids: dict[str, Grid]
    persons: dict[str, Person]
    devices: dict[str, Device]
    sites: dict[str, Site] = {}
    rosters: dict[str, Roster] = {}


# --------------------------------------------------------------------------- dissemination


class TargetKind(StrEnum):
    PERSON = "person"
    DEVICE = "device"


class Target(msgspec.Struct, frozen=True, gc=False):
    """A person or device matched to an alert, with the grids it answers for."""

    id: str
    kind: TargetKind
    region: str
    role: Role | None = None
    grids: tuple[str, ...] = ()


class DeliveryKind(StrEnum):
    WARNING = "warning"  # first wave of an alert
    UPDATE = "update"  # new content for an ongoing campaign
    REDIAL = "redial"  # the same person again, no ack yet
    ESCALATION = "escalation"  # the next person in a grid's chain
    CANCEL = "cancel"  # 解除 notice
    NOTICE = "notice"  # e.g. a speaker did not play: door-to-door notice
    FEEDBACK = "feedback"  # a report after the ack is due soon, or overdue (told up the chain)

    #: Calls for a confirmation: not sent once the campaign is over or the person is stopped
    #: (confirmed, or dropped by an Update).
    CALLS: ClassVar[frozenset[DeliveryKind]]
    #: Not sent once the campaign is over (a Cancel's 解除 notice always goes).
    WHILE_ACTIVE: ClassVar[frozenset[DeliveryKind]]
    #: Ask the person to confirm, unless the planner says otherwise (`Delivery.confirm`): an
    #: Update to someone who confirmed already does not, a 解除 does when the policy wants it.
    CONFIRMING: ClassVar[frozenset[DeliveryKind]]


DeliveryKind.CALLS = frozenset({DeliveryKind.WARNING, DeliveryKind.REDIAL, DeliveryKind.ESCALATION})
DeliveryKind.WHILE_ACTIVE = DeliveryKind.CALLS | {DeliveryKind.UPDATE, DeliveryKind.NOTICE,
                                                  DeliveryKind.FEEDBACK}
DeliveryKind.CONFIRMING = DeliveryKind.CALLS | {DeliveryKind.UPDATE}


class Delivery(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """What to send: one message to one target over one channel at one step.

    The id is deterministic (campaign, message, target, channel, step) so a replay never
    creates a second delivery. Encoded array-like: deliveries are the bulk of Redis traffic.
    """

    id: str
    campaign_id: str
    alert_id: str
    target_id: str
    target_kind: TargetKind
    channel: str
    step: int
    kind: DeliveryKind
    level: Level
    address: str
    text: str
    created_at: float
    drill: bool = False
    ack_url: str | None = None
    region: str | None = None
    expires_at: float | None = None  # the alert's expiry (e.g. retained speaker messages)
    #: Whether the message asks its person to confirm (a key, a button, a reply, a link), as
    #: the planner decided; None (queued by a version before it said): by `kind`.
    confirm: bool | None = None
    # Transient failures are retried until then: the step's deadline (the person's next
    # redial or escalation); None: the alert's validity or `engine.retry_window_s`
    # (`flow.dispatch.retry_horizon`).
    retry_until: float | None = None
    # The channels this message already failed on at this step: a fallback delivery (its id
    # is its own, `planner.plan_fallback`); empty for a delivery the policy planned.
    tried: tuple[str, ...] = ()

    @property
    def priority(self) -> int:
        return self.level.rank

    @property
    def asks_confirmation(self) -> bool:
        """A call gathers the key, a WeCom message is a card with its button: the text asks
        for the confirmation. Never for a device."""
        if self.target_kind is not TargetKind.PERSON:
            return False
        return self.confirm if self.confirm is not None else self.kind in DeliveryKind.CONFIRMING


def delivery_id_for(campaign_id: str, alert_id: str, target_id: str, channel: str,
                    step: int) -> str:
    """Deterministic delivery id."""
    return delivery_ids(campaign_id, alert_id)(target_id, channel, step)


def delivery_ids(campaign_id: str, alert_id: str) -> Callable[[str, str, int], str]:
    """`delivery_id_for` of one message: (target_id, channel, step) -> id.

    The hash of the message's part is computed once and copied per delivery (a planning
    call makes hundreds of thousands of ids). The ids never change across versions: a
    replay after an upgrade must find the deliveries it queued before.
    """
    base = hashlib.blake2b(f"{campaign_id}\x1f{alert_id}\x1f".encode(), digest_size=12)

    def make(target_id: str, channel: str, step: int) -> str:
        h = base.copy()
        h.update(f"{target_id}\x1f{channel}\x1f{step}".encode())
        return "dl_" + h.hexdigest()

    return make


class Outcome(StrEnum):
    ACCEPTED = "accepted"
    DELIVERED = "delivered"
    FAILED_TEMP = "failed-temp"
    FAILED_PERM = "failed-perm"
    # Not sent, or refused by the provider, under a per-number limit of the account: the
    # message went by another path (`flow.reroute`); not the person's failure.
    LIMITED = "limited"


class Receipt(msgspec.Struct, frozen=True, gc=False):
    """What a channel returns when the provider took the message."""

    provider_id: str | None = None
    outcome: Outcome = Outcome.ACCEPTED


class Attempt(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """What happened: one provider call for a delivery."""

    delivery_id: str
    n: int
    channel: str
    at: float
    outcome: Outcome
    provider_id: str | None = None
    error: str | None = None
    retry_after: float | None = None


class AckVia(StrEnum):
    DTMF = "dtmf"
    SMS = "sms"
    WECOM = "wecom"
    LINK = "link"
    CONSOLE = "console"
    DEVICE = "device"


class Ack(msgspec.Struct, frozen=True, gc=False):
    """A person's confirmation (应) for a campaign."""

    campaign_id: str
    person_id: str
    at: float
    via: AckVia
    delivery_id: str | None = None
    by: str | None = None  # console user who recorded it
    reason: str | None = None


# --------------------------------------------------------------------------- personal data
# One way to mask a phone number, for logs, console pages and exports alike; here because
# the engine and the console import this module; channels get it from `warnbus.plugin`.

_PHONE_LIKE = re.compile(r"\+?[\d][\d ()-]{4,}\d")
_CN_MSISDN = re.compile(r"861[3-9]\d{9}")
# Phone numbers inside free text. The lookarounds keep longer digit runs (region codes,
# timestamps, ids) intact.
_PHONE_IN_TEXT = re.compile(
    r"(?<![\w+])\+[1-9](?:[ -]?\d){6,14}(?!\d)"  # E.164
    r"|(?<!\d)(?:86)?1[3-9]\d{9}(?!\d)"  # Chinese mobile
)
# ITU country codes of one and two digits; every other code has three.
_CC1 = frozenset({"1", "7"})
_CC2_TEXT = (
    "20 27 30 31 32 33 34 36 39 40 41 43 44 45 46 47 48 49 51 52 53 54 55 56 57 58 "
    "60 61 62 63 64 65 66 81 82 84 86 90 91 92 93 94 95 98"
)
_CC2 = frozenset(_CC2_TEXT.split())


def mask_phone(value: str) -> str:
    """Mask a phone number, keeping country code, first 3 and last 4 national digits.

    `+8613812345678` → `+86138****5678`, `13812345678` → `138****5678`. Numbers too short
    for that keep only their last 2 digits. Not a phone number at all → `mask_text`.
    """
    digits = re.sub(r"\D", "", value)
    if not _PHONE_LIKE.fullmatch(value.strip()) or len(digits) < 5:
        return mask_text(value)
    prefix = ""
    if value.strip().startswith("+"):
        cc_len = 1 if digits[:1] in _CC1 else 2 if digits[:2] in _CC2 else 3
        prefix, digits = "+" + digits[:cc_len], digits[cc_len:]
    elif _CN_MSISDN.fullmatch(digits):  # 86 and a mobile, as MSISDNs are written
        prefix, digits = "86", digits[2:]
    if len(digits) >= 8:
        return prefix + digits[:3] + "*" * (len(digits) - 7) + digits[-4:]
    return prefix + "*" * (len(digits) - 2) + digits[-2:]


def mask_text(value: str) -> str:
    """Mask an address that is not a phone number (a WeCom user id, an e-mail): keep the ends."""
    if len(value) <= 2:
        return "*" * len(value)
    return value[0] + "*" * (len(value) - 2) + value[-1]


def mask_phones_in(text: str) -> str:
    """Mask every phone number found inside free text."""
    return _PHONE_IN_TEXT.sub(lambda m: mask_phone(m.group(0)), text)
