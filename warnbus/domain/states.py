"""The states of campaign records and loudspeakers, each in one StrEnum with its named sets.

Redis keeps these as plain strings and the Lua scripts of `warnbus.state` write and compare
them: the scripts get them as constants generated from these enums (`warnbus.state.scripts`),
never as hand copies, and tests/engine/test_lua_states.py checks both sides. Pure: no I/O.

A named set is a class attribute (`GridState.CLOSED`), defined once below its enum, and
says what the code asks of a state: which ones a claim may send from, which ones are closed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar


class DeliveryState(StrEnum):
    """Where one delivery stands (`dstate`: "state|attempts|lease_until[|holder]")."""

    QUEUED = "queued"  # on its lane, never claimed (no dstate entry yet)
    SENDING = "sending"  # claimed by a worker under a lease; the provider call may be running
    RETRY = "retry"  # a transient failure: back on its lane when its retry timer fires
    SENT = "sent"  # accepted by the provider; its report may still come
    DELIVERED = "delivered"  # the provider (or a confirmation through it) says it arrived
    FAILED = "failed"  # failed for good; the policy's fallback channel takes over
    DEAD = "dead"  # transient failures exhausted: dead-lettered, then the fallback channel
    CANCELLED = "cancelled"  # not sent: the campaign was over, or the person needed no more calls
    #: Not sent: a per-number limit of its provider account would refuse it (or the provider
    #: did); its message went by the next path (`flow.reroute`). Not the person's failure.
    REROUTED = "rerouted"

    #: A claim sends from these (anything else is done, or in flight under a lease).
    CLAIMABLE: ClassVar[frozenset[DeliveryState]]
    #: What a send's record may write: the outcome of one attempt.
    RECORDED: ClassVar[frozenset[DeliveryState]]
    #: The provider took it: the target was reached (a target state follows, `TARGET_OF`).
    REACHED: ClassVar[frozenset[DeliveryState]]
    #: No more tries on this channel: the policy's fallback channel takes over.
    GAVE_UP: ClassVar[frozenset[DeliveryState]]
    #: Handed (or being handed) to the provider, outcome unknown: a report settles it.
    AWAITING_REPORT: ClassVar[frozenset[DeliveryState]]
    #: Settled by an outcome: a later failure report changes nothing.
    SETTLED: ClassVar[frozenset[DeliveryState]]


_D = DeliveryState
_D.CLAIMABLE = frozenset({_D.QUEUED, _D.RETRY})
_D.RECORDED = frozenset({_D.SENT, _D.DELIVERED, _D.RETRY, _D.FAILED, _D.DEAD, _D.REROUTED})
_D.REACHED = frozenset({_D.SENT, _D.DELIVERED})
_D.GAVE_UP = frozenset({_D.FAILED, _D.DEAD})
_D.AWAITING_REPORT = frozenset({_D.SENDING, _D.SENT})
_D.SETTLED = frozenset({_D.DELIVERED, _D.FAILED, _D.DEAD, _D.REROUTED})


class DeliveryReport(StrEnum):
    """What a provider's report (status callback, playout report) does to a delivery."""

    DELIVERED = "delivered"  # it arrived (a speaker's report: that speaker played)
    FAILED = "failed"  # undeliverable after the provider accepted it: the fallback channel
    DEVICE_FAILED = "device-failed"  # one speaker of an area did not play: audited only
    # What became of a call or message that neither settles nor fails it (audited only, for
    # the record: the deadline drives the redial): the call rang out or was busy (the
    # provider's words in the detail), was answered without the key, or the message was read.
    NO_ANSWER = "no-answer"
    ANSWERED = "answered"
    READ = "read"


class TargetState(StrEnum):
    """How far a campaign got with one target (`tstate`); only ever moves forward."""

    FAILED = "failed"  # every delivery so far failed, none reached the target
    SENT = "sent"  # a provider accepted a message for the target
    DELIVERED = "delivered"  # a message arrived (a speaker: it played)
    ACKED = "acked"  # the person confirmed (应)

    #: The forward order: a target moves only to a later state of it; `FAILED` is before all.
    FORWARD: ClassVar[tuple[TargetState, ...]]
    #: A message got to the target: they get the 解除 notice of a Cancel.
    REACHED: ClassVar[frozenset[TargetState]]


TargetState.FORWARD = (TargetState.SENT, TargetState.DELIVERED, TargetState.ACKED)
TargetState.REACHED = frozenset(TargetState.FORWARD)

#: The target state a delivery's record moves its target to.
TARGET_OF: Mapping[DeliveryState, TargetState] = {
    DeliveryState.SENT: TargetState.SENT,
    DeliveryState.DELIVERED: TargetState.DELIVERED,
}


