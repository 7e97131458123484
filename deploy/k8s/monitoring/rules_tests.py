"""promtool unit tests of the rules (`promtool test rules muaalem-rules*.test.yaml`): for every
alert, input series that make it fire and series that keep it quiet; for the recording rules,
the values they must compute. Generated with the rules, so that expected annotations follow
the rules' text."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from deploy.k8s.monitoring import rules

ASSESS_LABELS = 'service="gateway",method="/muaalem.v1.GatewayService/Assess"'
# Sampling and evaluation step of the day-long cases (their own test file).
SLOW = "5m"
POD = 'namespace="muaalem",pod="asr-0"'


@dataclass(frozen=True)
class Case:
    """One alert's behaviour on some input: `fires` lists the label sets expected at eval_time."""

    alert: str
    series: dict[str, str]
    eval_time: str
    fires: list[dict[str, str]] = field(default_factory=list)
    interval: str = "1m"


def _series(name: str, labels: str = "") -> str:
    return f"{name}{{{labels}}}" if labels else name


def cases() -> list[Case]:
    requests = "muaalem_grpc_requests_total"
    bucket = "muaalem_grpc_request_duration_seconds_bucket"
    count = "muaalem_grpc_request_duration_seconds_count"
    return [
        # 9% server errors for an hour: 14.4x the 0.5% budget in both the 1 h and 5 min windows.
        Case(
            "MuaalemAssessErrorBudgetBurn",
            {
                _series(requests, f'{ASSESS_LABELS},code="OK"'): "0+100x70",
                _series(requests, f'{ASSESS_LABELS},code="UNAVAILABLE"'): "0+10x70",
            },
            "65m",
            [{}],
        ),
        # Client mistakes (INVALID_ARGUMENT) spend no budget; 1% server errors is below 6x.
        Case(
            "MuaalemAssessErrorBudgetBurn",
            {
                _series(requests, f'{ASSESS_LABELS},code="OK"'): "0+100x70",
                _series(requests, f'{ASSESS_LABELS},code="INVALID_ARGUMENT"'): "0+50x70",
                _series(requests, f'{ASSESS_LABELS},code="INTERNAL"'): "0+1x70",
            },
            "65m",
        ),
        # 2% errors for a day: 4x the budget, a ticket but not a page (the day-long cases are
        # sampled every 5 minutes: a minute's resolution over 25 hours only costs test time).
        Case(
            "MuaalemAssessErrorBudgetBurnSlow",
            {
                _series(requests, f'{ASSESS_LABELS},code="OK"'): "0+490x305",
                _series(requests, f'{ASSESS_LABELS},code="DEADLINE_EXCEEDED"'): "0+10x305",
            },
            "25h",
            [{}],
            SLOW,
        ),
        Case(
            "MuaalemAssessErrorBudgetBurn",
            {
                _series(requests, f'{ASSESS_LABELS},code="OK"'): "0+98x70",
                _series(requests, f'{ASSESS_LABELS},code="DEADLINE_EXCEEDED"'): "0+2x70",
            },
            "65m",
        ),
        # 0.2% errors for a day: within budget.
        Case(
            "MuaalemAssessErrorBudgetBurnSlow",
            {
                _series(requests, f'{ASSESS_LABELS},code="OK"'): "0+499x305",
                _series(requests, f'{ASSESS_LABELS},code="INTERNAL"'): "0+1x305",
            },
            "25h",
            interval=SLOW,
        ),
        # 20% of calls over 10 s: 20x the 1% latency budget.
        Case(
            "MuaalemAssessLatencyBudgetBurn",
            {
                _series(bucket, f'{ASSESS_LABELS},le="10.0"'): "0+80x70",
                _series(count, ASSESS_LABELS): "0+100x70",
            },
            "65m",
            [{}],
        ),
        Case(
            "MuaalemAssessLatencyBudgetBurn",
            {
                _series(bucket, f'{ASSESS_LABELS},le="10.0"'): "0+100x70",
                _series(count, ASSESS_LABELS): "0+100x70",
            },
            "65m",
        ),
        # 2% slow for a day: a ticket.
        Case(
            "MuaalemAssessLatencyBudgetBurnSlow",
            {
                _series(bucket, f'{ASSESS_LABELS},le="10.0"'): "0+490x305",
                _series(count, ASSESS_LABELS): "0+500x305",
            },
            "25h",
            [{}],
            SLOW,
        ),
        Case(
            "MuaalemAssessLatencyBudgetBurnSlow",
            {
                _series(bucket, f'{ASSESS_LABELS},le="10.0"'): "0+500x305",
                _series(count, ASSESS_LABELS): "0+500x305",
            },
            "25h",
            interval=SLOW,
        ),
        Case(
            "MuaalemAsrQueueSaturated",
            {
                _series("muaalem_asr_queue_depth", f'{POD},queue="asr"'): "60x10",
                _series("muaalem_asr_queue_capacity", f'{POD},queue="asr"'): "64x10",
            },
            "6m",
            [{"namespace": "muaalem", "pod": "asr-0", "queue": "asr"}],
        ),
        Case(
            "MuaalemAsrQueueSaturated",
            {
                _series("muaalem_asr_queue_depth", f'{POD},queue="asr"'): "10x10",
                _series("muaalem_asr_queue_capacity", f'{POD},queue="asr"'): "64x10",
            },
            "6m",
        ),
        Case(
            "MuaalemAsrRequestsDropped",
            {_series("muaalem_asr_dropped_total", f'{POD},queue="asr",reason="queue_full"'): "0+5x20"},
            "10m",
            [{"namespace": "muaalem", "pod": "asr-0", "queue": "asr", "reason": "queue_full"}],
        ),
        # Callers that went away are not the stage's failure.
        Case(
            "MuaalemAsrRequestsDropped",
            {_series("muaalem_asr_dropped_total", f'{POD},queue="asr",reason="cancelled"'): "0+5x20"},
            "10m",
        ),
        Case(
            "MuaalemModelNotReady",
            {_series("muaalem_service_ready", f'{POD},service="asr"'): "0x20"},
            "12m",
            [{"namespace": "muaalem", "pod": "asr-0", "service": "asr"}],
        ),
        # Five minutes of loading, then ready.
        Case(
            "MuaalemModelNotReady",
            {_series("muaalem_service_ready", f'{POD},service="asr"'): "0x5 1x15"},
            "12m",
        ),
        # Open, half-open probes failing, open again: never closed.
        Case(
            "MuaalemRedisCircuitOpen",
            {_series("muaalem_reference_cache_breaker_state", 'pod="gateway-0"'): "1 2 1 2 1 2 1 2 1 2"},
            "6m",
            [{"pod": "gateway-0"}],
        ),
        # One blip that closed again.
        Case(
            "MuaalemRedisCircuitOpen",
            {_series("muaalem_reference_cache_breaker_state", 'pod="gateway-0"'): "0 1 2 0 0 0 0 0 0 0"},
            "6m",
        ),
        Case(
            "MuaalemDegradedAnswers",
            {
                _series("muaalem_assessments_total", 'outcome="complete"'): "0+90x20",
                _series("muaalem_assessments_total", 'outcome="degraded"'): "0+10x20",
                _series("muaalem_assessment_degraded_stages_total", 'stage="tajweed"'): "0+10x20",
            },
            "15m",
            [{"stage": "tajweed"}],
        ),
        Case(
            "MuaalemDegradedAnswers",
            {
                _series("muaalem_assessments_total", 'outcome="complete"'): "0+99x20",
                _series("muaalem_assessments_total", 'outcome="degraded"'): "0+1x20",
                _series("muaalem_assessment_degraded_stages_total", 'stage="tajweed"'): "0+1x20",
            },
            "15m",
        ),
        Case(
            "MuaalemLiveSessionsRejected",
            {_series("muaalem_live_sessions_rejected_total", 'reason="capacity"'): "0+6x20"},
            "15m",
            [{"reason": "capacity"}],
        ),
        # Callers without a key are refused, and that is no capacity problem.
        Case(
            "MuaalemLiveSessionsRejected",
            {_series("muaalem_live_sessions_rejected_total", 'reason="unauthenticated"'): "0+60x20"},
            "15m",
        ),
        Case(
            "MuaalemGpuMemoryNearLimit",
            {
                _series("muaalem_asr_gpu_peak_memory_bytes", f'{POD},device="cuda:0"'): "75e9x10",
                _series("muaalem_asr_gpu_memory_total_bytes", f'{POD},device="cuda:0"'): "80e9x10",
            },
            "7m",
            [{"namespace": "muaalem", "pod": "asr-0", "device": "cuda:0"}],
        ),
        Case(
            "MuaalemGpuMemoryNearLimit",
            {
                _series("muaalem_asr_gpu_peak_memory_bytes", f'{POD},device="cuda:0"'): "40e9x10",
                _series("muaalem_asr_gpu_memory_total_bytes", f'{POD},device="cuda:0"'): "80e9x10",
            },
            "7m",
        ),
    ]


