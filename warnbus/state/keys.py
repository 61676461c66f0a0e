"""Every Redis key warnbus uses, in one place.

Keys of one campaign share the hash tag `{c:<campaign_id>}`, so every multi-key operation on a
campaign (the Lua scripts of claims, attempts, acks and escalation) stays in one Redis Cluster
slot. Timer keys share the tag `{t}`. The priority lanes of one channel share the tag
`{q:<channel>}` (they are read together in one XREADGROUP). The inbox and indexes are
single-key structures. tests/engine/test_cluster_slots.py checks every command the engine
sends against these rules.
"""

from __future__ import annotations

PREFIX = "wb"


class CampaignKeys:
    """The keys of one campaign."""

    __slots__ = (
        "accepted",
        "acks",
        "alerts",
        "audit",
        "dinfo",
        "dstate",
        "fbhist",
        "fbseen",
        "feedback",
        "first",
        "grids",
        "holds",
        "late",
        "meta",
        "reach",
        "sources",
        "stopped",
        "targets",
        "tstate",
    )

    def __init__(self, campaign_id: str) -> None:
        base = f"{PREFIX}:{{c:{campaign_id}}}"
        self.meta = f"{base}:meta"  # hash: state, level, root alert, times, counters
        self.alerts = f"{base}:alerts"  # hash: alert_id -> JSON form of the alert
        self.targets = f"{base}:targets"  # hash: target_id -> msgpack Target
        self.grids = f"{base}:grids"  # hash: grid_id -> "state|level|holder"
        self.holds = f"{base}:holds"  # hash: person_id -> "grid:level,grid:level"
        self.tstate = f"{base}:tstate"  # hash: target_id -> sent|delivered|acked|failed
        # hash: delivery_id -> "state|attempts|lease_until[|holder]"
        self.dstate = f"{base}:dstate"
        self.acks = f"{base}:acks"  # hash: person_id -> msgpack Ack
        self.stopped = f"{base}:stopped"  # set: target ids no longer to be called
        self.audit = f"{base}:audit"  # stream: every attempt, callback, ack, step
        self.first = f"{base}:first"  # hash: target_id -> time of its first wave
        # hash: delivery_id -> target|channel|step|kind|alert|level|tkind
        self.dinfo = f"{base}:dinfo"
        # set: what the thread's messages reached, `v:<village>` and `c:<CAP category>`
        # (intake.accept; an Update or Cancel is checked against the credential's scope by it)
        self.reach = f"{base}:reach"
        self.accepted = f"{base}:accepted"  # hash: "target|channel" -> first provider accept
        self.late = f"{base}:late"  # hash: person_id -> first confirmation after the end
        # hash: alert_id -> the credential it came in under (a feed's, a token's, "console")
        self.sources = f"{base}:sources"
        # Feedback after the ack (feedbackbook.py): each person's latest counts (JSON
        # FeedbackState), and every report in order (append-only).
        self.feedback = f"{base}:feedback"  # hash: person_id -> JSON FeedbackState
        self.fbhist = f"{base}:fbhist"  # stream: every report: tg, k, n, x, p, via, by, at
        # hash: "person|event" -> the fbhist entry of the report that event kept (a resent
        # or replayed report is kept once; at most MOST_REPORTS per person)
        self.fbseen = f"{base}:fbseen"

    def all(self) -> tuple[str, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)


def campaign(campaign_id: str) -> CampaignKeys:
    return CampaignKeys(campaign_id)


def alert_index(alert_id: str) -> str:
    """String: alert_id -> campaign_id (the alert was accepted)."""
    return f"{PREFIX}:alert:{alert_id}"


