"""Waiting for a condition instead of sleeping a guessed time: a test that polls is as fast as
the machine allows and fails with a message (not a flaky assertion) when the machine is slow."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(condition: Callable[[], T], *, timeout_s: float = 10.0, interval_s: float = 0.02, what: str = "") -> T:
    """Polls `condition` until it returns something truthy (returned); TimeoutError after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"not within {timeout_s} s: {what or getattr(condition, '__name__', 'condition')}")
        time.sleep(interval_s)


async def eventually(
    condition: Callable[[], T | Awaitable[T]], *, timeout_s: float = 10.0, interval_s: float = 0.01, what: str = ""
) -> T:
    """wait_until for a coroutine: `condition` may be sync or async; the loop keeps running."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if time.monotonic() >= deadline:
            raise TimeoutError(f"not within {timeout_s} s: {what or getattr(condition, '__name__', 'condition')}")
        await asyncio.sleep(interval_s)
