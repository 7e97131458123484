"""The dynamic batcher on a stand-in model that records every batch it is handed."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator

import pytest

from services.asr.batching import DynamicBatcher
from services.common import context
from services.common.errors import DeadlineExceeded, ResourceExhausted
from tests.polling import eventually


class RecordingModel:
    """Doubles its inputs; can be held mid-batch to let a queue build up behind it."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def __call__(self, items: list[int]) -> list[int]:
        self.batches.append(list(items))
        self.entered.set()
        self.gate.wait(10)
        return [2 * i for i in items]

    @property
    def seen(self) -> list[int]:
        return [i for batch in self.batches for i in batch]


async def make(model: RecordingModel, **kwargs: object) -> DynamicBatcher[int, int]:
    options: dict[str, object] = {
        "name": "test",
        "max_batch_size": 4,
        "max_queue_delay_s": 0.05,
        "max_queue_size": 16,
    }
    options.update(kwargs)
    batcher: DynamicBatcher[int, int] = DynamicBatcher(model, **options)  # type: ignore[arg-type]
    batcher.start()
    return batcher


@pytest.fixture
async def model() -> AsyncIterator[RecordingModel]:
    recording = RecordingModel()
    yield recording
    recording.gate.set()


async def hold(model: RecordingModel, batcher: DynamicBatcher[int, int]) -> asyncio.Task[object]:
    """Occupies the worker with input 0 until model.gate is set."""
    model.gate.clear()
    model.entered.clear()
    task = asyncio.create_task(batcher.infer([0]))
    await asyncio.to_thread(model.entered.wait, 5)
    return task


async def test_concurrent_callers_share_batches(model: RecordingModel) -> None:
    batcher = await make(model)
    try:
        results = await asyncio.gather(*(batcher.infer([i]) for i in range(1, 9)))
        assert [r[0].value for r in results] == [2 * i for i in range(1, 9)]
        assert sorted(len(b) for b in model.batches) == [4, 4]
        assert {r[0].batch_size for r in results} == {4}
        assert batcher.depth == 0
    finally:
        await batcher.close()


async def test_batches_grow_while_the_model_is_busy(model: RecordingModel) -> None:
    batcher = await make(model, max_batch_size=8, max_queue_delay_s=0.0)
    try:
        first = await hold(model, batcher)
        waiting = [asyncio.create_task(batcher.infer([i])) for i in range(1, 6)]
        await eventually(lambda: batcher.depth == 5, what="five inputs queued")
        model.gate.set()
        await first
        await asyncio.gather(*waiting)
        assert model.batches == [[0], [1, 2, 3, 4, 5]]
    finally:
        await batcher.close()


async def test_length_buckets_keep_lengths_apart(model: RecordingModel) -> None:
    batcher = await make(model, length_of=lambda i: i, bucket_width=50)
    try:
        await asyncio.gather(*(batcher.infer([i]) for i in (10, 100, 12, 105, 30, 140)))
        assert sorted(sorted(b) for b in model.batches) == [[10, 12, 30], [100, 105, 140]]
    finally:
        await batcher.close()


async def test_batching_off_runs_inputs_one_by_one_in_order(model: RecordingModel) -> None:
    batcher = await make(model, max_batch_size=1, max_queue_delay_s=1.0)
    try:
        started = time.monotonic()
        await asyncio.gather(*(batcher.infer([i]) for i in range(5)))
        # A full (size-1) bucket never waits for the queue delay.
        assert time.monotonic() - started < 1.0
        assert model.batches == [[0], [1], [2], [3], [4]]
    finally:
        await batcher.close()


async def test_a_long_request_is_fed_in_groups_of_one_batch(model: RecordingModel) -> None:
    batcher = await make(model, max_batch_size=3, max_queue_size=4)
    try:
        results = await batcher.infer(list(range(10)))
        assert [r.value for r in results] == [2 * i for i in range(10)]
        assert [len(b) for b in model.batches] == [3, 3, 3, 1]
    finally:
        await batcher.close()


async def test_full_queue_is_resource_exhausted(model: RecordingModel) -> None:
    batcher = await make(model, max_queue_size=3, max_queue_delay_s=0.0)
    try:
        first = await hold(model, batcher)
        waiting = [asyncio.create_task(batcher.infer([i])) for i in (1, 2, 3)]
        await eventually(lambda: batcher.depth == 3, what="the queue full")
        with pytest.raises(ResourceExhausted) as caught:
            await batcher.infer([4])
        assert caught.value.code == "RESOURCE_EXHAUSTED"
        assert "queue is full" in caught.value.message and "3" in caught.value.message
        model.gate.set()
        await asyncio.gather(first, *waiting)
        assert 4 not in model.seen
        # Room again once the queue drained.
        assert (await batcher.infer([5]))[0].value == 10
    finally:
        await batcher.close()


async def test_cancelled_caller_never_reaches_the_model(model: RecordingModel) -> None:
    batcher = await make(model, max_queue_delay_s=0.0)
    try:
        first = await hold(model, batcher)
        doomed = asyncio.create_task(batcher.infer([7, 8]))
        kept = asyncio.create_task(batcher.infer([9]))
        await eventually(lambda: batcher.depth == 3, what="three inputs queued")
        doomed.cancel()
        await asyncio.sleep(0)
        model.gate.set()
        await first
        assert (await kept)[0].value == 18
        assert doomed.cancelled()
        assert 7 not in model.seen and 8 not in model.seen
        assert model.seen == [0, 9]
        assert batcher.depth == 0
    finally:
        await batcher.close()


async def test_expired_deadline_never_reaches_the_model(model: RecordingModel) -> None:
    batcher = await make(model, max_queue_delay_s=0.0)
    try:
        first = await hold(model, batcher)

        async def late_call() -> object:
            with context.call_scope(None, 0.05):
                return await batcher.infer([42])

        late = asyncio.create_task(late_call())
        # Time itself is under test here (not a guess at how long something takes): the caller's
        # 50 ms deadline passes while its input waits behind the held batch.
        await asyncio.sleep(0.15)
        model.gate.set()
        await first
        with pytest.raises(DeadlineExceeded, match="deadline passed"):
            await late
        assert 42 not in model.seen
    finally:
        await batcher.close()


async def test_model_failure_reaches_every_caller_and_the_batcher_survives() -> None:
    calls: list[list[int]] = []

    def flaky(items: list[int]) -> list[int]:
        calls.append(items)
        if len(calls) == 1:
            raise RuntimeError("out of memory")
        return items

    batcher: DynamicBatcher[int, int] = DynamicBatcher(
        flaky, name="test", max_batch_size=4, max_queue_delay_s=0.02, max_queue_size=8
    )
    batcher.start()
    try:
        outcomes = await asyncio.gather(batcher.infer([1]), batcher.infer([2]), return_exceptions=True)
        assert all(isinstance(o, RuntimeError) for o in outcomes)
        assert (await batcher.infer([3]))[0].value == 3
    finally:
        await batcher.close()


async def test_the_event_loop_stays_responsive_while_the_model_runs() -> None:
    def slow(items: list[int]) -> list[int]:
        time.sleep(0.3)
        return items

    batcher: DynamicBatcher[int, int] = DynamicBatcher(
        slow, name="test", max_batch_size=1, max_queue_delay_s=0.0, max_queue_size=8
    )
    batcher.start()
    try:
        call = asyncio.create_task(batcher.infer([1]))
        ticks = 0
        while not call.done():
            await asyncio.sleep(0.01)
            ticks += 1
        assert ticks >= 10
    finally:
        await batcher.close()