#: A member of a campaign's `stopped` set that is no target (no id has a "|": the registry
#: refuses one): a duty officer stopped its calling (停止叫应), so nobody an Update adds is
#: called either (init_grids.lua).
STOPPED_ALL = "|everyone"
CAMPAIGNS = f"{PREFIX}:campaigns"  # zset: campaign_id by creation time
# zset: alert_id of every accepted message (Alert, Update, Cancel) by acceptance time, written
# by intake.accept; the outbound CAP feed lists messages newest first from it.
MESSAGES = f"{PREFIX}:messages"
INBOX = f"{PREFIX}:inbox"  # stream: accepted alerts waiting to be planned
DEAD = f"{PREFIX}:dead"  # stream: dead-lettered deliveries (visible, never silent)
TIMERS = f"{PREFIX}:{{t}}:timers"  # zset: timer member by absolute due time
TIMERS_DUE = f"{PREFIX}:{{t}}:due"  # stream: timers promoted when due
#: zset: each engine process's last heartbeat (ms of Redis's time; 0: stopped cleanly)
HEARTBEATS = f"{PREFIX}:heartbeats"
ACTIVE = f"{PREFIX}:active"  # zset: campaigns being carried out, by start time
ENDED = f"{PREFIX}:ended"  # zset: campaigns that ended (cancelled, expired), by end time

GROUP = "warnbus"  # consumer group name on every stream


def family_of(name: str) -> str:
    """Group a key name by its role, for memory accounting: `campaign:audit`, `lanes` ..."""
    if name.startswith(f"{PREFIX}:{{c:"):
        return "campaign:" + name.rsplit(":", 1)[1]
    for prefix, family in _FAMILIES:
        if name.startswith(prefix):
            return family
    return "other"


def lane(channel: str, priority: int) -> str:
    """Stream of deliveries for one channel at one priority (0 = red, sooner).

    The lanes of one channel share the hash tag `{q:<channel>}`: a worker reads all of them
    in one XREADGROUP (most urgent first), which a Redis Cluster allows only within one slot.
    """
    return f"{PREFIX}:q:{{q:{channel}}}:{priority}"


def rate_bucket(channel: str) -> str:
    """Token bucket of one channel (one provider account or sender number)."""
    return f"{PREFIX}:rl:{channel}"


def number_limit(account: str, number: str) -> str:
    """ZSET: the sends to one number through one provider account, by time (NumberLimitBook)."""
    return f"{PREFIX}:nl:{account}:{number}"


def reply(channel: str, reply_id: str) -> str:
    """String (with TTL): an inbound reply already handled, by its provider message id."""
    return f"{PREFIX}:reply:{channel}:{reply_id}"


class FeedKeys:
    """The keys of one polled feed, tagged `{f:<name>}` (feed names are [A-Za-z0-9_.-])."""

    __slots__ = ("lease", "seen", "state")

    def __init__(self, name: str) -> None:
        base = f"{PREFIX}:feed:{{f:{name}}}"
        self.lease = f"{base}:lease"  # string: token of the process polling it (SET NX PX)
        self.state = f"{base}:state"  # hash: validators (etag, last_modified), health, counts
        self.seen = f"{base}:seen"  # zset: entry key digest by last time seen in the feed


def feed(name: str) -> FeedKeys:
    return FeedKeys(name)


# --------------------------------------------------------------------------- console
# Users, sessions and drafts are single-key structures; what the console adds to a campaign
# (who drafted and approved each message, door-to-door orders) shares the campaign's tag.

CONSOLE_USERS = f"{PREFIX}:console:users"  # hash: username -> JSON user (scrypt hash)
CONSOLE_DRAFTS = f"{PREFIX}:console:drafts"  # zset: draft id by creation time
CONSOLE_SETTINGS = f"{PREFIX}:console:settings"  # hash: approval levels, unit prices, sender
# Hash: username -> session generation; a user's sessions carry the generation they began in,
# so one HINCRBY (password reset, disable, sign-out) ends all of them.
CONSOLE_SESSION_GEN = f"{PREFIX}:console:session_gen"
# Hash (with TTL, bounded): failed sign-ins per client address `a:<addr>`, account and
# address `p:<user>|<addr>`, account `u:<user>` -> "count|last_ms" (web/console/throttle.py).
CONSOLE_LOGIN_FAILS = f"{PREFIX}:console:login_fails"
# Zset: "<user>|<digest of a browser's device id>" by its last sign-in (ms): browsers an
# account signed in from, judged apart from their address when they sign in again.
CONSOLE_DEVICES = f"{PREFIX}:console:devices"
CONSOLE_AUDIT = f"{PREFIX}:console:audit"  # stream (capped): admins' changes to users, unlocks


