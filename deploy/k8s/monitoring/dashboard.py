"""The Grafana dashboard of the mesh (grafana-dashboard.json), one row per stage.

Panels read the recording rules of rules.py where one exists (so Grafana and the alerts agree on
what "p95" or "error ratio" means) and the raw metrics otherwise. The datasource is the
dashboard's `datasource` variable: import it into any Grafana with any Prometheus.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.gateway.registry import ALL_STAGES

DS = {"type": "prometheus", "uid": "${datasource}"}
WIDTH = 24
HEIGHT = 8


@dataclass(frozen=True)
class Panel:
    title: str
    targets: tuple[tuple[str, str], ...]  # (PromQL, legend)
    unit: str = "short"
    description: str = ""
    max_value: float | None = None


def _stage_panels(service: str) -> list[Panel]:
    sel = f'service="{service}"'
    return [
        Panel(
            "Rate",
            ((f"service_method:muaalem_grpc_requests:rate5m{{{sel}}}", "{{method}}"),),
            "reqps",
            "Calls per second by method (health probes left out).",
        ),
        Panel(
            "Errors",
            ((f"service_method:muaalem_grpc_errors:ratio_rate5m{{{sel}}}", "{{method}}"),),
            "percentunit",
            "Share of calls that ended in a server error (client mistakes left out).",
        ),
        Panel(
            "Latency p50 / p95 / p99",
            (
                (
                    f"service_method:muaalem_grpc_request_duration_seconds:quantile_rate5m{{{sel}}}",
                    "{{method}} p{{quantile}}",
                ),
            ),
            "s",
            "Server-side time from receiving a call to its status.",
        ),
        Panel(
            "In flight",
            ((f"sum by (method) (muaalem_grpc_in_flight_requests{{{sel}}})", "{{method}}"),),
            "short",
            "Calls being handled now, summed over the pods.",
        ),
        Panel(
            "Ready pods",
            ((f"sum(muaalem_service_ready{{{sel}}})", "ready"),),
            "short",
            "Pods reporting SERVING (for asr: the model is loaded).",
        ),
    ]


def rows() -> list[tuple[str, list[Panel]]]:
    return [
        (
            "Gateway: Assess",
            [
                *_stage_panels("gateway"),
                Panel(
                    "Degraded answers by missing stage",
                    (("stage:muaalem_assessment_degraded:ratio_rate5m", "{{stage}}"),),
                    "percentunit",
                    "Share of assessments answered without this stage (alert above 5%).",
                ),
                Panel(
                    "Error budget burn (Assess)",
                    (
                        ("muaalem:assess_errors:ratio_rate1h / 0.005", "availability, 1 h"),
                        ("muaalem:assess_errors:ratio_rate5m / 0.005", "availability, 5 min"),
                        ("muaalem:assess_slow:ratio_rate1h / 0.01", "latency, 1 h"),
                        ("muaalem:assess_slow:ratio_rate5m / 0.01", "latency, 5 min"),
                    ),
                    "short",
                    "Burn rate: 1 spends the 30-day budget in 30 days; the page fires at 14.4 (1 h and 5 min).",
                ),
            ],
        ),
        (
            "ASR",
            [
                *_stage_panels("asr"),
                Panel(
                    "Queue depth",
                    (
                        ("sum by (queue) (muaalem_asr_queue_depth)", "{{queue}} waiting"),
                        ("sum by (queue) (muaalem_asr_queue_capacity)", "{{queue}} capacity"),
                    ),
                    "short",
                    "Model inputs waiting, summed over the pods (the HPA's signal), and what the queues hold.",
                ),
                Panel(
                    "Batch size",
                    (("queue:muaalem_asr_batch_size:mean_rate5m", "{{queue}} mean"),),
                    "short",
                    "Inputs per forward pass: grows with load.",
                ),
                Panel(
                    "Queue time p95",
                    (("queue:muaalem_asr_queue_seconds:p95_rate5m", "{{queue}}"),),
                    "s",
                    "How long an input waits before its batch starts.",
                ),
                Panel(
                    "Dropped inputs",
                    (("sum by (queue, reason) (rate(muaalem_asr_dropped_total[5m]))", "{{queue}} {{reason}}"),),
                    "ops",
                    "Inputs removed before the model: queue full, deadline passed, caller gone.",
                ),
                Panel(
                    "GPU memory peak",
                    (
                        (
                            "muaalem_asr_gpu_peak_memory_bytes / muaalem_asr_gpu_memory_total_bytes",
                            "{{pod}} {{device}}",
                        ),
                    ),
                    "percentunit",
                    "Peak allocated over the device's memory (CUDA only; alert above 90%).",
                    1.0,
                ),
            ],
        ),
        # The other stages the gateway calls, from its stage registry (asr has its own row above).
        *((stage.capitalize(), _stage_panels(stage)) for stage in ALL_STAGES if stage != "asr"),
        (
            "Reference cache",
            [
                Panel(
                    "Cache hit ratio",
                    (("muaalem:reference_cache_hits:ratio_rate5m", "hit ratio"),),
                    "percentunit",
                    "Reference lookups answered from a store.",
                    1.0,
                ),
                Panel(
                    "Lookups by store and result",
                    (
                        (
                            "sum by (store, result) (rate(muaalem_reference_cache_lookups_total[5m]))",
                            "{{store}} {{result}}",
                        ),
                    ),
                    "ops",
                ),
                Panel(
                    "Redis circuit breaker",
                    (("max by (pod) (muaalem_reference_cache_breaker_state)", "{{pod}}"),),
                    "short",
                    "0 closed, 1 open (Redis skipped), 2 half-open (probing).",
                ),
                Panel(
                    "Cache errors",
                    (
                        (
                            "sum by (store, op, reason) (rate(muaalem_reference_cache_errors_total[5m]))",
                            "{{store}} {{op}} {{reason}}",
                        ),
                    ),
                    "ops",
                ),
            ],
        ),
        (
            "Live sessions",
            [
                Panel(
                    "Live sessions open",
                    (
                        ("sum(muaalem_live_sessions_active)", "open"),
                        ("sum(muaalem_live_sessions_capacity)", "capacity"),
                    ),
                    "short",
                    "Live sessions (gRPC AssessLive, WebSocket /v1/live) open now, and how many the gateways "
                    "admit at once (MUAALEM_LIVE_CAPACITY_SESSIONS: what the asr keeps up with), over all gateways.",
                ),
                Panel(
                    "Live sessions admitted",
                    (("sum(rate(muaalem_live_sessions_admitted_total[5m]))", "admitted"),),
                    "ops",
                ),
                Panel(
                    "Live sessions rejected",
                    (("sum by (reason) (rate(muaalem_live_sessions_rejected_total[5m]))", "{{reason}}"),),
                    "ops",
                    "Refused or ended by the server, by reason: capacity (the session over capacity, told when "
                    "to try again), draining, unavailable, internal; the caller's: invalid, unauthenticated, "
                    "limit, idle.",
                ),
            ],
        ),
    ]


def _panel(panel: Panel, panel_id: int, x: int, y: int, width: int) -> dict[str, Any]:
    defaults: dict[str, Any] = {"unit": panel.unit, "min": 0}
    if panel.max_value is not None:
        defaults["max"] = panel.max_value
    return {
        "id": panel_id,
        "type": "timeseries",
        "title": panel.title,
        "description": panel.description,
        "datasource": DS,
        "gridPos": {"h": HEIGHT, "w": width, "x": x, "y": y},
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "multi"}},
        "targets": [
            {"datasource": DS, "expr": expr, "legendFormat": legend, "refId": chr(ord("A") + i)}
            for i, (expr, legend) in enumerate(panel.targets)
        ],
    }


def dashboard() -> dict[str, Any]:
    panels: list[dict[str, Any]] = []
    y = 0
    panel_id = 1
    width = 6
    for title, row_panels in rows():
        panels.append(
            {
                "id": panel_id,
                "type": "row",
                "title": title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": WIDTH, "x": 0, "y": y},
                "panels": [],
            }
        )
        panel_id += 1
        y += 1
        for index, panel in enumerate(row_panels):
            x = (index * width) % WIDTH
            if index and x == 0:
                y += HEIGHT
            panels.append(_panel(panel, panel_id, x, y, width))
            panel_id += 1
        y += HEIGHT
    return {
        "title": "Muaalem mesh",
        "uid": "muaalem-mesh",
        "tags": ["muaalem"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "30s",
        "time": {"from": "now-3h", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Prometheus",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                    "refresh": 1,
                }
            ]
        },
        "annotations": {"list": []},
        "panels": panels,
    }


def expressions() -> list[str]:
    """Every PromQL expression the dashboard runs."""
    return [expr for _, row_panels in rows() for panel in row_panels for expr, _ in panel.targets]
