"""A circuit breaker: after K consecutive failures a dependency is skipped for a cooldown.

While open, callers do not wait on a dead server at all; when the cooldown ends one call goes
through as a probe (half-open), and its outcome closes or re-opens the circuit. A probe that
never reports (its caller was cancelled) does not wedge the breaker: another probe is allowed
one cooldown later.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class BreakerState(enum.IntEnum):
    """Values of the breaker-state gauge."""

    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        failure_threshold: int,
        cooldown_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[BreakerState], None] | None = None,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        self.name = name
        self.failure_threshold = failure_threshold
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._on_change = on_change
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._since = 0.0  # when the circuit opened, or when the last probe was let through

    @property
    def state(self) -> BreakerState:
        return self._state

    def allow(self) -> bool:
        """Whether a call may go to the dependency now."""
        if self._state is BreakerState.CLOSED:
            return True
        if self._clock() - self._since < self.cooldown_s:
            return False
        self._since = self._clock()
        self._set(BreakerState.HALF_OPEN)
        return True

    def record_success(self) -> None:
        self._failures = 0
        if self._state is not BreakerState.CLOSED:
            log.info("circuit closed: %s answers again", self.name)
            self._set(BreakerState.CLOSED)

    def record_failure(self) -> None:
        self._failures += 1
        if self._state is BreakerState.HALF_OPEN or (
            self._state is BreakerState.CLOSED and self._failures >= self.failure_threshold
        ):
            if self._state is BreakerState.CLOSED:
                log.warning(
                    "circuit opened: %s failed %d times in a row; skipping it for %.1f s between probes",
                    self.name,
                    self._failures,
                    self.cooldown_s,
                )
            self._since = self._clock()
            self._set(BreakerState.OPEN)

    def _set(self, state: BreakerState) -> None:
        if state is not self._state:
            self._state = state
            if self._on_change is not None:
                self._on_change(state)
