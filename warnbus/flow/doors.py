"""Door to door (入户叫应): the signed links of the people sent, and recording what they found.

A console user orders a visit (`web/console/actions.order_door_to_door`); the person sent gets
a link signed for them, the campaign and the grid (`DoorLinks`), where they enter the result.
A console user may enter it too. The grid closes on the result (GridState.VISITED), not on
the order being acknowledged; every result is kept and audited (`Store.console.record_door`).
"""

from __future__ import annotations

import structlog

from warnbus.domain.doors import NOTE_MAX, DoorOutcome, DoorResult, DoorVia
from warnbus.errors import IngestError, NotFoundError
from warnbus.flow.acks import SignedLinks, seal, unseal
from warnbus.runtime.context import Context

log = structlog.get_logger("warnbus.flow.doors")


class DoorLinks(SignedLinks):
    """HMAC-signed, expiring links for one person sent door to door for one grid, under a key
    of their own (`AckLinks.derive("door")`): an ack link is never a door link."""

    WHAT = "door link"

    def token(self, campaign_id: str, grid_id: str, person_id: str, now: float) -> str:
        return seal(self._keyed, f"{campaign_id}|{grid_id}|{person_id}|{int(now + self.ttl_s)}")

    def url(self, campaign_id: str, grid_id: str, person_id: str, now: float) -> str:
        return f"{self.base_url}/door/{self.token(campaign_id, grid_id, person_id, now)}"

    def verify(self, token: str, now: float) -> tuple[str, str, str]:
        """(campaign_id, grid_id, person_id) of a valid token; AuthError otherwise."""
        campaign_id, grid_id, person_id = unseal(self._key, token, 3, self.WHAT, now)
        return campaign_id, grid_id, person_id


def result_of(outcome: str, note: str) -> tuple[DoorOutcome, str]:
    """A result as entered (a form's values), checked: IngestError naming the field."""
    try:
        kind = DoorOutcome(outcome)
    except ValueError:
        raise IngestError("invalid", f"outcome: {outcome!r} is not one of "
                          f"{', '.join(o.value for o in DoorOutcome)}", "outcome") from None
    note = note.strip()
    if len(note) > NOTE_MAX:
        raise IngestError("invalid", f"note: at most {NOTE_MAX} characters", "note")
    if kind is DoorOutcome.OTHER and not note:
        raise IngestError("invalid", "note: say what the visit found (其他)", "note")
    return kind, note


async def record_door(ctx: Context, campaign_id: str, grid_id: str, outcome: DoorOutcome,
                      note: str, *, by: str, via: DoorVia, person: str = "") -> bool:
    """Keep a door-to-door result of a grid of the campaign; whether the grid closed on it
    now (False: it had closed otherwise, e.g. its officer confirmed). NotFoundError for a
    grid the campaign does not reach. A result after the campaign ended is kept too: it is
    what happened."""
    result = DoorResult(grid_id, outcome, note, by, via, ctx.clock.now(), person)
    code = await ctx.store.console.record_door(campaign_id, result)
    if code == 0:
        raise NotFoundError(f"no grid {grid_id} in campaign {campaign_id}")
    log.info("door-to-door result", campaign_id=campaign_id, grid=grid_id,
             outcome=outcome.value, via=via.value, closed=code == 1)
    return code == 1