def recording_tests() -> list[dict[str, Any]]:
    """Values the stage recording rules must compute."""
    requests = "muaalem_grpc_requests_total"
    transcribe = 'service="asr",method="/muaalem.v1.AsrService/Transcribe"'
    bucket = "muaalem_grpc_request_duration_seconds_bucket"
    series = {
        _series(requests, f'{transcribe},code="OK"'): "0+57x10",
        _series(requests, f'{transcribe},code="UNAVAILABLE"'): "0+3x10",
        # Health checks are not stage traffic.
        _series(requests, 'service="asr",method="/grpc.health.v1.Health/Check",code="OK"'): "0+600x10",
        # Every call between 0.5 and 1 s.
        _series(bucket, f'{transcribe},le="0.5"'): "0x10",
        _series(bucket, f'{transcribe},le="1.0"'): "0+60x10",
        _series(bucket, f'{transcribe},le="+Inf"'): "0+60x10",
        _series("muaalem_reference_cache_lookups_total", 'store="redis",result="hit"'): "0+45x10",
        _series("muaalem_reference_cache_lookups_total", 'store="redis",result="miss"'): "0+15x10",
        _series("muaalem_asr_batch_size_sum", 'queue="asr"'): "0+8x10",
        _series("muaalem_asr_batch_size_count", 'queue="asr"'): "0+4x10",
    }
    method = 'method="/muaalem.v1.AsrService/Transcribe",service="asr"'
    return [
        {
            "interval": "1m",
            "input_series": [{"series": s, "values": v} for s, v in series.items()],
            "promql_expr_test": [
                {
                    "expr": "service_method:muaalem_grpc_requests:rate5m",
                    "eval_time": "10m",
                    "exp_samples": [{"labels": f"service_method:muaalem_grpc_requests:rate5m{{{method}}}", "value": 1}],
                },
                {
                    "expr": "service_method:muaalem_grpc_errors:ratio_rate5m",
                    "eval_time": "10m",
                    "exp_samples": [
                        {"labels": f"service_method:muaalem_grpc_errors:ratio_rate5m{{{method}}}", "value": 0.05}
                    ],
                },
                {
                    "expr": 'service_method:muaalem_grpc_request_duration_seconds:quantile_rate5m{quantile="0.5"}',
                    "eval_time": "10m",
                    "exp_samples": [
                        {
                            "labels": "service_method:muaalem_grpc_request_duration_seconds:quantile_rate5m"
                            f'{{{method},quantile="0.5"}}',
                            "value": 0.75,
                        }
                    ],
                },
                {
                    "expr": "muaalem:reference_cache_hits:ratio_rate5m",
                    "eval_time": "10m",
                    "exp_samples": [{"labels": "muaalem:reference_cache_hits:ratio_rate5m", "value": 0.75}],
                },
                {
                    "expr": "queue:muaalem_asr_batch_size:mean_rate5m",
                    "eval_time": "10m",
                    "exp_samples": [{"labels": 'queue:muaalem_asr_batch_size:mean_rate5m{queue="asr"}', "value": 2}],
                },
            ],
        }
    ]


