"""Prometheus metrics of the gateway's answers (one registry per process).

The alerts in deploy/k8s/monitoring/ read these: the share of degraded answers, and the live
sessions (`muaalem_live_sessions_active`, `_capacity`, `_admitted_total`,
`_rejected_total{reason}`), which live/admission.py feeds for both front ends of AssessLive.
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
    "Live assessment sessions (GatewayService.AssessLive streams, WebSocket /v1/live) open now.",
)
LIVE_SESSIONS_CAPACITY = Gauge(
    "muaalem_live_sessions_capacity",
    "Live sessions this gateway admits at once: MUAALEM_LIVE_CAPACITY_SESSIONS, or when 0 the capacity "
    "measured from muaalem_asr_realtime_factor, within MUAALEM_LIVE_MAX_SESSIONS.",
)
ASR_REALTIME_FACTOR = Gauge(
    "muaalem_asr_realtime_factor",
    "The asr's compute seconds per second of audio, from its own timings (features + model over the "
    "batch), as this gateway measured it; the live capacity is floor(asr replicas x 0.7 / this) per gateway.",
)
LIVE_SESSIONS_ADMITTED = Counter(
    "muaalem_live_sessions_admitted_total",
    "Live sessions admitted (their config accepted, a place taken).",
)
# Reasons of a refused or server-ended live session. The alert MuaalemLiveSessionsRejected counts
# the mesh's own (capacity, draining, unavailable, internal), not the caller's (invalid,
# unauthenticated, limit: its key's sessions, rate or the session's length, idle).
LIVE_REJECT_REASONS = (
    "capacity", "draining", "unavailable", "internal", "invalid", "unauthenticated", "limit", "idle",
)  # fmt: skip
LIVE_SESSIONS_REJECTED = Counter(
    "muaalem_live_sessions_rejected_total",
    "Live sessions refused or ended by the server, by reason: capacity (the gateway's admitted "
    "sessions are at MUAALEM_LIVE_CAPACITY_SESSIONS), draining (shutting down), unavailable (a stage), "
    "internal, invalid (the client's input), unauthenticated, limit (the key's sessions or rate, the "
    "session's length), idle (no message for MUAALEM_LIVE_IDLE_TIMEOUT_S).",
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
