"""The feed poller's error: a fetch or a feed that failed in a way worth retrying."""

from __future__ import annotations

from warnbus.errors import WarnbusError


class FeedError(WarnbusError):
    """A feed or one of its CAP files could not be read now (network, HTTP status, size, not
    a feed). The poll is retried with backoff; an entry is retried on the next poll."""

    code = "feed"