_LABEL = re.compile(r"\{\{ \$labels\.(\w+) \}\}")


def _annotations(alert: rules.Alert, labels: dict[str, str], runbook_base: str) -> dict[str, str]:
    rule = alert.rule(rules.Timing(), runbook_base)
    return {key: _LABEL.sub(lambda m: labels.get(m.group(1), ""), value) for key, value in rule["annotations"].items()}


def test_files(rule_file: str, runbook_base: str = rules.RUNBOOK) -> dict[str, dict[str, Any]]:
    """The promtool test files by evaluation interval: {"1m": ..., "5m": ...}."""
    by_name = {a.name: a for a in rules.alerts()}
    files: dict[str, dict[str, Any]] = {}
    for case in cases():
        alert = by_name[case.alert]
        expected = [
            {
                "exp_labels": {**labels, "severity": alert.severity},
                "exp_annotations": _annotations(alert, labels, runbook_base),
            }
            for labels in case.fires
        ]
        document = files.setdefault(
            case.interval, {"rule_files": [rule_file], "evaluation_interval": case.interval, "tests": []}
        )
        document["tests"].append(
            {
                "interval": case.interval,
                "input_series": [{"series": s, "values": v} for s, v in case.series.items()],
                "alert_rule_test": [{"eval_time": case.eval_time, "alertname": case.alert, "exp_alerts": expected}],
            }
        )
    files["1m"]["tests"].extend(recording_tests())
    return files