class GridState(StrEnum):
    """Where a grid stands in its 叫应 (`grids`: "state|level|holder")."""

    CALLING = "calling"  # its primary officer is being called or redialled
    ESCALATED = "escalated"  # moved up the chain, nobody has confirmed yet
    CONFIRMED = "confirmed"  # its primary or backup officer confirmed
    TAKEN_OVER = "taken_over"  # a higher level confirmed and goes door to door
    UNREACHED = "unreached"  # chain exhausted: on the 未叫醒 list (a late confirmation reopens it)
    DROPPED = "dropped"  # no longer in the area after an Update
    CANCELLED = "cancelled"  # the warning was lifted (解除) while it was open
    STOPPED = "stopped"  # a duty officer stopped the campaign's calling (停止叫应) while open
    VISITED = "visited"  # closed by the result of a door-to-door visit (入户叫应)

    #: Nobody is called for it any more.
    CLOSED: ClassVar[frozenset[GridState]]
    #: Still being called: counted as pending.
    OPEN: ClassVar[frozenset[GridState]]
    #: A confirmation of its officer (or of a higher level) closes it as confirmed (taken
    #: over): still open, or closed without anybody answering (未叫醒, calling stopped).
    CONFIRMABLE: ClassVar[frozenset[GridState]]
    #: A door-to-door result closes it as VISITED: still open, closed without anybody
    #: answering, or taken over by a higher level that was to go door to door. A grid its own
    #: officer confirmed, dropped by an Update or lifted keeps its state (the result is kept).
    VISITABLE: ClassVar[frozenset[GridState]]


GridState.CLOSED = frozenset({GridState.CONFIRMED, GridState.TAKEN_OVER, GridState.UNREACHED,
                              GridState.DROPPED, GridState.CANCELLED, GridState.STOPPED,
                              GridState.VISITED})
GridState.OPEN = frozenset(GridState) - GridState.CLOSED
GridState.CONFIRMABLE = GridState.OPEN | {GridState.UNREACHED, GridState.STOPPED}
GridState.VISITABLE = GridState.OPEN | {GridState.UNREACHED, GridState.STOPPED,
                                        GridState.TAKEN_OVER}


@dataclass(frozen=True)
class GridView:
    """Where one grid's 叫应 stands in a campaign: its state, the chain level it is at and the
    person called for it now (stored as "state|level|holder|since", `state.boardreads`)."""

    grid_id: str
    state: GridState
    level: int  # chain level the grid is at (0 primary, 1 backup, ...)
    holder: str  # the person being called for it now
    since: float | None = None  # when it got to this state (None: written by an older version)


class CampaignState(StrEnum):
    """Where a campaign stands (`meta.state`)."""

    PLANNING = "planning"  # accepted, its first wave not yet planned (no state stored yet)
    ACTIVE = "active"  # being carried out: messages, redials, escalation
    CANCELLED = "cancelled"  # lifted (解除) by a Cancel
    EXPIRED = "expired"  # past the alert's expiry

    #: Over: nothing more is sent, a confirmation is late.
    ENDED: ClassVar[frozenset[CampaignState]]


CampaignState.ENDED = frozenset({CampaignState.CANCELLED, CampaignState.EXPIRED})


class DeviceState(StrEnum):
    """Whether a loudspeaker is online: its retained `dev/{id}/status` (offline is its LWT),
    as the channel hears it and `warnbus.state.devices` keeps it for every process."""

    ONLINE = "online"
    OFFLINE = "offline"


class AuditEvent(StrEnum):
    """The kinds of entry in a campaign's audit stream (`ev`)."""

    ATTEMPT = "attempt"  # one provider call and its outcome
    STATUS = "status"  # a provider's report on a delivery
    ACK = "ack"  # a confirmation
    LATE = "late"  # the first confirmation of a person after the campaign ended
    GRIDS = "grids"  # grids closed by an Update (dropped) or a Cancel
    ESCALATE = "escalate"  # a grid moved to the next person of its chain, or to 未叫醒
    REPAIR = "repair"  # the sweeper found a grid open with nothing to move it, and closed it
    #: A fallback not sent: the step's own delivery on that channel had reached the person,
    #: or was under way (claim.lua).
    FALLBACK = "fallback"
    #: A delivery's retries ran out at its deadline while its provider was refused (circuit
    #: open): no attempt was made; the fallback channel takes over.
    GAVE_UP = "gave_up"
    STOP = "stop"  # a duty officer stopped the campaign's calling (停止叫应), with the reason
    DOOR_ORDER = "door-order"  # a console user sent someone door to door for a grid
    DOOR = "door"  # the result of a door-to-door visit of a grid
    FEEDBACK = "feedback"  # a report after the ack (到岗, 转移 N 人, 险情, 零报告)
    FEEDBACK_OVERDUE = "feedback-overdue"  # no report by the deadline: the next person told
