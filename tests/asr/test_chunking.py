"""Chunk planning and stitching: exact properties on arithmetic (the model-backed comparison of a
45 s input with its unchunked run is in test_engine_chunking.py)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.asr.chunking import FrameGeometry, Piece, blank, plan, plan_windows, stitch

GEOMETRY = FrameGeometry()
RATE = 16_000


def test_frame_counts_match_the_documented_model_facts() -> None:
    # 5 s -> 249 feature frames -> 125 output frames; 15 s -> 749 feature frames.
    assert GEOMETRY.feature_frames(5 * RATE) == 249
    assert GEOMETRY.output_frames(5 * RATE) == 125
    assert GEOMETRY.feature_frames(15 * RATE) == 749
    assert GEOMETRY.frame_samples == 640
    assert GEOMETRY.frame_duration_s == pytest.approx(0.04)
    assert GEOMETRY.output_frames(GEOMETRY.min_samples) == 1
    assert GEOMETRY.output_frames(GEOMETRY.min_samples - 1) == 0


def test_short_audio_is_one_piece_and_20_s_windows_above() -> None:
    assert plan(19 * RATE, geometry=GEOMETRY, window_s=20, overlap_s=0.4).pieces == (Piece(0, 19 * RATE),)
    chunked = plan(45 * RATE, geometry=GEOMETRY, window_s=20, overlap_s=0.4)
    assert chunked.method == "windows"
    # 0-20 s, 19.6-39.6 s, then the last window reaches back a full 20 s from the end.
    assert chunked.pieces == (Piece(0, 320_000), Piece(313_600, 633_600), Piece(400_000, 720_000))


@settings(max_examples=200, deadline=None)
@given(num_samples=st.integers(GEOMETRY.min_samples, 200 * RATE), window_s=st.sampled_from([2.0, 7.5, 20.0]))
def test_windows_cover_everything_in_order_on_frame_boundaries(num_samples: int, window_s: float) -> None:
    pieces = plan_windows(0, num_samples, window_samples=int(window_s * RATE), overlap_samples=6400, frame_samples=640)
    assert pieces[0].start == 0 and pieces[-1].end == num_samples
    for before, after in itertools.pairwise(pieces):
        assert after.start % 640 == 0
        assert before.start < after.start
        # Consecutive windows overlap by at least 0.4 s, so no frame is lost between them.
        assert before.end - after.start >= 6400
    assert all(p.length <= window_s * RATE for p in pieces)


def fake_model_output(piece: Piece, levels: dict[str, int], tag: float) -> dict[str, np.ndarray]:
    """Per-frame values that encode the global frame index and which piece made them."""
    frames = GEOMETRY.output_frames(piece.length)
    first = piece.start // 640
    out = {}
    for level, vocab in levels.items():
        values = np.zeros((frames, vocab), dtype=np.float32)
        values[:, 0] = first + np.arange(frames)
        values[:, 1] = tag
        out[level] = values
    return out


@settings(max_examples=100, deadline=None)
@given(num_samples=st.integers(GEOMETRY.min_samples, 130 * RATE))
def test_stitched_frames_have_the_unchunked_count_order_and_the_most_central_source(num_samples: int) -> None:
    levels = {"phonemes": 43, "ghonna": 3}
    pieces = plan(num_samples, geometry=GEOMETRY, window_s=20, overlap_s=0.4).pieces
    outputs = [fake_model_output(p, levels, float(i)) for i, p in enumerate(pieces)]
    stitched = stitch(pieces, outputs, num_samples=num_samples, geometry=GEOMETRY)
    total = GEOMETRY.output_frames(num_samples)
    for level, vocab in levels.items():
        assert stitched[level].shape == (total, vocab)
        # Frame f holds the output for frame f: timestamps agree with an unchunked run.
        np.testing.assert_array_equal(stitched[level][:, 0], np.arange(total))
    source = stitched["phonemes"][:, 1].astype(int)
    assert np.all(np.diff(source) >= 0), "pieces are used in time order, each once"
    for f in range(0, total, 7):
        piece = pieces[source[f]]
        first, count = piece.start // 640, GEOMETRY.output_frames(piece.length)
        margin = min(f - first if piece.start else total, first + count - 1 - f if first + count < total else total)
        for other in pieces:
            o_first, o_count = other.start // 640, GEOMETRY.output_frames(other.length)
            if o_first <= f < o_first + o_count:
                o_margin = min(
                    f - o_first if other.start else total,
                    o_first + o_count - 1 - f if o_first + o_count < total else total,
                )
                assert margin >= o_margin


def test_gaps_between_segments_are_blank_and_segments_are_placed_by_time() -> None:
    num_samples = 90 * RATE
    intervals = [(RATE, 10 * RATE + 123), (30 * RATE + 5, 75 * RATE)]
    chunked = plan(num_samples, geometry=GEOMETRY, window_s=20, overlap_s=0.4, speech_intervals=intervals)
    assert chunked.method == "segmenter"
    # The first interval snapped outwards to frame boundaries; the 45 s one runs as windows.
    assert chunked.pieces[0] == Piece(RATE, 10 * RATE + 640)
    assert chunked.pieces[1].start == 30 * RATE - (30 * RATE) % 640
    assert len(chunked.pieces) == 4 and chunked.pieces[-1].end == 75 * RATE
    outputs = [fake_model_output(p, {"phonemes": 5}, 1.0) for p in chunked.pieces]
    stitched = stitch(chunked.pieces, outputs, num_samples=num_samples, geometry=GEOMETRY)["phonemes"]
    assert stitched.shape[0] == GEOMETRY.output_frames(num_samples)
    gap = slice(10 * RATE // 640 + 2, 30 * RATE // 640 - 2)
    assert np.all(stitched[gap, 0] == 0.0) and np.all(stitched[gap, 1:] <= -1e4)
    assert np.all(stitched[gap].argmax(axis=1) == 0), "gaps decode as blank"
    covered = slice(RATE // 640, 10 * RATE // 640)
    np.testing.assert_array_equal(stitched[covered, 0], np.arange(RATE // 640, 10 * RATE // 640))


def test_short_intervals_are_packed_into_pieces_cut_only_in_pauses() -> None:
    intervals = [(RATE, 3 * RATE), (4 * RATE, 6 * RATE), (8 * RATE, 19 * RATE), (22 * RATE, 25 * RATE)]
    chunked = plan(30 * RATE, geometry=GEOMETRY, window_s=20, overlap_s=0.4, speech_intervals=intervals)
    # 1-19 s fits one 20 s piece (pauses inside it included); 22-25 s would make it 24 s long.
    assert chunked.pieces == (Piece(RATE, 19 * RATE), Piece(22 * RATE, 25 * RATE))
    speech = np.zeros(30 * RATE, dtype=bool)
    for start, end in intervals:
        speech[start:end] = True
    for before, after in itertools.pairwise(chunked.pieces):
        assert not speech[before.end : after.start].any(), "a cut falls in a pause"


def test_stitch_rejects_outputs_with_the_wrong_frame_count() -> None:
    piece = Piece(0, 5 * RATE)
    bad = {"phonemes": np.zeros((124, 43), dtype=np.float32)}
    with pytest.raises(ValueError, match="124 frames, expected 125"):
        stitch([piece], [bad], num_samples=5 * RATE, geometry=GEOMETRY)


def test_no_speech_found_means_no_pieces_and_an_all_blank_grid() -> None:
    chunked = plan(70 * RATE, geometry=GEOMETRY, window_s=20, overlap_s=0.4, speech_intervals=[])
    assert chunked.pieces == () and chunked.method == "segmenter"
    grid = blank(70 * RATE, GEOMETRY, {"phonemes": 43})["phonemes"]
    assert grid.shape == (1750, 43) and np.all(grid.argmax(axis=1) == 0) and grid.min() == -1e4
