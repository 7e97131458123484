"""The streaming recognizer (services/asr/streaming.py) on the demo checkpoint: its stitched
log-probs against a brute-force computation of the same windows, against the whole-segment path
where one window is the whole segment, independence from chunking, the cut at input_finished,
batching across streams, and misuse."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from services.asr.chunking import Piece
from services.asr.engine import AsrEngine
from services.asr.results import LogProbs, TranscribeOptions, Transcription
from services.asr.runners import ModelInput, split_batch
from services.asr.streaming import OnlineStream, StreamingRecognizer, WindowSettings
from services.common.errors import FailedPrecondition, InvalidArgument
from tests.asr import support

RATE = support.RATE
ALL = TranscribeOptions(include_log_probs=True)
# Several windows over the 15 s recording: cores of 2 s, 1 s before, 0.5 s after.
SMALL = WindowSettings(2.0, 1.0, 0.5)
# Log-mel frames computed in other block sizes differ in the last bits of a float32 product.
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
async def engine() -> AsyncIterator[AsrEngine]:
    started = AsrEngine(support.demo_config(MUAALEM_ASR_MAX_QUEUE_DELAY_MS="100"))
    await started.start()
    yield started
    await started.close()


def clip() -> np.ndarray:
    """15 s of recitation (24 kHz stereo in the file, 16 kHz mono here)."""
    return support.recording("002282_15.wav")


async def stream(
    recognizer: StreamingRecognizer,
    samples: np.ndarray,
    settings: WindowSettings,
    chunks: list[int] | None = None,
    *,
    options: TranscribeOptions = ALL,
    end: int | None = None,
) -> tuple[Transcription, OnlineStream]:
    """Feeds `samples` in chunks of the given sizes (cycled), decoding after each."""
    handle = recognizer.create_stream(options, settings=settings)
    sizes = chunks or [1600]
    position = index = 0
    while position < samples.size:
        size = sizes[index % len(sizes)]
        handle.accept_waveform(samples[position : position + size])
        position, index = position + size, index + 1
        await recognizer.decode(handle)
    handle.input_finished(end)
    return await recognizer.result(handle), handle


def reference_windows(num_samples: int, settings: WindowSettings, engine: AsrEngine) -> list[tuple[Piece, int, int]]:
    """(piece, first kept frame, end of kept frames) of every window, from the definition:
    cores of W frames while the audio reaches W + R frames past the core's start, then the rest."""
    frame = engine.geometry.frame_samples
    window, left, right = settings.frames(engine.geometry)
    total = engine.geometry.output_frames(num_samples)
    out = []
    start = 0
    while (start + window + right) * frame <= num_samples:
        out.append((Piece(max(0, start - left) * frame, (start + window + right) * frame), start, start + window))
        start += window
    if start < total:
        out.append((Piece(max(0, start - left) * frame, num_samples), start, total))
    return out


