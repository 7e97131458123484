"""Prometheus metrics of the reference cache (one registry per process)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from services.common.metrics import LATENCY_BUCKETS

LOOKUPS = Counter(
    "muaalem_reference_cache_lookups_total",
    "Reference lookups by the store that answered (redis, memory, fallback) and result (hit, miss).",
    ["store", "result"],
)
ERRORS = Counter(
    "muaalem_reference_cache_errors_total",
    "Cache calls that failed open, by store, operation (get, set) and reason "
    "(timeout, connection, redis, circuit_open, invalid_value).",
    ["store", "op", "reason"],
)
BREAKER_STATE = Gauge(
    "muaalem_reference_cache_breaker_state",
    "Circuit breaker in front of Redis: 0 closed, 1 open (Redis skipped), 2 half-open (probing).",
)
REDIS_CALL_SECONDS = Histogram(
    "muaalem_reference_cache_call_duration_seconds",
    "Duration of Redis calls made by the reference cache, failed ones included.",
    ["op"],
    buckets=LATENCY_BUCKETS,
)
BUILD_SECONDS = Histogram(
    "muaalem_reference_build_duration_seconds",
    "Time to phonetize a reference on a cache miss.",
    buckets=LATENCY_BUCKETS,
)
COALESCED = Counter(
    "muaalem_reference_singleflight_waiters_total",
    "Lookups that waited on an identical lookup already in flight instead of starting their own.",
)
