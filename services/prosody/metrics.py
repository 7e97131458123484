"""Prometheus metrics of the prosody stage, beside the per-RPC ones every server exports."""

from __future__ import annotations

from prometheus_client import Histogram

from services.common.metrics import LATENCY_BUCKETS

FEATURE_SECONDS = Histogram(
    "muaalem_prosody_feature_duration_seconds",
    "Time of one prosody feature (pitch, energy, voice_quality, maqam, acoustic) or of a comparison.",
    ["feature"],
    buckets=LATENCY_BUCKETS,
)
SIMILARITY = Histogram(
    "muaalem_prosody_similarity",
    "Overall similarity (0-100) of the comparisons answered.",
    buckets=(10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 100),
)


def observe_feature(name: str, duration_ms: float) -> None:
    FEATURE_SECONDS.labels(feature=name).observe(duration_ms / 1000.0)