def console_session(digest: str) -> str:
    """String (JSON, with TTL): a session, keyed by the sha256 of its cookie value."""
    return f"{PREFIX}:console:session:{digest}"


def console_draft(draft_id: str) -> str:
    """Hash: a draft alert, its state and who drafted / approved it."""
    return f"{PREFIX}:console:draft:{draft_id}"


def console_seq(unit_second: str) -> str:
    """Counter (with TTL): console alerts of one unit code and second (N of the identifier)."""
    return f"{PREFIX}:console:seq:{unit_second}"


def console_campaign(campaign_id: str) -> str:
    """Hash: alert_id -> provenance JSON; `d2d:<grid>` -> door-to-door order JSON,
    `d2r:<grid>` -> its latest result; `calls-stopped` -> the stop of its calling."""
    return f"{PREFIX}:{{c:{campaign_id}}}:console"


def console_notified(item: str) -> str:
    """String (with TTL): a message or draft the duty group was told of (web/console/notify)."""
    return f"{PREFIX}:console:notified:{item}"


# --------------------------------------------------------------------------- duty
# The console's overrides and swaps of duty shifts and approvals of roster versions
# (warnbus/state/duty.py), tagged `{duty}`: one MULTI writes a change, its audit entry and the
# generation every process compares before it reuses what it read.

DUTY_CHANGES = f"{PREFIX}:{{duty}}:changes"  # hash: "region|role|day" -> JSON DutyChange
DUTY_APPROVALS = f"{PREFIX}:{{duty}}:approvals"  # hash: roster id -> JSON Approval
DUTY_AUDIT = f"{PREFIX}:{{duty}}:audit"  # stream (capped): every change and approval
DUTY_GEN = f"{PREFIX}:{{duty}}:gen"  # counter: bumped by every change and approval


# --------------------------------------------------------------------------- devices
# What the loudspeaker channel hears about devices, kept for every process (the console runs
# in the api process, the channel in the workers). One hash for the county, not per campaign.

DEVICES_STATUS = f"{PREFIX}:devices:status"  # hash: device_id -> JSON state|since|seen|area


# --------------------------------------------------------------------------- registry
# The registry every process serves once a change has been applied (console, CLI); before
# that, the configured files are version 0. One hash tag: a change is one script in one slot.

REGISTRY_CURRENT = f"{PREFIX}:{{reg}}:current"  # hash: version, sha, base, at, by, source, year
REGISTRY_DATA = f"{PREFIX}:{{reg}}:data"  # string: the current version's records (zlib msgpack)
REGISTRY_HISTORY = f"{PREFIX}:{{reg}}:history"  # stream: every change: who, when, what (diff)
# String: sha of the configured files the engine serves as version 0 (what a first change is
# made on top of, also when it comes from a CLI on another machine).
REGISTRY_FILES = f"{PREFIX}:{{reg}}:files"


def registry_staged(stage_id: str) -> str:
    """Hash (with TTL): an import previewed and not yet applied (candidate, diff, base version)."""
    return f"{PREFIX}:{{reg}}:staged:{stage_id}"


_FAMILIES = (
    (ACTIVE, "active"),
    (f"{PREFIX}:q:", "lanes"),
    (TIMERS, "timers"),
    (TIMERS_DUE, "timers_due"),
    (INBOX, "inbox"),
    (f"{PREFIX}:alert:", "alert_index"),
    (f"{PREFIX}:nl:", "number_limits"),
)
