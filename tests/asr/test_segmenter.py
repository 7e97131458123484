"""The segmenter's interval logic on constructed frame labels with known answers (the model path
on the dev segmenter is in test_engine.py)."""

from __future__ import annotations

import numpy as np
import pytest

from services.asr.segmenter import (
    CHUNK_SAMPLES,
    SegmentOptions,
    chunk_bounds,
    clean_intervals,
    segmentation_from_labels,
    speech_intervals,
)
from services.common.errors import InvalidArgument

F = 320  # samples per label (20 ms)


def labels(pattern: str) -> np.ndarray:
    """'0011100' -> per-frame labels."""
    return np.array([int(c) for c in pattern], dtype=np.int64)


def test_transitions_become_half_open_intervals_in_samples() -> None:
    raw, complete = speech_intervals([labels("0011100110")], [0], 10 * F)
    np.testing.assert_array_equal(raw, [[2 * F, 5 * F], [7 * F, 9 * F]])
    assert complete


def test_speech_at_the_end_means_incomplete_and_ends_with_the_last_frame() -> None:
    raw, complete = speech_intervals([labels("1100111")], [0], 7 * F)
    np.testing.assert_array_equal(raw, [[0, 2 * F], [4 * F, 7 * F]])
    assert not complete


def test_chunks_are_placed_at_their_own_start_sample() -> None:
    # A second chunk starting at 19.995 s: its frames count from there, not from 1000 * 320.
    first = np.zeros(999, dtype=np.int64)
    first[-2:] = 1
    second = labels("1100")
    raw, complete = speech_intervals([first, second], [0, CHUNK_SAMPLES], CHUNK_SAMPLES + 4 * F)
    np.testing.assert_array_equal(raw, [[997 * F, CHUNK_SAMPLES + 2 * F]])
    assert complete


def test_chunk_bounds_cut_at_19_995_s() -> None:
    assert chunk_bounds(45 * 16_000) == [(0, 319_920), (319_920, 639_840), (639_840, 720_000)]
    assert chunk_bounds(100) == [(0, 100)]


def test_silence_only_gives_no_intervals() -> None:
    seg = segmentation_from_labels([labels("0000")], [0], 4 * F, SegmentOptions())
    assert seg.intervals.shape == (0, 2) and seg.is_complete


def test_short_silences_merge_short_speech_drops_and_padding_is_added() -> None:
    # Samples: speech [1000, 5000), 400-sample (25 ms) gap, [5400, 9000), 2000-sample gap,
    # a 320-sample blip [11000, 11320), a long gap, [20000, 30000).
    raw = np.array([[1000, 5000], [5400, 9000], [11000, 11320], [20000, 30000]], dtype=np.int64)
    options = SegmentOptions(min_silence_duration_ms=30, min_speech_duration_ms=30, pad_duration_ms=30)
    cleaned = clean_intervals(raw, options, num_samples=30_100)
    # 25 ms < 30 ms: merged; the 20 ms blip < 30 ms: dropped; 480 samples of padding, clamped.
    np.testing.assert_array_equal(cleaned, [[520, 9480], [19520, 30100]])


def test_cleaning_parameters_change_the_answer() -> None:
    raw = np.array([[0, 8000], [12000, 20000]], dtype=np.int64)  # a 250 ms pause
    keep = clean_intervals(raw, SegmentOptions(200, 30, 0), 20000)
    merge = clean_intervals(raw, SegmentOptions(300, 30, 0), 20000)
    drop_all = clean_intervals(raw, SegmentOptions(30, 600, 0), 20000)
    np.testing.assert_array_equal(keep, raw)
    np.testing.assert_array_equal(merge, [[0, 20000]])
    assert drop_all.shape == (0, 2)


def test_options_out_of_range_are_invalid_argument() -> None:
    with pytest.raises(InvalidArgument, match="pad_duration_ms=-1"):
        SegmentOptions(pad_duration_ms=-1).validate()
    with pytest.raises(InvalidArgument, match="min_speech_duration_ms"):
        SegmentOptions(min_speech_duration_ms=10**6).validate()
