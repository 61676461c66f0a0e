"""The feed poller's error: a fetch or a feed that failed in a way worth retrying."""

from __future__ import annotations

from warnbus.errors import WarnbusError


class FeedError(WarnbusError):
    """A feed or one of its CAP files could not be read now (network, HTTP status, size, not
    a feed). The poll is retried with backoff; an entry is retried on the next poll."""

    code = "feed"


class FeedRefused(FeedError):
    """A URL the feed may not fetch: off its allowed hosts, or a non-public address without
    `allow_private`. Definite: an entry whose link is refused is not tried again."""

    code = "feed_refused"


_KEEP = 300  # characters of an error text kept for /healthz


def public_text(message: str) -> str:
    """An error text fit to store and show: printable, one line, bounded.

    Feed error texts are written by warnbus, never copied from an upstream body; this is
    the last guard for what they may still quote (a host name, an XML parser's remark).
    """
    text = "".join(ch if ch.isprintable() else " " for ch in message)
    text = " ".join(text.split())
    return text if len(text) <= _KEEP else text[: _KEEP - 1] + "…"
