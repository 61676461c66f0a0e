"""Acks (应): the only writer of confirmations, and the signed ack links.

A confirmation is per person and per campaign, recorded by one Lua compare-and-set that also
closes the person's grids, stops further calls to them and appends to the audit stream.
Recording the same confirmation twice changes nothing; neither does one that comes after
the campaign ended, which is recorded as late (audit and metric).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

import structlog

from warnbus.domain.models import Ack, AckVia
from warnbus.domain.states import CampaignState, GridState
from warnbus.errors import AuthError
from warnbus.flow.durable import AckOp, durably
from warnbus.flow.feedback import schedule_feedback
from warnbus.plugin import Confirmation
from warnbus.runtime import metrics
from warnbus.runtime.context import Context

log = structlog.get_logger("warnbus.flow.acks")

RECORDED, DUPLICATE, NO_CAMPAIGN, NOT_TARGET, NOT_REACHED, LATE = 1, 2, 0, -1, -2, 3
#: Redis was unavailable: the confirmation is in the local journal (durable), recorded when
#: Redis returns (`flow.durable`).
JOURNALED = 4
_STATUS = {RECORDED: "recorded", DUPLICATE: "duplicate", NO_CAMPAIGN: "no_campaign",
           NOT_TARGET: "not_target", NOT_REACHED: "not_reached", LATE: "late",
           JOURNALED: "journaled"}
#: What a person reads who confirms after the end (the ack link page, the console): the
#: state the ack script answers, the campaign's or, for a person whose area an Update dropped
#: (whose 解除 they were sent), `GridState.DROPPED`.
LATE_ZH: dict[str, str] = {CampaignState.CANCELLED: "该预警已解除，无需确认。",
                           CampaignState.EXPIRED: "该预警已过期，无需确认。",
                           GridState.DROPPED: "您所在区域的预警已解除，无需确认。"}
LATE_ZH_DEFAULT = "该预警已结束，无需确认。"


@dataclass(frozen=True)
class AckResult:
    code: int
    state: str = ""  # the campaign's state, when the confirmation came late

    @property
    def recorded(self) -> bool:
        return self.code == RECORDED

    @property
    def late(self) -> bool:
        return self.code == LATE

    @property
    def journaled(self) -> bool:
        return self.code == JOURNALED

    @property
    def status(self) -> str:
        return _STATUS[self.code]

    @property
    def confirmation(self) -> Confirmation:
        """What a channel tells the person (`plugin.Confirmation`)."""
        if self.code in (RECORDED, JOURNALED):  # journaled: durable, recorded on replay
            return Confirmation.RECORDED
        if self.code == DUPLICATE:
            return Confirmation.DUPLICATE
        if self.code == LATE:
            lifted = self.state in (CampaignState.CANCELLED, GridState.DROPPED)
            return Confirmation.LIFTED if lifted else Confirmation.ENDED
        return Confirmation.UNKNOWN

    @property
    def late_zh(self) -> str:
        """For a late confirmation: that the warning was lifted (解除) or has ended."""
        return late_zh(self.state)


async def record_ack(
    ctx: Context,
    campaign_id: str,
    person_id: str,
    via: AckVia,
    *,
    delivery_id: str | None = None,
    by: str | None = None,
    reason: str | None = None,
) -> AckResult:
    """Record a confirmation, durably: in Redis, or (Redis unavailable) in the local journal,
    replayed later: then the result is JOURNALED. JournalError when neither took it.

    One for a campaign that has ended (cancelled, expired) changes nothing and is recorded
    as late (audited once per person, counted)."""
    op = AckOp(campaign_id, person_id, via, ctx.clock.now(), delivery_id, by, reason)
    result = await durably(ctx, op, lambda o: apply_ack(ctx, o))
    if result is None:
        metrics.ACKS.labels(via.value, _STATUS[JOURNALED]).inc()
        return AckResult(JOURNALED)
    return result


async def apply_ack(ctx: Context, op: AckOp, *, reply_via: str | None = None) -> AckResult:
    """Write a confirmation to Redis (raises when Redis is unavailable).

    `reply_via`: a reply that names no campaign, tried on each candidate, through that
    channel; it counts only where a delivery through the channel had reached the person (a
    provider had accepted it) before the reply arrived (`op.at`). Where the person is no
    target, or nothing had reached them, it was simply not meant for that campaign, and is
    neither counted nor logged."""
    ack = Ack(op.campaign_id, op.person_id, op.at, op.via, op.delivery_id, op.by, op.reason)
    code, extra, level, held = await ctx.store.ack(ack, reply_via=reply_via or "")
    result = AckResult(code, extra if code == LATE else "")
    if reply_via is not None and code in (NO_CAMPAIGN, NOT_TARGET, NOT_REACHED):
        return result
    via = op.via
    metrics.ACKS.labels(via.value, result.status).inc()
    if result.recorded and extra:
        metrics.ACK_LATENCY.observe(max(0.0, ack.at - float(extra)))
    if result.recorded and level is not None:
        # The report after the ack is due from now (its timers are added only if absent).
        await schedule_feedback(ctx, op.campaign_id, op.person_id, level, held, ack.at)
    if result.late:
        log.info("late confirmation: the campaign has ended", campaign_id=op.campaign_id,
                 person=op.person_id, via=via.value, campaign_state=result.state)
    else:
        log.info("ack", campaign_id=op.campaign_id, person=op.person_id, via=via.value,
                 result=result.status)
    return result


async def ended_state(ctx: Context, campaign_id: str) -> CampaignState | None:
    """The state of a campaign that has ended: cancelled, or expired (also past its expiry
    while the timer has not yet said so: the ack script judges the same way; it was
    reported as still active), else None (a campaign not yet planned reads as planning)."""
    meta = await ctx.store.meta(campaign_id)
    now = ctx.clock.now()
    if meta is None or not meta.over(now):
        return None
    return meta.ended_as(now) or meta.state


def late_zh(state: str) -> str:
    """What a person reads who confirms after the end: lifted (解除) or ended."""
    return LATE_ZH.get(state, LATE_ZH_DEFAULT)


class SignedLinks:
    """HMAC-signed, expiring links under one key (`seal`, `unseal`); `WHAT` names them."""

    WHAT = "signed link"

    def __init__(self, secret: bytes, base_url: str, ttl_s: float) -> None:
        if len(secret) < 16:
            raise ValueError(f"{self.WHAT} secret must be at least 16 bytes")
        self._key = secret
        # Keyed once and copied per link: a first wave signs one link per person.
        self._keyed = hmac.new(secret, digestmod=hashlib.sha256)
        self.base_url = base_url.rstrip("/")
        self.ttl_s = ttl_s


class AckLinks(SignedLinks):
    """HMAC-signed, single-person, expiring ack links: /ack/<token>."""

    WHAT = "ack link"

    def derive(self, purpose: str) -> bytes:
        """A key of its own for other signed links (`purpose`, e.g. "door"): a token signed
        for one purpose is never valid for another, nor as an ack link."""
        return hmac.new(self._key, b"warnbus-links\x1f" + purpose.encode(), hashlib.sha256).digest()

    def token(self, campaign_id: str, person_id: str, now: float) -> str:
        return seal(self._keyed, f"{campaign_id}|{person_id}|{int(now + self.ttl_s)}")

    def url(self, campaign_id: str, person_id: str, now: float) -> str:
        return f"{self.base_url}/ack/{self.token(campaign_id, person_id, now)}"

    def verify(self, token: str, now: float) -> tuple[str, str]:
        """Return (campaign_id, person_id) of a valid token; raise AuthError otherwise."""
        campaign_id, person_id = unseal(self._key, token, 2, self.WHAT, now)
        return campaign_id, person_id


def seal(keyed: Any, body: str) -> str:
    """A link token: `body` ("id|...|expiry") and its MAC under `keyed` (an hmac object,
    copied: signing a first wave's links keys it once)."""
    raw = body.encode()
    mac = keyed.copy()
    mac.update(raw)
    return _b64(raw) + "." + _b64(mac.digest()[:16])


def unseal(key: bytes, token: str, fields: int, what: str, now: float) -> list[str]:
    """The `fields` ids a token `seal`ed under `key` carries; AuthError (naming `what`) when
    its signature is not valid, it is malformed or it has expired."""
    try:
        body_s, sig_s = token.split(".", 1)
        body, sig = _unb64(body_s), _unb64(sig_s)
        want = hmac.new(key, body, hashlib.sha256).digest()[:16]
        if not hmac.compare_digest(sig, want):
            raise AuthError(f"{what} signature is not valid")
        *ids, exp = body.decode().split("|")
        expires = int(exp)
        if len(ids) != fields:
            raise ValueError(f"{len(ids)} ids, not {fields}")
    except AuthError:
        raise
    except (ValueError, UnicodeDecodeError) as e:
        raise AuthError(f"{what} is malformed") from e
    if now > expires:
        raise AuthError(f"{what} has expired")
    return ids


def _b64(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def _unb64(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
