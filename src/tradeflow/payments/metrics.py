"""Prometheus metrics of processor calls, inbound processor webhooks and the resolver."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

PROCESSOR_CALLS = Counter(
    "tradeflow_processor_calls_total",
    "Calls that change something at a processor, by processor, kind (authorize, capture, "
    "refund) and outcome (answered, declined, rejected, unavailable, unknown).",
    ["processor", "kind", "outcome"],
)
PROCESSOR_CALL_LATENCY = Histogram(
    "tradeflow_processor_call_duration_seconds",
    "Duration of one processor call, by processor and kind.",
    ["processor", "kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
PROCESSOR_WEBHOOKS = Counter(
    "tradeflow_processor_webhooks_total",
    "Inbound processor webhooks by processor and result (stored, duplicate, bad_signature, "
    "stale, invalid).",
    ["processor", "result"],
)
RESOLVED = Counter(
    "tradeflow_processor_operations_resolved_total",
    "Unanswered processor calls looked up by the resolver, by outcome (succeeded, failed, retry).",
    ["outcome"],
)
