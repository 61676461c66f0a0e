"""Feeds in and out: poll agencies' CAP Atom/RSS feeds and CAP URLs; write CAP 1.2 XML.

`FeedManager` runs in the "timer" role; `feed_health` and `refresh_feed_metrics` serve
`/healthz` and `/metrics`; `alert_to_cap` is the CAP 1.2 serializer of the outbound feed.
"""

from __future__ import annotations

from warnbus.feeds.capxml import alert_to_cap
from warnbus.feeds.errors import FeedError
from warnbus.feeds.health import feed_health, refresh_feed_metrics
from warnbus.feeds.manager import FeedManager
from warnbus.feeds.poller import FeedPoller, PollResult, backoff_delay

__all__ = [
    "FeedError",
    "FeedManager",
    "FeedPoller",
    "PollResult",
    "alert_to_cap",
    "backoff_delay",
    "feed_health",
    "refresh_feed_metrics",
]
