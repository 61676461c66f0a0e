"""A provider's webhook request, signed and encoded, ready to be sent.

The simulators sign their callbacks as Twilio and WeCom do (on the providers' servers, not
on ours); a load generator asks for many prepared requests before its clock starts and
sends them with a client of its own, so its timed loop does no signing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class PreparedRequest:
    """POST `body` to `url` with `headers`. The URL is sent exactly as given: the signature
    covers that string, and quoting it again would break the check."""

    url: str
    body: bytes
    headers: Mapping[str, str]
