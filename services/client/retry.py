"""The command line's retries: a call refused for now (RESOURCE_EXHAUSTED or UNAVAILABLE with a
google.rpc.RetryInfo in its status details) is made again after the delay the gateway named.

Bounded: a few attempts, each delay capped, every retry said on stderr. A refusal without a
hint is not retried: a message over the size limit or a gateway that cannot be reached will
not pass by waiting, and the caller hears so at once.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, TypeVar

import grpc

from services.client.options import DEFAULT_RETRIES
from services.common import rich_status

T = TypeVar("T")

RETRYABLE = frozenset({grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE})


@dataclass(frozen=True)
class RetryPolicy:
    # Attempts in all, the first included (1: no retry).
    attempts: int = 1 + DEFAULT_RETRIES
    # A longer hint is cut to this: the CLI's user waits at the terminal.
    max_delay_s: float = 30.0


def policy_from(args: argparse.Namespace) -> RetryPolicy:
    """The policy of the command line's --retries."""
    return RetryPolicy(attempts=1 + max(0, getattr(args, "retries", DEFAULT_RETRIES)))


def hinted_delay_s(exc: grpc.RpcError) -> float | None:
    """The delay the server asked for, or None where retrying is not the server's advice."""
    code = exc.code() if hasattr(exc, "code") else None
    if code not in RETRYABLE:
        return None
    trailing = exc.trailing_metadata() if hasattr(exc, "trailing_metadata") else None
    return rich_status.retry_delay_s(trailing)


def call_with_retries(
    call: Callable[[], T],
    *,
    what: str,
    policy: RetryPolicy = RetryPolicy(),
    may_retry: Callable[[], bool] = lambda: True,
    stderr: IO[str] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """call(), again after each hinted refusal while attempts remain and may_retry() (a stream
    that already gave events is not started over); the last refusal is raised."""
    attempt = 1
    while True:
        try:
            return call()
        except grpc.RpcError as exc:
            hint = hinted_delay_s(exc)
            if hint is None or attempt >= policy.attempts or not may_retry():
                raise
            # No jitter: the gateway spreads its callers itself and keeps what it promised each
            # one until a little after the moment it named (services.gateway.limits).
            delay = min(hint, policy.max_delay_s)
            print(
                f"{what}: {exc.code().name}: {exc.details()}; retrying in {delay:.1f} s "
                f"(attempt {attempt + 1} of {policy.attempts})",
                file=stderr or sys.stderr,
                flush=True,
            )
            sleep(delay)
            attempt += 1
