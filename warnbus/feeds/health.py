"""Feed health for `/healthz` detail and `/metrics`, read from Redis so any process can tell.

Counters count what this process did (Prometheus sums them over processes); the gauges are
set from Redis by `refresh_feed_metrics`, so an API-only process exports them too.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from warnbus.feeds.state import FeedState
from warnbus.runtime.context import Context

POLLS = Counter("warnbus_feed_polls", "Feed polls by outcome (ok, not_modified, error)",
                ["feed", "outcome"])
ENTRIES = Counter("warnbus_feed_entries",
                  "New feed entries by outcome (accepted, duplicate, skipped, rejected, error)",
                  ["feed", "outcome"])
POLL_SECONDS = Histogram("warnbus_feed_poll_duration_seconds", "Duration of a feed poll",
                         ["feed"], buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
FAILURES = Gauge("warnbus_feed_consecutive_failures", "Failed polls since the last success",
                 ["feed"])
LAST_SUCCESS = Gauge("warnbus_feed_last_success_timestamp_seconds",
                     "When the feed was last read (or answered 304)", ["feed"])
LEASE = Gauge("warnbus_feed_lease_held", "1 when this process is the one polling the feed",
              ["feed"])

_COUNTS = ("seen", "accepted", "duplicate", "skipped", "rejected", "errors")


def _num(raw: dict[str, str], name: str) -> float | None:
    v = raw.get(name, "")
    return float(v) if v else None


async def feed_health(ctx: Context) -> dict[str, dict[str, Any]]:
    """Per configured feed: status (ok, failing, stale, never_polled, disabled) and details.

    `stale`: nothing read for three intervals plus a minute (e.g. no process polls it).
    """
    now = ctx.clock.now()
    out: dict[str, dict[str, Any]] = {}
    for f in ctx.settings.feeds:
        state = FeedState(ctx.redis, f.name)
        raw = await state.read()
        last_ok, last_err = _num(raw, "last_success"), _num(raw, "last_error_at")
        failures = int(raw.get("failures") or 0)
        if not f.enabled:
            status = "disabled"
        elif failures:
            status = "failing"
        elif last_ok is None:
            status = "never_polled"
        elif now - last_ok > 3 * f.interval_s + 60:
            status = "stale"
        else:
            status = "ok"
        out[f.name] = {
            "status": status,
            "kind": f.kind,
            "last_success": last_ok,
            "last_error": raw.get("last_error") or None,
            "last_error_at": last_err,
            "consecutive_failures": failures,
            "poller": await state.holder() or None,
            "entries": {k: int(raw.get(k) or 0) for k in _COUNTS},
        }
    return out


async def refresh_feed_metrics(ctx: Context) -> None:
    """Set the feed gauges from Redis (call before rendering /metrics)."""
    for f in ctx.settings.feeds:
        raw = await FeedState(ctx.redis, f.name).read()
        FAILURES.labels(feed=f.name).set(int(raw.get("failures") or 0))
        last_ok = _num(raw, "last_success")
        if last_ok is not None:
            LAST_SUCCESS.labels(feed=f.name).set(last_ok)
