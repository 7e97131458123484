"""A dynamic batcher: concurrent callers' model inputs share forward passes.

Inputs wait in a bounded queue, grouped in length buckets so that one batch pads little.
A batch starts when its bucket holds `max_batch_size` inputs, or when its oldest input has
waited `max_queue_delay_s`; while the model is busy, inputs keep arriving and the next batch
takes them all (up to the maximum), so batches grow with load and stay at one when idle.
An input whose caller has gone (its future cancelled) or whose deadline has passed is
removed before it reaches the model. The model runs in one dedicated worker thread: a forward
pass can take seconds, and the event loop must keep serving health checks and new calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from services.asr import metrics
from services.common import context
from services.common.errors import DeadlineExceeded, ResourceExhausted, Unavailable

log = logging.getLogger(__name__)

I = TypeVar("I")  # noqa: E741 (the input type)
R = TypeVar("R")


@dataclass(frozen=True)
class Batched(Generic[R]):
    """One input's result and how it was served."""

    value: R
    # Inputs of one request may run in several batches; this tells them apart.
    batch_id: int
    batch_size: int
    compute_s: float


@dataclass(eq=False)
class _Entry(Generic[I, R]):
    item: I
    bucket: int
    future: asyncio.Future[Batched[R]]
    enqueued: float
    deadline: float | None
    pending: bool = field(default=True)


