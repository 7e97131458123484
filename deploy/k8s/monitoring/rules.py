"""The mesh's recording rules and alerts, in one place.

`python -m deploy.k8s.monitoring.generate` writes them as a plain Prometheus rules file
(muaalem-rules.yaml) and as a PrometheusRule for the Prometheus operator (prometheusrule.yaml),
plus the promtool unit tests (muaalem-rules*.test.yaml). docs/operations.md explains the SLOs
and holds one runbook section per alert (each alert's runbook_url points at it).

Every duration (rate windows and `for:`) goes through `Timing`: production uses them as written;
the integration test with a real Prometheus scrapes every second and uses the same rules with
every duration divided by 60 (5m becomes 5s), because an alert that must hold for minutes
cannot fire in a test that lasts seconds. The rule names keep their production window names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Calls the server is to blame for. Client mistakes (INVALID_ARGUMENT, UNAUTHENTICATED, ...)
# spend no error budget, and neither does RESOURCE_EXHAUSTED: at the gateway it is a caller over
# its API key's rate limit; a full asr queue shows as degraded answers and dropped inputs instead.
SERVER_ERROR_CODES = "INTERNAL|UNAVAILABLE|DEADLINE_EXCEEDED|UNKNOWN|DATA_LOSS|UNIMPLEMENTED"
# The SLOs cover the unary and client-streaming assessment (the live stream's duration is the
# session's, not a latency).
ASSESS = 'service="gateway",method=~"/muaalem.v1.GatewayService/(Assess|AssessStream)"'
NOT_PROBES = 'method!~"/grpc\\\\..*"'

# Availability: 99.5% of assessments answered without a server error, over 30 days.
AVAILABILITY_OBJECTIVE = 0.995
# Latency: 99% of assessments answered within 10 s (a bucket bound of
# muaalem_grpc_request_duration_seconds; prometheus_client writes it as 10.0).
LATENCY_OBJECTIVE = 0.99
LATENCY_THRESHOLD_LE = "10.0"

# The windows the burn-rate alerts read (Google SRE workbook, "multiwindow, multi-burn-rate").
WINDOWS = {"5m": 300, "30m": 1800, "1h": 3600, "2h": 7200, "6h": 21600, "1d": 86400, "3d": 259200}
# (long window, short window, burn rate, severity): 2% of a 30-day budget in 1 h and 5% in 6 h
# page; 10% in 1 d and 10% in 3 d open a ticket.
BURN_RATES = (
    ("1h", "5m", 14.4, "critical"),
    ("6h", "30m", 6.0, "critical"),
    ("1d", "2h", 3.0, "warning"),
    ("3d", "6h", 1.0, "warning"),
)

QUEUE_SATURATION = 0.75  # of muaalem_asr_queue_capacity, averaged over 2 minutes
DEGRADED_SHARE = 0.05  # of assessments missing a stage
LIVE_REJECTED_PER_S = 0.05  # three refused sessions a minute
GPU_MEMORY_SHARE = 0.9
# Rejections that say the mesh is short of room or failing, not that a caller was wrong.
LIVE_SERVER_REASONS = "capacity|draining|unavailable|internal"

RUNBOOK = "docs/operations.md"


@dataclass(frozen=True)
class Timing:
    """Scales every duration: 1 for production, 1/60 for the one-second integration test."""

    scale: float = 1.0

    def d(self, seconds: float) -> str:
        value = max(1, round(seconds * self.scale))
        for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
            if value % size == 0:
                return f"{value // size}{unit}"
        return f"{value}s"

    def w(self, name: str) -> str:
        return self.d(WINDOWS[name])


@dataclass(frozen=True)
class Alert:
    name: str
    expr: str
    for_s: int
    severity: str
    summary: str
    description: str
    anchor: str = field(default="")

    def rule(self, timing: Timing, runbook_base: str) -> dict[str, Any]:
        return {
            "alert": self.name,
            "expr": self.expr,
            "for": timing.d(self.for_s),
            "labels": {"severity": self.severity},
            "annotations": {
                "summary": self.summary,
                "description": self.description,
                "runbook_url": f"{runbook_base}#{self.anchor or self.name.lower()}",
            },
        }


def _error_ratio(selector: str, window: str, by: str = "") -> str:
    """Server errors over all calls; 0 (not an empty result) while there are calls and no errors."""
    errors = f'sum{by} (rate(muaalem_grpc_requests_total{{{selector},code=~"{SERVER_ERROR_CODES}"}}[{window}]))'
    calls = f"sum{by} (rate(muaalem_grpc_requests_total{{{selector}}}[{window}]))"
    return f"(\n{errors}\nor\n{calls} * 0\n)\n/\n{calls}"


def stage_rules(t: Timing) -> list[dict[str, Any]]:
    """Per stage (service and method): rate, error ratio, latency quantiles; asr batching; cache."""
    w = t.w("5m")
    rules: list[dict[str, Any]] = [
        {
            "record": "service_method:muaalem_grpc_requests:rate5m",
            "expr": f"sum by (service, method) (rate(muaalem_grpc_requests_total{{{NOT_PROBES}}}[{w}]))",
        },
        {
            "record": "service_method:muaalem_grpc_errors:ratio_rate5m",
            "expr": _error_ratio(NOT_PROBES, w, " by (service, method)"),
        },
    ]
    for quantile in ("0.5", "0.95", "0.99"):
        rules.append(
            {
                "record": "service_method:muaalem_grpc_request_duration_seconds:quantile_rate5m",
                "expr": (
                    f"histogram_quantile({quantile}, sum by (service, method, le) "
                    f"(rate(muaalem_grpc_request_duration_seconds_bucket{{{NOT_PROBES}}}[{w}])))"
                ),
                "labels": {"quantile": quantile},
            }
        )
    rules += [
        {
            "record": "queue:muaalem_asr_batch_size:mean_rate5m",
            "expr": (
                f"sum by (queue) (rate(muaalem_asr_batch_size_sum[{w}]))\n"
                f"/\nsum by (queue) (rate(muaalem_asr_batch_size_count[{w}]))"
            ),
        },
        {
            "record": "queue:muaalem_asr_queue_seconds:p95_rate5m",
            "expr": f"histogram_quantile(0.95, sum by (queue, le) (rate(muaalem_asr_queue_seconds_bucket[{w}])))",
        },
        {
            "record": "muaalem:reference_cache_hits:ratio_rate5m",
            "expr": (
                f'sum(rate(muaalem_reference_cache_lookups_total{{result="hit"}}[{w}]))\n'
                f"/\nsum(rate(muaalem_reference_cache_lookups_total[{w}]))"
            ),
        },
        {
            "record": "stage:muaalem_assessment_degraded:ratio_rate5m",
            "expr": (
                f"sum by (stage) (rate(muaalem_assessment_degraded_stages_total[{w}]))\n"
                f"/ on () group_left ()\nsum(rate(muaalem_assessments_total[{w}]))"
            ),
        },
    ]
    return rules


def slo_rules(t: Timing) -> list[dict[str, Any]]:
    """The Assess SLIs over every window the burn-rate alerts read."""
    rules: list[dict[str, Any]] = []
    for name in WINDOWS:
        window = t.w(name)
        rules.append(
            {
                "record": f"muaalem:assess_errors:ratio_rate{name}",
                "expr": _error_ratio(ASSESS, window),
            }
        )
        rules.append(
            {
                "record": f"muaalem:assess_slow:ratio_rate{name}",
                "expr": (
                    f"1 - (\nsum(rate(muaalem_grpc_request_duration_seconds_bucket{{{ASSESS},"
                    f'le="{LATENCY_THRESHOLD_LE}"}}[{window}]))\n/\n'
                    f"sum(rate(muaalem_grpc_request_duration_seconds_count{{{ASSESS}}}[{window}]))\n)"
                ),
            }
        )
    return rules


def _burn(sli: str, objective: float, severities: set[str]) -> str:
    budget = round(1 - objective, 6)
    terms = [
        f"(muaalem:{sli}:ratio_rate{long} > ({rate} * {budget})"
        f" and muaalem:{sli}:ratio_rate{short} > ({rate} * {budget}))"
        for long, short, rate, severity in BURN_RATES
        if severity in severities
    ]
    return "\nor\n".join(terms)


def alerts() -> list[Alert]:
    return [
        Alert(
            "MuaalemAssessErrorBudgetBurn",
            _burn("assess_errors", AVAILABILITY_OBJECTIVE, {"critical"}),
            120,
            "critical",
            "Assess is failing fast enough to spend its 30-day error budget in days",
            "Server errors on GatewayService Assess burn the 99.5% availability budget at 6x or more "
            "(1 h and 5 min windows at 14.4x, or 6 h and 30 min at 6x).",
        ),
        Alert(
            "MuaalemAssessErrorBudgetBurnSlow",
            _burn("assess_errors", AVAILABILITY_OBJECTIVE, {"warning"}),
            900,
            "warning",
            "Assess errors are slowly spending the availability budget",
            "Server errors on GatewayService Assess burn the 99.5% availability budget at 1x to 3x "
            "(1 d and 2 h windows at 3x, or 3 d and 6 h at 1x).",
        ),
        Alert(
            "MuaalemAssessLatencyBudgetBurn",
            _burn("assess_slow", LATENCY_OBJECTIVE, {"critical"}),
            120,
            "critical",
            "Assess is too slow for its latency objective",
            "More Assess calls than the latency objective allows (99% within 10 s) take longer than 10 s, "
            "at a burn rate of 6x or more.",
        ),
        Alert(
            "MuaalemAssessLatencyBudgetBurnSlow",
            _burn("assess_slow", LATENCY_OBJECTIVE, {"warning"}),
            900,
            "warning",
            "Assess latency is slowly spending its budget",
            "Assess calls over 10 s burn the latency budget (99% within 10 s) at 1x to 3x.",
        ),
        Alert(
            "MuaalemAsrQueueSaturated",
            f"avg_over_time(muaalem_asr_queue_depth[{{w2m}}]) / muaalem_asr_queue_capacity > {QUEUE_SATURATION}",
            120,
            "warning",
            "An asr batching queue is close to full",
            "The {{ $labels.queue }} queue of an asr pod has held more than 75% of its capacity for minutes; "
            "past 100% calls are refused with RESOURCE_EXHAUSTED.",
        ),
        Alert(
            "MuaalemAsrRequestsDropped",
            "sum by (namespace, pod, queue, reason) "
            '(rate(muaalem_asr_dropped_total{reason=~"queue_full|deadline"}[{w5m}])) > 0',
            300,
            "warning",
            "The asr stage is dropping model inputs",
            "asr inputs of the {{ $labels.queue }} queue are dropped ({{ $labels.reason }}): the queue was full "
            "or the caller's deadline passed while they waited.",
        ),
        Alert(
            "MuaalemModelNotReady",
            "muaalem_service_ready == 0",
            600,
            "critical",
            "A service has not been ready for 10 minutes",
            "{{ $labels.service }} reports NOT_SERVING (for asr: its model is not loaded).",
        ),
        Alert(
            "MuaalemRedisCircuitOpen",
            "min_over_time(muaalem_reference_cache_breaker_state[{w2m}]) >= 1",
            60,
            "warning",
            "The reference cache skips Redis",
            "A gateway's circuit breaker in front of Redis has not been closed for minutes: references are "
            "phonetized per gateway and kept in its in-process LRU.",
        ),
        Alert(
            "MuaalemDegradedAnswers",
            f"stage:muaalem_assessment_degraded:ratio_rate5m > {DEGRADED_SHARE}",
            300,
            "warning",
            "Assessments come back without a stage",
            f"More than {DEGRADED_SHARE:.0%} of assessments are partial answers "
            "without the {{ $labels.stage }} stage.",
        ),
        Alert(
            "MuaalemLiveSessionsRejected",
            f'sum by (reason) (rate(muaalem_live_sessions_rejected_total{{reason=~"{LIVE_SERVER_REASONS}"}}[{{w5m}}])) '
            f"> {LIVE_REJECTED_PER_S}",
            300,
            "warning",
            "Live sessions are being refused",
            "The gateways refuse or end live sessions ({{ $labels.reason }}) more than three times a minute.",
        ),
        Alert(
            "MuaalemGpuMemoryNearLimit",
            f"muaalem_asr_gpu_peak_memory_bytes / muaalem_asr_gpu_memory_total_bytes > {GPU_MEMORY_SHARE}",
            300,
            "warning",
            "An asr pod's GPU memory peak is near the device's size",
            "The model on {{ $labels.device }} has used over 90% of the GPU's memory at its peak: a larger "
            "batch or a longer window can run out of memory.",
        ),
    ]


def _windowed(expr: str, t: Timing) -> str:
    """Fills the {w2m}/{w5m} placeholders of an alert's own range windows."""
    return expr.replace("{w2m}", t.d(120)).replace("{w5m}", t.d(300))


def groups(timing: Timing | None = None, runbook_base: str = RUNBOOK) -> list[dict[str, Any]]:
    t = timing or Timing()
    interval = {} if t.scale == 1.0 else {"interval": t.d(30)}
    alert_rules = []
    for alert in alerts():
        rule = alert.rule(t, runbook_base)
        rule["expr"] = _windowed(rule["expr"], t)
        alert_rules.append(rule)
    return [
        {"name": "muaalem-stages", **interval, "rules": stage_rules(t)},
        {"name": "muaalem-slo-assess", **interval, "rules": slo_rules(t)},
        {"name": "muaalem-alerts", **interval, "rules": alert_rules},
    ]


def rules_file(timing: Timing | None = None, runbook_base: str = RUNBOOK) -> dict[str, Any]:
    return {"groups": groups(timing, runbook_base)}


def prometheus_rule(runbook_base: str = RUNBOOK) -> dict[str, Any]:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "muaalem",
            "namespace": "muaalem",
            # kube-prometheus-stack selects rules by this label (its ruleSelector); set yours.
            "labels": {"app.kubernetes.io/part-of": "muaalem", "release": "kube-prometheus-stack"},
        },
        "spec": {"groups": groups(Timing(), runbook_base)},
    }
