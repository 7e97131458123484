"""The stage reports of a followed recitation: one report per stage over all its stretches.

Each stretch calls the stages on its own (the asr per window, a reference per stretch, the
alignment and the rules per judged stretch); the Assessment reports each stage once: its time
summed, its status the worst that mattered (a failure anywhere degrades the answer; a stage
that ran somewhere and was skipped elsewhere ran), the first failure's message.
"""

from __future__ import annotations

from collections.abc import Iterable

from services.common.pb import common_pb2

# The order of the Assess flow: the reports read as the stages run.
ORDER = (
    "audio",
    "reference",
    "asr",
    "energy",
    "prosody",
    "verification",
    "alignment",
    "tajweed",
    # A stretch's letter errors, weighed again by its frame phases (follow/judge.py).
    "asr_phases",
    "comparison",
    "fusion",
)
_BAD = (
    common_pb2.STAGE_STATUS_UNAVAILABLE,
    common_pb2.STAGE_STATUS_DEADLINE_EXCEEDED,
    common_pb2.STAGE_STATUS_FAILED,
)


def merged(reports: Iterable[common_pb2.StageReport]) -> list[common_pb2.StageReport]:
    by_stage: dict[str, list[common_pb2.StageReport]] = {}
    for report in reports:
        by_stage.setdefault(report.stage, []).append(report)
    names = sorted(by_stage, key=lambda s: (ORDER.index(s) if s in ORDER else len(ORDER), s))
    return [_one(name, by_stage[name]) for name in names]


def _one(stage: str, reports: list[common_pb2.StageReport]) -> common_pb2.StageReport:
    bad = [r for r in reports if r.status in _BAD]
    ran = [r for r in reports if r.status == common_pb2.STAGE_STATUS_OK]
    chosen = bad[0] if bad else ran[0] if ran else reports[0]
    out = common_pb2.StageReport(
        stage=stage,
        status=chosen.status,
        duration_ms=sum(r.duration_ms for r in reports),
        message=chosen.message,
    )
    timings: dict[str, float] = {}
    for report in reports:
        for timing in report.timings:
            timings[timing.stage] = timings.get(timing.stage, 0.0) + timing.duration_ms
    out.timings.extend(common_pb2.StageTiming(stage=k, duration_ms=v) for k, v in timings.items())
    return out


def degraded(reports: Iterable[common_pb2.StageReport]) -> list[str]:
    return [r.stage for r in reports if r.status in _BAD]
