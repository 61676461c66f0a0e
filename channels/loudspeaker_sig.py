"""Who may speak to a loudspeaker, and for which command a speaker may report.

Commands carry an origin check a speaker can verify: an HMAC-SHA256 in the MQTT 5 user
property `wb-sig`, over the topic and the payload, with a key id and a timestamp:

    wb-sig: v1;kid=<key id>;ts=<unix seconds>;sig=<64 lowercase hex>
    sig = HMAC-SHA256(key, "wb-sig-v1\\n" + kid + "\\n" + ts + "\\n" + topic + "\\n" + payload)

The key is a per-deployment secret (its UTF-8 bytes), the same for the engine and the
county's speakers; the key id lets a county roll it over (speakers hold old and new for a
while). A speaker refuses a command that is unsigned, signed with an unknown key id or a
wrong signature, dated more than CLOCK_SKEW_S ahead of its clock, or — delivered live —
more than REPLAY_WINDOW_S old. A retained copy (catch-up after a reconnect) may be older:
the command's own end time bounds it, as the broker's message expiry does. A speaker plays a
cmd id once, however often it arrives. docs/devices.md has the scheme and a worked example.

The other direction: a playout report on `dev/{id}/ack` counts only for a command that was
sent to that device or to its area. The report echoes the command's campaign, alert and step;
with the delivery's target (`area:{code}` or `dev:{id}`) they give the delivery id the engine
made (`warnbus.domain.models.delivery_ids`), so a speaker cannot claim another area's command.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping

from warnbus.plugin import delivery_id_for

SIG_PROPERTY = "wb-sig"
SIG_VERSION = "v1"
CLOCK_SKEW_S = 60
REPLAY_WINDOW_S = 600
MIN_KEY_CHARS = 32
KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,32}")
_HEADER = re.compile(r"v1;kid=([A-Za-z0-9._-]{1,32});ts=(\d{1,12});sig=([0-9a-f]{64})")


class CommandRefused(ValueError):
    """A command a speaker must not play; the message says why (reported in the ack)."""


def signing_input(kid: str, ts: int, topic: str, payload: bytes) -> bytes:
    """The octets the HMAC is computed over."""
    return f"wb-sig-{SIG_VERSION}\n{kid}\n{ts}\n{topic}\n".encode() + payload


def sign(key: str, kid: str, ts: int, topic: str, payload: bytes) -> str:
    """The `wb-sig` property value for a command published on `topic` at `ts`."""
    mac = hmac.new(key.encode(), signing_input(kid, ts, topic, payload), hashlib.sha256)
    return f"{SIG_VERSION};kid={kid};ts={ts};sig={mac.hexdigest()}"


def verify(header: str | None, topic: str, payload: bytes, keys: Mapping[str, str], *,
           now: float, retained: bool) -> None:
    """Raise CommandRefused unless `header` is a valid, fresh signature of this command."""
    if not header:
        raise CommandRefused("unsigned command (no wb-sig property)")
    m = _HEADER.fullmatch(header)
    if m is None:
        raise CommandRefused("malformed wb-sig property")
    kid, ts_text, sig = m.groups()
    key = keys.get(kid)
    if key is None:
        raise CommandRefused(f"unknown key id {kid}")
    ts = int(ts_text)
    want = hmac.new(key.encode(), signing_input(kid, ts, topic, payload), hashlib.sha256)
    if not hmac.compare_digest(want.hexdigest(), sig):
        raise CommandRefused("bad signature")
    if ts > now + CLOCK_SKEW_S:
        raise CommandRefused(f"signed {ts - now:.0f}s in the future")
    if not retained and ts < now - REPLAY_WINDOW_S:
        raise CommandRefused(f"signed {now - ts:.0f}s ago, outside the replay window")


def signature_of(user_properties: object) -> str | None:
    """The `wb-sig` value among an MQTT 5 message's user properties (a list of pairs)."""
    if not isinstance(user_properties, list):
        return None
    found = [v for k, v in user_properties if k == SIG_PROPERTY]
    return found[0] if len(found) == 1 and isinstance(found[0], str) else None


def report_binds(cmd_id: str, campaign_id: str, alert_id: str, step: int, channel: str, *,
                 device: str, area: str | None) -> bool:
    """True when `cmd_id` is the delivery of (campaign, alert, step) to `device` or its area."""
    targets = [f"dev:{device}"] + ([f"area:{area}"] if area else [])
    return any(hmac.compare_digest(delivery_id_for(campaign_id, alert_id, t, channel, step),
                                   cmd_id) for t in targets)
