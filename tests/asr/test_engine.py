"""The ASR engine on the tiny random-weight dev checkpoint and dev segmenter: what it returns,
how it cuts long audio, how it refuses bad input, and how it starts without the real weights.
Dev weights make the decoded phonemes noise: the tests check structure and consistency."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from services.asr import chunking
from services.asr.decode import DecodeReference, greedy_decode
from services.asr.engine import AsrEngine, TranscribeOptions
from services.asr.loading import ensure_dev_checkpoint
from services.asr.segmenter import SegmentOptions, clean_intervals
from services.common.errors import FailedPrecondition, InvalidArgument, Unavailable
from tests.asr import support

RATE = support.RATE
FIXTURE = support.FIXTURES_DIR / "test_wav_real_model_output.json"


@pytest.fixture(scope="module")
async def engine() -> AsyncIterator[AsrEngine]:
    started = AsrEngine(support.config())
    await started.start()
    yield started
    await started.close()


@pytest.fixture(scope="module")
async def plain_engine() -> AsyncIterator[AsrEngine]:
    """No segmenter; batching up to 8 with a long enough delay for concurrent calls to meet."""
    started = AsrEngine(support.config(MUAALEM_SEGMENTER_MODEL="", MUAALEM_ASR_MAX_QUEUE_DELAY_MS="100"))
    await started.start()
    yield started
    await started.close()


async def test_transcription_is_consistent_with_the_audio(engine: AsrEngine) -> None:
    wav = support.recording("test.wav")
    result = await engine.transcribe(wav)
    assert result.num_frames == engine.geometry.output_frames(wav.size) == 219
    assert result.frame_duration_s == pytest.approx(0.04)
    assert result.audio_duration_s == pytest.approx(wav.size / RATE)
    assert result.model_version.dev_weights and result.model_version.backend == "torch"
    assert result.model_version.precision == "float32" and result.model_version.device == "cpu"
    assert [stage for stage, _ in result.timings] == ["features", "queue", "model", "ctc_decode", "total"]
    assert result.chunking == "none" and result.segments == () and result.is_complete is None
    assert result.log_probs == {} and result.batch_size == 1
    tokens = result.decode.tokens
    assert result.decode.phonemes == "".join(t.phoneme for t in tokens)
    assert all(0 <= t.start_frame < t.end_frame <= result.num_frames for t in tokens)
    assert all(a.end_frame <= b.start_frame for a, b in itertools.pairwise(tokens))
    assert all(0.0 < t.prob <= 1.0 for t in tokens)


async def test_log_probs_only_when_asked_and_only_the_levels_asked(engine: AsrEngine) -> None:
    wav = support.recording("test.wav")
    result = await engine.transcribe(wav, TranscribeOptions(include_log_probs=True, levels=("phonemes", "ghonna")))
    assert list(result.log_probs) == ["phonemes", "ghonna"]
    phonemes = result.log_probs["phonemes"]
    assert phonemes.shape == (219, 43) and result.log_probs["ghonna"].shape == (219, 3)
    np.testing.assert_allclose(np.exp(phonemes).sum(axis=1), 1.0, atol=1e-5)
    # The decode is the greedy path of exactly these log-probs.
    again = greedy_decode({"phonemes": phonemes}, engine.vocabulary, skip_sifat=True)
    assert again.phonemes == result.decode.phonemes
    everything = await engine.transcribe(wav, TranscribeOptions(include_log_probs=True))
    assert list(everything.log_probs) == list(engine.vocabulary.levels)


async def test_unknown_level_is_invalid_argument(engine: AsrEngine) -> None:
    with pytest.raises(InvalidArgument, match=r"unknown level.*madd.*the model has phonemes"):
        await engine.transcribe(support.recording("test.wav"), TranscribeOptions(levels=("madd",)))


async def test_skip_sifat_and_completeness(engine: AsrEngine) -> None:
    wav = support.recording("test.wav")
    skipped = await engine.transcribe(wav, TranscribeOptions(skip_sifat=True, detect_completeness=True))
    assert skipped.decode.groups and all(not g.sifat for g in skipped.decode.groups)
    assert isinstance(skipped.is_complete, bool)
    assert next(s for s, _ in skipped.timings) == "segmenter"
    full = await engine.transcribe(wav)
    assert all(set(g.sifat) == set(engine.vocabulary.sifa_levels) for g in full.decode.groups)


async def test_reference_sifat_are_checked_and_used(engine: AsrEngine) -> None:
    predicted = json.loads(FIXTURE.read_text(encoding="utf-8"))["predicted"]["sifat"]
    reference = DecodeReference(
        groups=tuple(row["phonemes_group"] for row in predicted),
        labels=tuple({k: v["text"] for k, v in row.items() if k != "phonemes_group"} for row in predicted),
    )
    wav = support.recording("test.wav")
    result = await engine.transcribe(wav, TranscribeOptions(reference=reference))
    assert set(result.decode.sifa_alignment) == set(engine.vocabulary.sifa_levels)
    bad = DecodeReference(groups=("ءِ",), labels=({**reference.labels[0], "ghonna": "nasal"},))
    with pytest.raises(InvalidArgument, match="ghonna label 'nasal' is not one of maghnoon, not_maghnoon"):
        await engine.transcribe(wav, TranscribeOptions(reference=bad))


async def test_long_audio_is_cut_at_pauses_and_keeps_the_frame_grid(engine: AsrEngine) -> None:
    wav = support.long_recitation(70)
    result = await engine.transcribe(wav, TranscribeOptions(include_log_probs=True, levels=("phonemes",)))
    assert result.chunking == "segmenter"
    assert result.num_frames == engine.geometry.output_frames(wav.size)
    starts = [s for s, _ in result.segments]
    assert starts == sorted(starts) and all(e - s <= 20.0 + 1e-9 for s, e in result.segments)
    covered = np.zeros(result.num_frames, dtype=bool)
    for start, end in result.segments:
        covered[round(start / 0.04) : round(end / 0.04)] = True
    assert covered.any() and not covered.all()
    assert np.all(result.log_probs["phonemes"][~covered].argmax(axis=1) == 0), "pauses decode as blank"
    assert all(covered[t.start_frame] for t in result.decode.tokens)


async def test_force_segmentation_cuts_short_audio_too(engine: AsrEngine) -> None:
    result = await engine.transcribe(support.recording("test.wav"), TranscribeOptions(force_segmentation=True))
    assert result.chunking == "segmenter" and result.segments


async def test_without_a_segmenter_long_audio_runs_in_windows(plain_engine: AsrEngine) -> None:
    wav = support.long_recitation(70)
    result = await plain_engine.transcribe(wav, TranscribeOptions(force_segmentation=True, detect_completeness=True))
    assert result.chunking == "windows" and len(result.segments) == 4
    assert result.is_complete is None
    assert result.num_frames == plain_engine.geometry.output_frames(wav.size)
    with pytest.raises(FailedPrecondition, match="no segmenter is loaded"):
        await plain_engine.segment(wav)
    assert plain_engine.model_info().segmenter_version is None


async def test_a_batch_gives_every_clip_what_it_gets_alone(plain_engine: AsrEngine) -> None:
    source = support.long_recitation(20)
    # Different lengths in one 2.5 s bucket (odd and even feature-frame counts).
    clips = [source[: int(s * RATE)] for s in (3.0, 3.37, 4.1, 4.95)]
    plans = [chunking.ChunkPlan(c.size, (chunking.Piece(0, c.size),), "none") for c in clips]
    together = await asyncio.gather(*(plain_engine.run_plan(c, p) for c, p in zip(clips, plans, strict=True)))
    assert [run.batch_size for _, run in together] == [4, 4, 4, 4]
    for clip, plan, (batched, _) in zip(clips, plans, together, strict=True):
        alone, run = await plain_engine.run_plan(clip, plan)
        assert run.batch_size == 1
        for level in alone:
            np.testing.assert_allclose(batched[level], alone[level], atol=1e-4)


@pytest.mark.parametrize(
    ("samples", "message"),
    [
        (np.zeros(0, dtype=np.float32), "no samples"),
        (np.zeros(500, dtype=np.float32), r"31.2 ms long; at least 35 ms \(560 samples"),
        (np.array([0.0, np.nan] * 1000, dtype=np.float32), "NaN or infinite"),
        (np.zeros(121 * RATE, dtype=np.float32), "over the limit of 120 s"),
        (np.zeros((2, 1000), dtype=np.float32), "one mono channel"),
    ],
)
async def test_bad_samples_are_invalid_argument(engine: AsrEngine, samples: np.ndarray, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        await engine.transcribe(samples)


async def test_segment_with_the_dev_segmenter(engine: AsrEngine) -> None:
    wav = support.long_recitation(45)
    default = await engine.segment(wav)
    seg = default.segmentation
    assert default.model_version.dev_weights and default.frame_duration_s == pytest.approx(0.02)
    assert seg.num_samples == wav.size and seg.intervals.shape[1] == 2
    assert np.all(seg.intervals[:, 0] < seg.intervals[:, 1])
    assert seg.intervals.min() >= 0 and seg.intervals.max() <= wav.size
    np.testing.assert_array_equal(seg.intervals, clean_intervals(seg.raw_intervals, SegmentOptions(), wav.size))
    # Raw labels flip every 20 ms at most; every raw edge sits on a label boundary of its chunk.
    chunk_offsets = seg.raw_intervals % 319_920 % 320
    assert np.all((chunk_offsets == 0) | (seg.raw_intervals == wav.size))
    coarse = SegmentOptions(min_silence_duration_ms=400, min_speech_duration_ms=200, pad_duration_ms=0)
    merged = (await engine.segment(wav, coarse)).segmentation
    assert len(merged.intervals) < len(seg.intervals)
    np.testing.assert_array_equal(merged.intervals, clean_intervals(seg.raw_intervals, coarse, wav.size))
    with pytest.raises(InvalidArgument, match="pad_duration_ms"):
        await engine.segment(wav, SegmentOptions(pad_duration_ms=-5))


async def test_model_info_describes_what_is_loaded(engine: AsrEngine) -> None:
    info = engine.model_info()
    assert info.vocabularies["phonemes"][0] == "[PAD]" and len(info.vocabularies["phonemes"]) == 43
    assert info.vocabularies["hams_or_jahr"] == ("[PAD]", "hams", "jahr")
    assert info.segmenter_version is not None and info.segmenter_version.dev_weights
    assert info.window_s == 20.0 and info.window_overlap_s == 0.4 and info.segment_above_s == 60.0
    assert info.parameters > 10_000 and info.max_batch_size == 8


async def test_unreachable_weights_fail_start_up_with_instructions() -> None:
    starting = AsrEngine(support.config(MUAALEM_ASR_MODEL="/nonexistent/muaalem-model"))
    with pytest.raises(Unavailable, match=r"MUAALEM_ASR_MODEL=DIR.*muaalem dev-model"):
        await starting.start()
    assert not starting.ready
    with pytest.raises(Unavailable, match="not loaded"):
        await starting.transcribe(support.recording("test.wav"))
    no_segmenter = AsrEngine(support.config(MUAALEM_SEGMENTER_MODEL="/nonexistent/segmenter"))
    with pytest.raises(Unavailable, match=r"MUAALEM_SEGMENTER_MODEL=DIR.*MUAALEM_SEGMENTER_MODEL to empty"):
        await no_segmenter.start()


async def test_dev_fallback_writes_once_and_reuses(tmp_path: Path) -> None:
    overrides = {
        "MUAALEM_ASR_MODEL": "/nonexistent/muaalem-model",
        "MUAALEM_SEGMENTER_MODEL": "/nonexistent/segmenter",
        "MUAALEM_ASR_DEV_FALLBACK": "tiny",
        "MUAALEM_CACHE_DIR": str(tmp_path),
    }
    first = AsrEngine(support.config(**overrides))
    await first.start()
    version = first.version
    await first.close()
    weights = tmp_path / "dev-checkpoints" / "multi_level_ctc-tiny" / "model.safetensors"
    written = weights.stat().st_mtime_ns
    second = AsrEngine(support.config(**overrides))
    await second.start()
    try:
        assert second.version.dev_weights and second.version == version
        assert weights.stat().st_mtime_ns == written, "the cached dev checkpoint is reused"
        info = second.model_info()
        assert info.segmenter_version is not None and info.segmenter_version.dev_weights
    finally:
        await second.close()


def test_a_damaged_dev_checkpoint_is_rewritten(tmp_path: Path) -> None:
    target = tmp_path / "multi_level_ctc-tiny"
    target.mkdir()
    (target / "config.json").write_text("{not json", encoding="utf-8")
    ensure_dev_checkpoint(target, "multi_level_ctc", "tiny")
    assert json.loads((target / "config.json").read_text(encoding="utf-8"))["model_type"] == "multi_level_ctc"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no staging directory left behind"


async def test_the_onnxruntime_backend_serves_what_torch_serves(tmp_path: Path, plain_engine: AsrEngine) -> None:
    from services.asr.checkpoint import resolve_checkpoint
    from services.asr.devmodel import write_dev_checkpoint
    from services.asr.export import export_onnx

    model, _ = support.dev_checkpoints()
    exported = export_onnx(resolve_checkpoint(str(model)), tmp_path / "tiny.onnx")
    onnx = AsrEngine(
        support.config(
            MUAALEM_SEGMENTER_MODEL="", MUAALEM_ASR_BACKEND="onnxruntime", MUAALEM_ASR_ONNX_PATH=str(exported)
        )
    )
    await onnx.start()
    try:
        assert onnx.version.backend == "onnxruntime" and onnx.version.dev_weights
        assert onnx.version.weights_digest == plain_engine.version.weights_digest
        wav = support.long_recitation(25)  # two windows in one batch
        options = TranscribeOptions(include_log_probs=True)
        expected, got = await plain_engine.transcribe(wav, options), await onnx.transcribe(wav, options)
        for level in expected.log_probs:
            np.testing.assert_allclose(got.log_probs[level], expected.log_probs[level], atol=1e-4)
        assert got.decode.phonemes == expected.decode.phonemes
        assert [(t.id, t.start_frame, t.end_frame) for t in got.decode.tokens] == [
            (t.id, t.start_frame, t.end_frame) for t in expected.decode.tokens
        ]
        np.testing.assert_allclose(
            [t.prob for t in got.decode.tokens], [t.prob for t in expected.decode.tokens], atol=1e-5
        )
    finally:
        await onnx.close()
    other = write_dev_checkpoint(tmp_path / "other", size="tiny", seed=1)
    mismatched = AsrEngine(
        support.config(
            MUAALEM_ASR_MODEL=str(other),
            MUAALEM_SEGMENTER_MODEL="",
            MUAALEM_ASR_BACKEND="onnxruntime",
            MUAALEM_ASR_ONNX_PATH=str(exported),
        )
    )
    with pytest.raises(FailedPrecondition, match=r"was exported from weights .* export it again"):
        await mismatched.start()


async def test_batching_metrics_are_exported(engine: AsrEngine) -> None:
    from prometheus_client import REGISTRY

    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    before = sample("muaalem_asr_batch_size_count", queue="asr")
    await engine.transcribe(support.long_recitation(45))
    assert sample("muaalem_asr_batch_size_count", queue="asr") == before + 1  # three windows, one batch
    assert sample("muaalem_asr_batch_size_sum", queue="asr") >= 3
    assert sample("muaalem_asr_compute_seconds_count", queue="asr") > 0
    assert sample("muaalem_asr_queue_seconds_count", queue="asr") > 0
    assert sample("muaalem_asr_queue_depth", queue="asr") == 0


async def test_the_calibration_beside_the_checkpoint_travels_in_model_info(tmp_path: Path) -> None:
    checkpoint = tmp_path / "model"
    ensure_dev_checkpoint(checkpoint, "multi_level_ctc", "tiny")
    overrides = {"MUAALEM_ASR_MODEL": str(checkpoint), "MUAALEM_SEGMENTER_MODEL": ""}
    without = AsrEngine(support.config(**overrides))
    await without.start()
    try:
        assert without.model_info().tajweed_calibration_json == ""
    finally:
        await without.close()
    text = json.dumps({"letter_min_confidence": 0.7, "fitted_on_surahs": [80]})
    (checkpoint / "calibration.json").write_text(text, encoding="utf-8")
    calibrated = AsrEngine(support.config(**overrides))
    await calibrated.start()
    try:
        assert calibrated.model_info().tajweed_calibration_json == text
    finally:
        await calibrated.close()


async def test_frame_phases_decode_the_audio_shifted_by_fractions_of_a_frame(plain_engine: AsrEngine) -> None:
    wav = support.recording("test.wav")
    result = await plain_engine.transcribe(wav, TranscribeOptions(frame_phases=4))
    assert len(result.decode.phase_phonemes) == 3
    frame = plain_engine.geometry.frame_samples
    for k, phonemes in enumerate(result.decode.phase_phonemes, start=1):
        shifted = np.concatenate([np.zeros(round(k * frame / 4), dtype=np.float32), wav])
        assert phonemes == (await plain_engine.transcribe(shifted)).decode.phonemes
    # The decode itself is the one without phases.
    assert result.decode.phonemes == (await plain_engine.transcribe(wav)).decode.phonemes
    assert (await plain_engine.transcribe(wav, TranscribeOptions(frame_phases=1))).decode.phase_phonemes == ()
    with pytest.raises(InvalidArgument, match=r"options.frame_phases must be 0-8 .*got 9"):
        await plain_engine.transcribe(wav, TranscribeOptions(frame_phases=9))
