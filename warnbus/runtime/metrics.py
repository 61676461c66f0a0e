"""Prometheus metrics of the engine, defined in one place (served at /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

ALERTS = Counter("warnbus_alerts_total", "Alerts received, by message type and result",
                 ["msg_type", "result"])
DELIVERIES = Counter("warnbus_deliveries_total",
                     "Deliveries handed to a provider or failed, by channel, kind and outcome",
                     ["channel", "kind", "outcome"])
PROVIDER_ERRORS = Counter("warnbus_provider_errors_total",
                          "Provider failures by channel and class (transient, permanent)",
                          ["channel", "error"])
ACKS = Counter("warnbus_acks_total", "Confirmations by channel and result", ["via", "result"])
FEEDBACK = Counter("warnbus_feedback_total", "Reports after the ack by channel, kind and result",
                   ["via", "kind", "result"])
FEEDBACK_OVERDUE = Counter("warnbus_feedback_overdue_total",
                           "Reports after the ack not made by their deadline (escalated)")
ACK_LATENCY = Histogram(
    "warnbus_ack_latency_seconds",
    "Time from a person's first message to their confirmation (叫应 time to confirm)",
    buckets=(30, 60, 120, 180, 300, 600, 900, 1200, 1800, 3600, 7200),
)
CAP_RENDERS = Counter("warnbus_cap_renders_total",
                      "Renders for the public CAP routes: a CAP file, or the feed's newest "
                      "messages (one read and render serves every request for a while)",
                      ["what"])
GRIDS_REPAIRED = Counter("warnbus_grids_repaired_total",
                         "Open grids the sweeper found with nothing to move them, repaired: "
                         "closed (confirmed: their holder had confirmed) or their deadline "
                         "set again (overdue)", ["why"])
JOURNAL = Counter("warnbus_journal_ops_total",
                  "Confirmations and provider reports in the local journal while Redis was "
                  "unavailable: written (fsynced, then answered 2xx), replayed into Redis, "
                  "refused (the journal was full or failed: answered non-2xx)", ["result"])
JOURNAL_BYTES = Gauge("warnbus_journal_bytes",
                      "Bytes in this process's journal not yet replayed into Redis")
CLOCK_OFFSET = Gauge("warnbus_clock_offset_seconds",
                     "Redis's time minus this process's clock, as last measured")
