"""Prometheus metrics of the gateway's answers (one registry per process).

The alerts in deploy/k8s/monitoring/ read these: the share of degraded answers, and the live
sessions (`muaalem_live_sessions_active`, `muaalem_live_sessions_rejected_total{reason}`),
which the streaming RPC GatewayService.AssessLive feeds.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from services.gateway.registry import ALL_STAGES

ASSESSMENTS = Counter(
    "muaalem_assessments_total",
    "Assessments answered, by outcome: complete (every stage answered) or degraded (a partial answer).",
    ["outcome"],
)
DEGRADED_STAGES = Counter(
    "muaalem_assessment_degraded_stages_total",
    "Stages missing from an answer (unavailable, late or failed), by stage.",
    ["stage"],
)
LIVE_SESSIONS_ACTIVE = Gauge(
    "muaalem_live_sessions_active",
    "Live assessment sessions (GatewayService.AssessLive streams) open now.",
)
# Reasons of a refused or server-ended live session. The alert MuaalemLiveSessionsRejected counts
# the mesh's own (capacity, draining, unavailable, internal), not the caller's (key_limit,
# invalid, unauthenticated, idle).
LIVE_REJECT_REASONS = (
    "capacity",
    "draining",
    "unavailable",
    "internal",
    "key_limit",
    "invalid",
    "unauthenticated",
    "idle",
)
LIVE_SESSIONS_REJECTED = Counter(
    "muaalem_live_sessions_rejected_total",
    "Live sessions refused or ended by the server, by reason: capacity (the gateway's session limit), "
    "draining (shutting down), unavailable (a stage), internal, key_limit (one key's sessions or rate), "
    "invalid (a bad message or recording), unauthenticated, idle (no message for the idle timeout).",
    ["reason"],
)

for _reason in LIVE_REJECT_REASONS:
    LIVE_SESSIONS_REJECTED.labels(_reason)
for _outcome in ("complete", "degraded"):
    ASSESSMENTS.labels(_outcome)
# A series per stage the gateway calls (registry.py), at 0 until one is missing from an answer.
for _stage in ALL_STAGES:
    DEGRADED_STAGES.labels(_stage)


def record_assessment(degraded: list[str]) -> None:
    ASSESSMENTS.labels("degraded" if degraded else "complete").inc()
    for stage in degraded:
        DEGRADED_STAGES.labels(stage).inc()
