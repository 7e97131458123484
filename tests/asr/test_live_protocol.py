"""TranscribeLive's protocol without a network (services/asr/live.py over the demo engine): what
only shows in process, such as the tasks it leaves when its caller stops listening."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np
import pytest

from services.asr.engine import AsrEngine
from services.asr.live import LiveLimits, transcribe_live
from services.common.errors import ResourceExhausted
from services.common.pb import asr_pb2, common_pb2
from tests.asr import support

RATE = support.RATE
LIMITS = LiveLimits(max_ahead_s=30.0, idle_s=30.0)
F32 = common_pb2.RawPcm(sample_rate_hz=RATE, channels=1, encoding=common_pb2.PCM_ENCODING_F32LE)


@pytest.fixture(scope="module")
async def engine() -> AsyncIterator[AsrEngine]:
    started = AsrEngine(support.demo_config())
    await started.start()
    yield started
    await started.close()


def readers() -> list[asyncio.Task[object]]:
    return [t for t in asyncio.all_tasks() if t.get_name() == "transcribe-live-reader" and not t.done()]


async def requests(
    samples: np.ndarray,
    *,
    chunk: int = RATE // 2,
    then_wait: asyncio.Event | None = None,
    between: asyncio.Event | None = None,
) -> AsyncIterator[asr_pb2.TranscribeLiveRequest]:
    """config, the audio in chunks (waiting for `between` after the first), end (after
    `then_wait`)."""
    yield asr_pb2.TranscribeLiveRequest(config=asr_pb2.TranscribeLiveConfig(session_id="s", pcm_format=F32))
    for start in range(0, samples.size, chunk):
        if start and between is not None:
            await between.wait()
        yield asr_pb2.TranscribeLiveRequest(audio=samples[start : start + chunk].astype("<f4").tobytes())
    if then_wait is not None:
        await then_wait.wait()  # a client that neither ends nor goes away
    yield asr_pb2.TranscribeLiveRequest(end=asr_pb2.TranscribeLiveEnd())


async def test_a_caller_that_stops_listening_leaves_no_reader(engine: AsrEngine) -> None:
    never = asyncio.Event()
    answers = transcribe_live(requests(support.recording("test.wav"), then_wait=never), engine.streaming, LIMITS)
    first = await anext(answers)
    assert first.progress.frames_computed == 75
    assert readers()
    await answers.aclose()
    assert not readers()


async def test_progress_follows_every_run_and_the_transcription_comes_last(engine: AsrEngine) -> None:
    samples = support.recording("test.wav")  # 8.8 s: cores 0-3, 3-6 s while it arrives, the rest at end
    answers = [a async for a in transcribe_live(requests(samples), engine.streaming, LIMITS)]
    kinds = [a.WhichOneof("part") for a in answers]
    assert kinds[-1] == "transcription" and set(kinds[:-1]) == {"progress"}
    # How windows group into runs depends on when the audio arrived; the frames only grow.
    frames = [a.progress.frames_computed for a in answers[:-1]]
    assert frames == sorted(set(frames)) and frames[0] == 75 and frames[-1] == 219
    assert answers[-1].transcription.num_frames == 219


async def test_the_ahead_limit_counts_audio_not_yet_encoded(engine: AsrEngine) -> None:
    limits = LiveLimits(max_ahead_s=5.0, idle_s=30.0)
    samples = support.recording("test.wav")
    # 4.5 s, then (once the first window, 3 s kept, has run) 1.5 s more: 6 s sent, 3 s ahead.
    ran = asyncio.Event()
    answers = transcribe_live(
        requests(samples[: 6 * RATE], chunk=int(4.5 * RATE), between=ran), engine.streaming, limits
    )
    assert (await anext(answers)).progress.frames_computed == 75
    ran.set()
    assert [a.WhichOneof("part") async for a in answers][-1] == "transcription"
    # The same 6 s at once: nothing is computed yet.
    with pytest.raises(ResourceExhausted, match=r"6\.0 s of audio ahead of the encoder"):
        async for _ in transcribe_live(requests(samples[: 6 * RATE], chunk=6 * RATE), engine.streaming, limits):
            pass
