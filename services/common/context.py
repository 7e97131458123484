"""Per-call context that must cross stages: the request id and the caller's deadline.

The server interceptor sets both from the incoming call; the client interceptor reads them
so every downstream call carries the same request id and no more than the time the
original caller has left.
"""

from __future__ import annotations

import contextvars
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

REQUEST_ID_HEADER = "x-request-id"
# A downstream call gets the caller's remaining time minus this, so that the caller still
# has time to build a partial answer when the stage is late.
DEFAULT_DEADLINE_MARGIN_S = 0.05

_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("deadline", default=None)


def new_request_id() -> str:
    return uuid.uuid4().hex[:16]


def request_id() -> str | None:
    return _request_id.get()


def deadline() -> float | None:
    """Absolute time.monotonic() deadline of the current call, or None."""
    return _deadline.get()


def remaining(margin_s: float = 0.0) -> float | None:
    """Seconds left before the current call's deadline (never negative), or None."""
    end = _deadline.get()
    if end is None:
        return None
    return max(0.0, end - time.monotonic() - margin_s)


def bound_timeout(timeout: float | None, margin_s: float = DEFAULT_DEADLINE_MARGIN_S) -> float | None:
    """The timeout for a downstream call: the smaller of `timeout` and the time left."""
    left = remaining(margin_s)
    if left is None:
        return timeout
    if timeout is None:
        return left
    return min(timeout, left)


@contextmanager
def call_scope(rid: str | None, time_remaining_s: float | None) -> Iterator[str]:
    """Binds a request id (generated when missing) and a deadline for the current task."""
    resolved = rid or new_request_id()
    rid_token = _request_id.set(resolved)
    end = None if time_remaining_s is None else time.monotonic() + time_remaining_s
    deadline_token = _deadline.set(end)
    try:
        yield resolved
    finally:
        _request_id.reset(rid_token)
        _deadline.reset(deadline_token)


@contextmanager
def deadline_at_most(seconds: float) -> Iterator[None]:
    """Tightens the current deadline to at most `seconds` from now (a server's own default
    when the caller sent none, or a shorter one)."""
    end = time.monotonic() + seconds
    current = _deadline.get()
    token = _deadline.set(end if current is None else min(current, end))
    try:
        yield
    finally:
        _deadline.reset(token)
