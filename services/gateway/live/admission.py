"""Which live sessions a gateway takes: up to what the asr keeps up with, a few per key.

A queue in front of a CPU asr that serves more sessions than its real-time factor allows makes
every session late, and some never answered (4 sessions of 15 s on 2 cores: 3 of 4 final
Assessments empty after a 22 s deadline). So a session over the capacity (set, or measured from
the asr's own timings: gateway/asr_pace.py) is refused at
once, before any work is done for it, with RESOURCE_EXHAUSTED and when to try again, and the
admitted ones keep their pace. Capacity, admissions and refusals are metrics (metrics.py).
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator

from services.common.errors import (
    DeadlineExceeded,
    InvalidArgument,
    MeshError,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)
from services.gateway import metrics
from services.gateway.asr_pace import AsrPace
from services.gateway.live.settings import LiveSettings


class SessionRefused(ResourceExhausted):
    """Refused for the gateway's capacity (try again later) or the key's share of it."""

    def __init__(self, message: str, *, reason: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.retry_after_s = retry_after_s


class IdleTimeout(DeadlineExceeded):
    """The client sent nothing for MUAALEM_LIVE_IDLE_TIMEOUT_S: its side of the session failed
    (a WebSocket closes with 1008, not 1011)."""


class Admission:
    """The sessions open now, per API key name, against the capacity set or measured (pace)."""

    def __init__(self, pace: AsrPace | None = None) -> None:
        self.open: Counter[str] = Counter()
        self.pace = pace

    def capacity(self, settings: LiveSettings) -> int:
        if self.pace is not None:
            self.pace.asr_replicas, self.pace.gateway_replicas = settings.asr_replicas, settings.gateway_replicas
            rtf = self.pace.rtf
            if rtf is not None:
                metrics.ASR_REALTIME_FACTOR.set(rtf)
        capacity = settings.admitted_at_once(self.pace.capacity() if self.pace is not None else None)
        metrics.LIVE_SESSIONS_CAPACITY.set(capacity)
        return capacity

    @property
    def active(self) -> int:
        return sum(self.open.values())

    @contextlib.contextmanager
    def admit(self, name: str, settings: LiveSettings) -> Iterator[None]:
        """A place for one session of `name`, held until the block ends; refused at once if none."""
        capacity = self.capacity(settings)
        if self.active >= capacity:
            retry = settings.retry_after_s
            raise SessionRefused(
                f"this gateway is at its capacity of {capacity} live sessions (what its asr keeps up with "
                f"at real time); try again in {retry:.0f} s",
                reason="capacity",
                retry_after_s=retry,
            )
        if self.open[name] >= settings.max_sessions_per_key:
            # Sessions last minutes: the hint is the gateway's, not a token bucket's second.
            raise SessionRefused(
                f"this API key holds {self.open[name]} live sessions, the most allowed at once; close one first",
                reason="limit",
                retry_after_s=settings.retry_after_s,
            )
        self.open[name] += 1
        metrics.LIVE_SESSIONS_ADMITTED.inc()
        metrics.LIVE_SESSIONS_ACTIVE.set(self.active)
        try:
            yield
        finally:
            self.open[name] -= 1
            if self.open[name] <= 0:
                del self.open[name]
            metrics.LIVE_SESSIONS_ACTIVE.set(self.active)


def rejection_reason(exc: MeshError, draining: bool) -> str:
    """The `reason` label of a session the server refused or ended with `exc`."""
    if isinstance(exc, SessionRefused):
        return exc.reason
    if isinstance(exc, IdleTimeout):
        return "idle"
    if isinstance(exc, Unavailable):
        return "draining" if draining else "unavailable"
    if isinstance(exc, DeadlineExceeded):
        return "unavailable"  # a stage too slow for the final's deadline
    if isinstance(exc, Unauthenticated) or exc.code == "PERMISSION_DENIED":
        return "unauthenticated"
    if isinstance(exc, ResourceExhausted):
        return "limit"
    if isinstance(exc, InvalidArgument) or exc.code == "FAILED_PRECONDITION":
        return "invalid"
    return "internal"