class DynamicBatcher(Generic[I, R]):
    """Batches inputs for `run_batch`, which maps a list of inputs to one result per input.

    `length_of` gives an input's length in any unit; inputs share a batch only when
    `length // bucket_width` agrees (bucket_width 0: one bucket). max_batch_size 1 turns
    batching off: every input runs alone, in arrival order.
    """

    def __init__(
        self,
        run_batch: Callable[[list[I]], Sequence[R]],
        *,
        name: str,
        max_batch_size: int,
        max_queue_delay_s: float,
        max_queue_size: int,
        length_of: Callable[[I], int] | None = None,
        bucket_width: int = 0,
        executor: ThreadPoolExecutor | None = None,
    ) -> None:
        if max_batch_size < 1 or max_queue_size < 1:
            raise ValueError("max_batch_size and max_queue_size must be >= 1")
        self.name = name
        self.max_batch_size = max_batch_size
        self.max_queue_delay_s = max_queue_delay_s
        self.max_queue_size = max_queue_size
        self._run_batch = run_batch
        self._length_of = length_of
        self._bucket_width = bucket_width
        self._own_executor = executor is None
        self._executor = executor or ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{name}-model")
        self._buckets: dict[int, deque[_Entry[I, R]]] = {}
        self._depth = 0
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._batches = 0
        metrics.QUEUE_DEPTH.labels(name).set(0)
        metrics.QUEUE_CAPACITY.labels(name).set(max_queue_size)

    @property
    def depth(self) -> int:
        """Inputs waiting (not yet handed to the model)."""
        return self._depth

    def start(self) -> None:
        """Starts the dispatch loop on the running event loop."""
        if self._task is not None:
            return
        self._wakeup = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._dispatch_loop(), name=f"{self.name}-batcher")

    async def close(self) -> None:
        """Fails what is still waiting with UNAVAILABLE and stops the worker."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for queue in self._buckets.values():
            while queue:
                entry = queue.popleft()
                entry.pending = False
                if not entry.future.done():
                    entry.future.set_exception(Unavailable("the ASR service is shutting down"))
        self._depth = 0
        metrics.QUEUE_DEPTH.labels(self.name).set(0)
        if self._own_executor:
            self._executor.shutdown(wait=False, cancel_futures=True)

    async def infer(self, items: Sequence[I]) -> list[Batched[R]]:
        """Runs `items` through the model and returns their results in order.

        A request with more inputs than one batch holds is fed in groups of `max_batch_size`,
        one after the other, so that a long recording neither needs the whole queue at once
        nor keeps other callers out of it.
        """
        results: list[Batched[R]] = []
        for start in range(0, len(items), self.max_batch_size):
            results.extend(await self._submit(items[start : start + self.max_batch_size]))
        return results

    async def _submit(self, items: Sequence[I]) -> list[Batched[R]]:
        if self._closed or self._wakeup is None:
            raise Unavailable(f"the {self.name} batcher is not running (model not loaded or shutting down)")
        if self._depth + len(items) > self.max_queue_size:
            metrics.DROPPED.labels(self.name, "queue_full").inc(len(items))
            raise ResourceExhausted(
                f"the {self.name} queue is full: {self._depth} model inputs are waiting and the limit "
                f"is {self.max_queue_size} (MUAALEM_ASR_MAX_QUEUE_SIZE); retry later"
            )
        loop = asyncio.get_running_loop()
        now = time.monotonic()
        deadline = context.deadline()
        entries: list[_Entry[I, R]] = []
        for item in items:
            entry: _Entry[I, R] = _Entry(
                item=item, bucket=self._bucket_of(item), future=loop.create_future(), enqueued=now, deadline=deadline
            )
            entry.future.add_done_callback(functools.partial(self._forget_if_cancelled, entry))
            self._buckets.setdefault(entry.bucket, deque()).append(entry)
            entries.append(entry)
        self._set_depth(self._depth + len(entries))
        self._wakeup.set()
        futures = [e.future for e in entries]
        try:
            return list(await asyncio.gather(*futures))
        except BaseException:
            # One input failed or the caller is gone: the rest must not reach the model either.
            for future in futures:
                future.cancel()
            raise

    def _bucket_of(self, item: I) -> int:
        if self._length_of is None or self._bucket_width <= 0:
            return 0
        return self._length_of(item) // self._bucket_width

    def _set_depth(self, depth: int) -> None:
        self._depth = depth
        metrics.QUEUE_DEPTH.labels(self.name).set(depth)

    def _forget_if_cancelled(self, entry: _Entry[I, R], _future: object = None) -> None:
        if not entry.future.cancelled() or not entry.pending:
            return
        entry.pending = False
        self._buckets[entry.bucket].remove(entry)
        self._set_depth(self._depth - 1)
        metrics.DROPPED.labels(self.name, "cancelled").inc()

    def _drop_expired(self, now: float) -> None:
        for queue in self._buckets.values():
            for entry in [e for e in queue if e.deadline is not None and e.deadline <= now]:
                queue.remove(entry)
                entry.pending = False
                self._set_depth(self._depth - 1)
                if entry.future.done():  # cancelled too; its callback has not run yet
                    metrics.DROPPED.labels(self.name, "cancelled").inc()
                    continue
                metrics.DROPPED.labels(self.name, "deadline").inc()
                entry.future.set_exception(
                    DeadlineExceeded(f"the deadline passed while the input waited in the {self.name} queue")
                )

    def _ready_bucket(self, now: float) -> tuple[int | None, float | None]:
        """The bucket to run now, or (None, seconds until the oldest input is due)."""
        oldest: _Entry[I, R] | None = None
        for bucket, queue in self._buckets.items():
            if len(queue) >= self.max_batch_size:
                return bucket, None
            if queue and (oldest is None or queue[0].enqueued < oldest.enqueued):
                oldest = queue[0]
        if oldest is None:
            return None, None
        due = oldest.enqueued + self.max_queue_delay_s
        if now >= due:
            return oldest.bucket, None
        return None, due - now

    def _take(self, bucket: int) -> list[_Entry[I, R]]:
        """Pops up to one batch of live inputs; a cancellation whose callback has not run yet
        is caught here, so a caller that is gone never costs a forward pass."""
        queue = self._buckets[bucket]
        batch: list[_Entry[I, R]] = []
        while queue and len(batch) < self.max_batch_size:
            entry = queue.popleft()
            entry.pending = False
            self._set_depth(self._depth - 1)
            if entry.future.done():
                metrics.DROPPED.labels(self.name, "cancelled").inc()
                continue
            batch.append(entry)
        return batch

    async def _dispatch_loop(self) -> None:
        assert self._wakeup is not None
        while True:
            now = time.monotonic()
            self._drop_expired(now)
            bucket, wait_s = self._ready_bucket(now)
            if bucket is None:
                self._wakeup.clear()
                if wait_s is None:
                    await self._wakeup.wait()
                else:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wakeup.wait(), wait_s)
                continue
            batch = self._take(bucket)
            if not batch:
                continue
            try:
                await self._run(batch)
            except asyncio.CancelledError:
                for entry in batch:
                    if not entry.future.done():
                        entry.future.set_exception(Unavailable("the ASR service is shutting down"))
                raise

    async def _run(self, batch: list[_Entry[I, R]]) -> None:
        started = time.monotonic()
        size = len(batch)
        self._batches += 1
        batch_id = self._batches
        metrics.BATCH_SIZE.labels(self.name).observe(size)
        for entry in batch:
            metrics.QUEUE_TIME.labels(self.name).observe(started - entry.enqueued)
        loop = asyncio.get_running_loop()
        try:
            outputs = await loop.run_in_executor(self._executor, self._run_batch, [e.item for e in batch])
            if len(outputs) != size:
                raise RuntimeError(f"{self.name}: the model returned {len(outputs)} results for {size} inputs")
        except Exception as exc:
            log.exception("batch failed", extra={"queue": self.name, "batch_size": size})
            for entry in batch:
                if not entry.future.done():
                    entry.future.set_exception(exc)
            return
        compute_s = time.monotonic() - started
        metrics.COMPUTE_TIME.labels(self.name).observe(compute_s)
        for entry, output in zip(batch, outputs, strict=True):
            if not entry.future.done():
                entry.future.set_result(
                    Batched(
                        value=output,
                        batch_id=batch_id,
                        batch_size=size,
                        compute_s=compute_s,
                    )
                )
