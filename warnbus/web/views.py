"""Views the HTTP layer serves: reports (from warnbus.flow.record), health and metrics."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any
from urllib.parse import urlparse

from prometheus_client import Gauge

from warnbus.feeds.health import feed_health, refresh_feed_metrics
from warnbus.flow.record import alert_view, record_rows, rows_csv
from warnbus.runtime.app import App
from warnbus.runtime.tasks import within

__all__ = ["HealthProbe", "alert_view", "health", "record_rows", "refresh_metrics", "rows_csv"]

QUEUE_DEPTH = Gauge("warnbus_queue_depth", "Entries waiting in a lane (up to 64 deliveries each)",
                    ["lane"])
TIMERS_PENDING = Gauge("warnbus_timers_pending", "Timers scheduled (retries, deadlines, expiry)")
DELIVERIES_SENT = Gauge("warnbus_process_deliveries_sent",
                        "Deliveries handed to providers by this process")


async def _broker_ok(url: str) -> bool:
    u = urlparse(url)
    try:
        _r, w = await asyncio.wait_for(
            asyncio.open_connection(u.hostname or "127.0.0.1", u.port or 1883), 2.0)
    except (OSError, TimeoutError, socket.gaierror):
        return False
    w.close()
    return True


async def health(app: App, *, feeds: bool = True) -> dict[str, Any]:
    """Whether Redis and the broker answer, this process's roles, and the feeds' health."""
    try:
        redis_ok = bool(await within(app.ctx.redis.ping(), 2.0))  # a stalled Redis too
    except Exception:
        redis_ok = False
    broker_ok = await _broker_ok(app.mqtt_url)
    detail: dict[str, Any] = {"ok": redis_ok and broker_ok, "redis": redis_ok,
                              "broker": broker_ok, "roles": sorted(app.engine.roles)}
    if feeds and redis_ok and app.settings.feeds:
        # Feed health is detail: a failing agency feed does not make this process unhealthy.
        detail["feeds"] = await feed_health(app.ctx)
    return detail


class HealthProbe:
    """`/healthz` of one process: up or down for anyone, the detail for a credential.

    Anyone may ask whether the process is up, as often as they like: the answer is probed
    (a Redis PING, a TCP connection to the broker) at most once per `ttl_s` for all of them,
    one probe at a time, so a flood of health checks costs neither Redis nor the broker a
    connection each. The detail (`health`) is probed afresh each time it is asked for.
    """

    def __init__(self, app: App, ttl_s: float = 1.0) -> None:
        self.app = app
        self.ttl_s = ttl_s
        self._ok = False
        self._at: float | None = None
        self._lock = asyncio.Lock()

    def _fresh(self) -> bool:
        return self._at is not None and time.monotonic() - self._at < self.ttl_s

    async def up(self) -> bool:
        if not self._fresh():
            async with self._lock:
                if not self._fresh():
                    await self.detail(feeds=False)
        return self._ok

    async def detail(self, *, feeds: bool = True) -> dict[str, Any]:
        detail = await health(self.app, feeds=feeds)
        self._ok, self._at = bool(detail["ok"]), time.monotonic()
        return detail


async def refresh_metrics(app: App) -> None:
    for lane, n in (await app.ctx.lanes.depth()).items():
        QUEUE_DEPTH.labels(lane=lane).set(n)
    TIMERS_PENDING.set(await app.ctx.timers.pending())
    DELIVERIES_SENT.set(app.engine.dispatcher.sent)
    if app.settings.feeds:
        await refresh_feed_metrics(app.ctx)
