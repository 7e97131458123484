"""Long audio: the banded Viterbi matches the full one, widens when it must, and stays within
its memory bound on 10 minutes of frames against a whole surah's worth of phonemes.

The bound: the backpointer table never exceeds max_table_bytes; everything else an alignment
allocates is O(T·V + L·V): peak <= max_table_bytes + 12·T·V + 16·L·V bytes + 1 MiB.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from services.alignment.core import Aligner, CallOptions, ReferenceInput
from services.alignment.thresholds import ThresholdTable
from services.alignment.viterbi import AUTO_BAND_FRAMES
from services.common.errors import FailedPrecondition, ResourceExhausted

from . import synth

TABLE = ThresholdTable(default=0.0, per_phoneme={})
FULL = CallOptions(band_frames=10**9)


def recitation(
    seed: int, tokens: int, pauses: list[tuple[int, int]]
) -> tuple[synth.Truth, ReferenceInput]:
    """A peaky recitation with breath pauses (before token, frames) that pull it off the
    uniform diagonal."""
    rng = np.random.default_rng(seed)
    ids = synth.random_ids(rng, tokens, repeat_p=0.2)
    labels, starts, ends = synth.frame_labels(rng, ids, durations=(1, 3), gaps=(0, 1), edges=(0, 3))
    for before, frames in pauses:
        labels, starts, ends = synth.with_pause(labels, starts, ends, before, frames)
    phonemes = "".join(synth.VOCAB[i] for i in ids)
    truth = synth.Truth(synth.posteriorgram(rng, labels), ids, phonemes, starts, ends)
    return truth, ReferenceInput(phonemes, ids)


def error_frames(result_starts: np.ndarray, result_ends: np.ndarray, truth: synth.Truth) -> int:
    return int(max(np.abs(result_starts - truth.starts).max(), np.abs(result_ends - truth.ends).max()))


def test_banded_matches_full_viterbi_where_both_fit() -> None:
    truth, reference = recitation(1, 1000, [(300, 150), (700, 60)])
    aligner = Aligner(TABLE)
    full = aligner.align(truth.log_probs, 0.04, reference, FULL)
    assert full.band_frames is None
    for options in (CallOptions(band_frames=250), CallOptions()):
        banded = aligner.align(truth.log_probs, 0.04, reference, options)
        assert banded.band_frames is not None and banded.band_frames < truth.log_probs.shape[0]
        assert (banded.tokens.spans.start == full.tokens.spans.start).all()
        assert (banded.tokens.spans.end == full.tokens.spans.end).all()
        assert banded.path_log_prob == full.path_log_prob
    assert error_frames(full.tokens.spans.start, full.tokens.spans.end, truth) <= 1


def test_ten_minutes_against_a_surah_sized_reference_stays_within_the_bound() -> None:
    truth, reference = recitation(2, 5000, [(0, 300), (1500, 400), (3100, 400), (4500, 300)])
    frames, vocab = truth.log_probs.shape
    assert 14_000 <= frames <= 15_500
    budget = 16 * 2**20
    # The whole lattice would need T x (2L + 1) bytes of backpointers: over 130 MiB.
    assert frames * (2 * 5000 + 1) > 130 * 2**20
    aligner = Aligner(TABLE, max_table_bytes=budget)
    aligner.warm_up()
    tracemalloc.start()
    try:
        result = aligner.align(truth.log_probs, 0.04, reference)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    bound = budget + 12 * frames * vocab + 16 * 5000 * vocab + 2**20
    assert peak <= bound, f"peak {peak / 2**20:.1f} MiB over the bound {bound / 2**20:.1f} MiB"
    assert result.band_frames is not None and not result.touched_band_edge
    assert error_frames(result.tokens.spans.start, result.tokens.spans.end, truth) <= 1


def test_automatic_band_widens_while_the_path_runs_along_its_edge() -> None:
    # 36 s of silence before the recitation starts: far off the uniform diagonal.
    truth, reference = recitation(3, 1200, [(0, 900)])
    aligner = Aligner(TABLE)
    fixed = aligner.align(truth.log_probs, 0.04, reference, CallOptions(band_frames=AUTO_BAND_FRAMES))
    assert fixed.touched_band_edge
    assert error_frames(fixed.tokens.spans.start, fixed.tokens.spans.end, truth) > 100
    auto = aligner.align(truth.log_probs, 0.04, reference)
    assert auto.band_frames is not None and auto.band_frames > AUTO_BAND_FRAMES
    assert not auto.touched_band_edge
    assert error_frames(auto.tokens.spans.start, auto.tokens.spans.end, truth) <= 1


def tight_reference() -> tuple[np.ndarray, ReferenceInput]:
    """100 repeats of one phoneme then 100 distinct ones, in exactly the frames they need:
    the one path climbs one state a frame, then two, far from the uniform diagonal."""
    rng = np.random.default_rng(4)
    distinct = np.array([2 + (k % 40) for k in range(100)], dtype=np.int64)
    ids = np.concatenate([np.full(100, 1, dtype=np.int64), distinct])
    frames = ids.size + 99
    log_probs = synth.log_softmax(rng.normal(0.0, 1.0, size=(frames, synth.V)))
    return log_probs, ReferenceInput("".join(synth.VOCAB[i] for i in ids), ids)


def test_a_band_with_no_path_is_widened_until_one_fits() -> None:
    log_probs, reference = tight_reference()
    result = Aligner(TABLE).align(log_probs, 0.04, reference, CallOptions(band_frames=1))
    assert result.band_frames is not None and result.band_frames > 1
    expected_starts = np.concatenate([np.arange(0, 200, 2), np.arange(199, 299)])
    assert (result.tokens.spans.start == expected_starts).all()


def test_no_path_within_the_table_budget_is_failed_precondition() -> None:
    log_probs, reference = tight_reference()
    frames = log_probs.shape[0]
    with pytest.raises(FailedPrecondition, match="MiB table budget"):
        Aligner(TABLE, max_table_bytes=frames * 12).align(log_probs, 0.04, reference)
    with pytest.raises(ResourceExhausted, match="MUAALEM_ALIGNMENT_MAX_TABLE_MB"):
        Aligner(TABLE, max_table_bytes=frames * 3).align(log_probs, 0.04, reference)
