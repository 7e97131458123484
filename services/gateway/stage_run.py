"""Bookkeeping of one assessment's stages: what ran, how long, and how each ended.

A stage that fails or is late does not fail the assessment; it is recorded here and the
answer says which parts are missing (design: a partial answer that says so, never a hang).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from services.common import tracing
from services.common.errors import DeadlineExceeded, FailedPrecondition, InvalidArgument, MeshError
from services.common.pb import common_pb2

log = logging.getLogger(__name__)
T = TypeVar("T")

_STATUS_BY_ERROR: dict[type[MeshError], int] = {
    DeadlineExceeded: common_pb2.STAGE_STATUS_DEADLINE_EXCEEDED,
    InvalidArgument: common_pb2.STAGE_STATUS_FAILED,
    FailedPrecondition: common_pb2.STAGE_STATUS_FAILED,
}


def _status_for(exc: MeshError) -> int:
    for error_type, status in _STATUS_BY_ERROR.items():
        if isinstance(exc, error_type):
            return status
    return common_pb2.STAGE_STATUS_UNAVAILABLE


@dataclass
class StageLedger:
    reports: list[common_pb2.StageReport] = field(default_factory=list)

    async def run(
        self,
        stage: str,
        call: Callable[[], Awaitable[T]],
        timings: Callable[[Any], Iterable[common_pb2.StageTiming]] | None = None,
        *,
        raises: tuple[type[MeshError], ...] = (),
    ) -> T | None:
        """Runs a stage; its failure becomes a report and None, except errors of the `raises`
        types, which are the caller's to hear (the input itself cannot be served)."""
        # The report takes its place when the stage starts, so that stages run side by side are
        # listed in a fixed order, not in the order they happened to finish.
        report = common_pb2.StageReport(stage=stage)
        self.reports.append(report)
        started = time.perf_counter()
        # The stage's span is current during the call: a remote stage's server span is its child.
        with tracing.span(f"stage {stage}", stage=stage) as span:
            try:
                result = await call()
            except MeshError as exc:
                if isinstance(exc, raises):
                    self.reports.remove(report)
                    raise
                report.status = _status_for(exc)  # type: ignore[assignment]
                report.duration_ms = (time.perf_counter() - started) * 1000
                report.message = exc.message
                span.set_attribute(tracing.STAGE_STATUS, common_pb2.StageStatus.Name(report.status))
                tracing.set_error(span, exc.code, exc.message)
                log.warning("stage degraded", extra={"stage": stage, "error": exc.message, "code": exc.code})
                return None
            span.set_attribute(tracing.STAGE_STATUS, "STAGE_STATUS_OK")
        report.status = common_pb2.STAGE_STATUS_OK
        report.duration_ms = (time.perf_counter() - started) * 1000
        if timings is not None:
            report.timings.extend(timings(result))
        return result

    def record(self, stage: str, status: int, duration_ms: float = 0.0, message: str = "") -> None:
        self.reports.append(
            common_pb2.StageReport(stage=stage, status=status, duration_ms=duration_ms, message=message)  # type: ignore[arg-type]
        )

    def degraded(self) -> list[str]:
        """Stages that did not answer (skipped stages are not degraded: they had nothing to do)."""
        bad = {
            common_pb2.STAGE_STATUS_UNAVAILABLE,
            common_pb2.STAGE_STATUS_DEADLINE_EXCEEDED,
            common_pb2.STAGE_STATUS_FAILED,
        }
        return [r.stage for r in self.reports if r.status in bad]