def prefix_normalised(engine: AsrEngine, samples: np.ndarray, piece: Piece) -> ModelInput:
    """A window's features normalised over the segment up to its end, written out in numpy."""
    extractor = engine._state().extractor
    import torch

    mel = extractor.log_mel_frames(samples[: piece.end]).numpy().astype(np.float64)
    mean, std = mel.mean(axis=0), np.sqrt(mel.var(axis=0, ddof=1) + 1e-7)
    own = mel[piece.start // 160 :]
    normalised = ((own - mean) / std).astype(np.float32)
    count = own.shape[0]
    padded = np.full((count + count % 2, normalised.shape[1]), extractor.padding_value, dtype=np.float32)
    padded[:count] = normalised
    mask = np.zeros(padded.shape[0], dtype=np.int64)
    mask[:count] = 1
    features = torch.from_numpy(padded.reshape(1, -1, 2 * padded.shape[1]))
    from services.asr.features import FeatureBatch

    batch = FeatureBatch(features, torch.from_numpy(mask[1::2][None].copy()), torch.tensor([-(-count // 2)]))
    return split_batch(batch, engine.geometry, [piece.length])[0]


def brute_force(engine: AsrEngine, samples: np.ndarray, settings: WindowSettings) -> LogProbs:
    """Every window run alone from the whole recording, its core pasted in place."""
    windows = reference_windows(samples.size, settings, engine)
    parts: dict[str, list[np.ndarray]] = {}
    for piece, keep_start, keep_end in windows:
        if settings.normalisation == "window":
            # The long-audio path's own features of a piece (runners.model_inputs).
            item = engine.model_inputs(samples, [piece])[0]
        else:
            item = prefix_normalised(engine, samples, piece)
        output = engine.forward([item])[0]
        first = piece.start // engine.geometry.frame_samples
        for level, values in output.items():
            parts.setdefault(level, []).append(values[keep_start - first : keep_end - first])
    return {level: np.concatenate(values) for level, values in parts.items()}


@pytest.mark.parametrize("normalisation", ["prefix", "window"])
async def test_stitched_log_probs_equal_the_windows_run_one_by_one(engine: AsrEngine, normalisation: str) -> None:
    samples = clip()
    settings = WindowSettings(SMALL.window_s, SMALL.left_s, SMALL.right_s, normalisation)  # type: ignore[arg-type]
    result, handle = await stream(engine.streaming, samples, settings, [1234, 4000, 160, 9999])
    expected = brute_force(engine, samples, settings)
    assert handle.stats.windows == len(reference_windows(samples.size, settings, engine)) >= 7
    assert result.num_frames == engine.geometry.output_frames(samples.size) == 375
    assert set(result.log_probs) == set(expected) == set(engine.vocabulary.levels)
    for level, values in expected.items():
        assert result.log_probs[level].shape == values.shape
        np.testing.assert_allclose(result.log_probs[level], values, atol=TOLERANCE, rtol=0, err_msg=level)


async def test_a_stream_within_one_window_is_the_whole_segment_path(engine: AsrEngine) -> None:
    """Shorter than W + R, the segment runs as one window at input_finished: normalised over the
    whole segment, with all of it as context, it must be the unary path's numbers."""
    samples = support.recording("test.wav")  # 8.8 s
    settings = WindowSettings(9.0, 2.0, 1.0)
    streamed, handle = await stream(engine.streaming, samples, settings, [3000, 777])
    whole = await engine.transcribe(samples, ALL)
    assert handle.stats.windows == 1 and streamed.num_frames == whole.num_frames == 219
    for level, values in whole.log_probs.items():
        np.testing.assert_allclose(streamed.log_probs[level], values, atol=TOLERANCE, rtol=0, err_msg=level)
    assert streamed.decode.phonemes == whole.decode.phonemes
    assert streamed.decode.tokens == whole.decode.tokens


async def test_the_result_does_not_depend_on_how_the_audio_was_chunked(engine: AsrEngine) -> None:
    samples = clip()
    one, _ = await stream(engine.streaming, samples, SMALL, [samples.size])
    many, handle = await stream(engine.streaming, samples, SMALL, [160, 333, 6400])
    assert handle.stats.windows > 1
    for level in one.log_probs:
        np.testing.assert_allclose(one.log_probs[level], many.log_probs[level], atol=TOLERANCE, rtol=0)
    assert one.decode.phonemes == many.decode.phonemes


async def test_windows_run_while_audio_arrives_and_the_end_runs_only_the_last(engine: AsrEngine) -> None:
    recognizer = engine.streaming
    samples = clip()
    handle = recognizer.create_stream(ALL, settings=SMALL)
    handle.accept_waveform(samples[: 2 * RATE])
    assert await recognizer.decode(handle) == 0  # 2 s: the first core (2 s) still waits for R
    handle.accept_waveform(samples[2 * RATE : 10 * RATE])
    assert await recognizer.decode(handle) == 4  # cores up to 8 s; the next needs 10.5 s
    assert handle.frames_computed == 200
    handle.accept_waveform(samples[10 * RATE :])
    handle.input_finished()
    windows_before_end = handle.stats.windows
    result = await recognizer.result(handle)
    # After the end: the cores up to 14 s (their R reached), then the last window. In a live
    # session decode runs after every chunk, so only the last is left at the end.
    assert handle.stats.windows == windows_before_end + 4
    assert [stage for stage, _ in result.timings] == [
        "features", "queue", "model", "model_after_end", "ctc_decode", "after_end",
    ]
    assert result.chunking == "stream" and result.num_frames == 375


async def test_input_finished_cuts_the_segment_where_it_says(engine: AsrEngine) -> None:
    """A live session learns that a segment ended after the pause it waited for: the audio
    after the end it names is not part of the segment."""
    samples = clip()
    end = 9 * RATE + 123
    cut, handle = await stream(engine.streaming, samples, SMALL, [1600], end=end)
    alone, _ = await stream(engine.streaming, samples[:end], SMALL, [1600])
    assert cut.num_frames == alone.num_frames == engine.geometry.output_frames(end)
    assert cut.audio_duration_s == pytest.approx(end / RATE)
    # The regular windows of the shorter stream (all but its last) saw the same audio in both.
    stop = reference_windows(end, SMALL, engine)[-2][2]
    assert stop > 150
    for level in cut.log_probs:
        np.testing.assert_allclose(cut.log_probs[level][:stop], alone.log_probs[level][:stop], atol=TOLERANCE)
    assert not np.allclose(cut.log_probs["phonemes"][stop:], alone.log_probs["phonemes"][stop:], atol=TOLERANCE)
    assert handle.received_samples == samples.size


async def test_windows_of_concurrent_streams_share_forward_passes(engine: AsrEngine) -> None:
    samples = clip()
    results = await asyncio.gather(
        stream(engine.streaming, samples, SMALL, [RATE]), stream(engine.streaming, samples[::-1].copy(), SMALL, [RATE])
    )
    assert max(result.batch_size for result, _ in results) == 2


async def test_completeness_without_a_segmenter_is_left_unset_as_in_the_unary_path(engine: AsrEngine) -> None:
    options = TranscribeOptions(detect_completeness=True)
    samples = support.recording("test.wav")
    streamed, _ = await stream(engine.streaming, samples, SMALL, options=options)
    assert streamed.is_complete is None and (await engine.transcribe(samples, options)).is_complete is None


async def test_misuse_is_refused_with_the_reason(engine: AsrEngine) -> None:
    recognizer = engine.streaming
    with pytest.raises(InvalidArgument, match="force_segmentation"):
        recognizer.create_stream(TranscribeOptions(force_segmentation=True))
    with pytest.raises(InvalidArgument, match="unknown level"):
        recognizer.create_stream(TranscribeOptions(levels=("phonemes", "tone")))
    handle = recognizer.create_stream()
    with pytest.raises(InvalidArgument, match="NaN"):
        handle.accept_waveform(np.array([0.0, np.nan], dtype=np.float32))
    with pytest.raises(InvalidArgument, match="mono"):
        handle.accept_waveform(np.zeros((2, 10), dtype=np.float32))
    with pytest.raises(FailedPrecondition, match="not ended"):
        await recognizer.result(handle)
    handle.accept_waveform(np.zeros(100, dtype=np.float32))
    with pytest.raises(InvalidArgument, match="at least 35 ms"):
        handle.input_finished()
    with pytest.raises(InvalidArgument, match="cannot end at sample 101"):
        handle.input_finished(101)
    handle.accept_waveform(np.zeros(RATE, dtype=np.float32))
    handle.input_finished()
    with pytest.raises(FailedPrecondition, match="closed"):
        handle.accept_waveform(np.zeros(10, dtype=np.float32))
    with pytest.raises(FailedPrecondition, match="twice"):
        handle.input_finished()
    assert (await recognizer.result(handle)).num_frames == engine.geometry.output_frames(RATE + 100)
    busy = recognizer.create_stream()
    busy.accept_waveform(clip()[: 5 * RATE])
    outcomes = await asyncio.gather(recognizer.decode(busy), recognizer.decode(busy), return_exceptions=True)
    assert outcomes[0] == 1 and isinstance(outcomes[1], FailedPrecondition), outcomes
    long = recognizer.create_stream()
    limit_s = engine.config.max_audio_s
    with pytest.raises(InvalidArgument, match=rf"over the limit of {limit_s:.0f} s"):
        long.accept_waveform(np.zeros(int(limit_s * RATE) + 1, dtype=np.float32))


@pytest.mark.slow  # an export and an OpenVINO compile: a minute on 2 shared cores
async def test_the_graph_backends_stream_what_torch_streams(engine: AsrEngine, tmp_path: Path) -> None:
    """A window is an ordinary model input: ONNX Runtime and OpenVINO (its steady-state windows
    all one shape) run the same windows as torch."""
    samples = clip()
    expected, _ = await stream(engine.streaming, samples, SMALL)
    vino = AsrEngine(support.demo_config(MUAALEM_ASR_BACKEND="openvino", MUAALEM_CACHE_DIR=str(tmp_path)))
    await vino.start()
    (graph,) = (tmp_path / "onnx").glob("*/model.onnx")  # exported by the openvino engine's start
    onnx = AsrEngine(support.demo_config(MUAALEM_ASR_BACKEND="onnxruntime", MUAALEM_ASR_ONNX_PATH=str(graph)))
    await onnx.start()
    try:
        for other in (vino, onnx):
            got, handle = await stream(other.streaming, samples, SMALL, [RATE // 2])
            assert handle.stats.windows >= 7 and other.version.backend in ("openvino", "onnxruntime")
            for level, values in expected.log_probs.items():
                np.testing.assert_allclose(got.log_probs[level], values, atol=1e-3, err_msg=other.version.backend)
            assert got.decode.phonemes == expected.decode.phonemes
    finally:
        await onnx.close()
        await vino.close()


async def test_with_a_segmenter_completeness_is_the_unary_paths() -> None:
    """The segmenter runs over the whole segment at the end (tiny random checkpoints)."""
    tiny = AsrEngine(support.config())
    await tiny.start()
    try:
        options = TranscribeOptions(detect_completeness=True)
        for samples in (support.recording("test.wav"), support.recording("test.wav")[: int(3.3 * RATE)]):
            streamed, _ = await stream(tiny.streaming, samples, SMALL, options=options)
            whole = await tiny.transcribe(samples, options)
            assert streamed.is_complete is not None and streamed.is_complete == whole.is_complete
    finally:
        await tiny.close()
