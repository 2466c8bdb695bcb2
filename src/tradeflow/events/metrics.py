"""Prometheus metrics of the outbox, the delivery engine and the scheduler."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_WRITTEN = Counter(
    "tradeflow_events_written_total",
    "Committed events taken from the outbox by the dispatcher, by type.",
    ["type"],
)
DELIVERIES = Counter(
    "tradeflow_deliveries_total",
    "Delivery attempts by subscriber kind and outcome (success, failure, timeout, ...).",
    ["kind", "outcome"],
)
ATTEMPT_LATENCY = Histogram(
    "tradeflow_delivery_attempt_duration_seconds",
    "Duration of one delivery attempt (HTTP request or handler transaction).",
    ["kind"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
DEAD_LETTERS = Counter(
    "tradeflow_dead_letters_total", "Deliveries that used their retry budget.", ["kind"]
)
LEASE_TAKEOVERS = Counter(
    "tradeflow_lease_takeovers_total",
    "Deliveries claimed after another worker's lease expired (that worker died or stalled).",
)
BREAKER_TRIPS = Counter(
    "tradeflow_breaker_trips_total", "Circuit breakers opened on a failing subscriber."
)
BACKLOG = Gauge(
    "tradeflow_delivery_backlog",
    "Pending deliveries that are due now (not yet delivered or dead-lettered).",
    multiprocess_mode="mostrecent",
)
OLDEST_DUE_AGE = Gauge(
    "tradeflow_delivery_oldest_due_age_seconds",
    "How long the oldest due pending delivery has been waiting.",
    multiprocess_mode="mostrecent",
)
UNDISPATCHED = Gauge(
    "tradeflow_outbox_undispatched",
    "Committed events not yet fanned out to subscribers.",
    multiprocess_mode="mostrecent",
)
DEAD_LETTER_COUNT = Gauge(
    "tradeflow_dead_letters_stored",
    "Dead-lettered deliveries currently stored.",
    multiprocess_mode="mostrecent",
)
BREAKERS = Gauge(
    "tradeflow_breakers",
    "Subscribers by circuit-breaker state (closed, open, half_open) and paused/disabled.",
    ["state"],
    multiprocess_mode="mostrecent",
)
JOB_RUNS = Counter(
    "tradeflow_scheduled_job_runs_total", "Scheduled job runs by job and status.", ["job", "status"]
)
