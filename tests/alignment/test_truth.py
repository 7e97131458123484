"""Alignment of posteriorgrams built to a known truth recovers every boundary within a frame."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.alignment.core import Aligner, ReferenceInput
from services.alignment.thresholds import ThresholdTable
from tests.conftest import FIXTURES_DIR

from . import synth

FIXTURE = FIXTURES_DIR / "test_wav_real_model_output.json"


@pytest.fixture(scope="module")
def aligner() -> Aligner:
    return Aligner(ThresholdTable(default=0.0, per_phoneme={}))


def assert_recovered(aligner: Aligner, truth: synth.Truth) -> None:
    result = aligner.align(truth.log_probs, 0.04, ReferenceInput(truth.phonemes, truth.ids))
    spans = result.tokens.spans
    assert np.abs(spans.start - truth.starts).max() <= 1, (spans.start, truth.starts)
    assert np.abs(spans.end - truth.ends).max() <= 1, (spans.end, truth.ends)


# (durations, gaps, edges) in frames: long tokens with short gaps; peaky CTC (1-2 frame
# spikes in long blank runs); no blanks at all except where repeats force one.
REGIMES = {
    "sustained": ((2, 8), (0, 3), (0, 8)),
    "peaky": ((1, 2), (0, 8), (0, 10)),
    "dense": ((1, 4), (0, 0), (0, 0)),
}


@pytest.mark.parametrize("regime", sorted(REGIMES))
def test_random_references_recover_every_boundary(aligner: Aligner, regime: str) -> None:
    durations, gaps, edges = REGIMES[regime]
    rng = np.random.default_rng(sum(map(ord, regime)))
    for _ in range(150):
        ids = synth.random_ids(rng, int(rng.integers(1, 80)), repeat_p=0.35)
        truth = synth.build(rng, ids, durations=durations, gaps=gaps, edges=edges)
        assert_recovered(aligner, truth)


@settings(max_examples=150, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    length=st.integers(1, 60),
    repeat_p=st.floats(0.0, 0.9),
    max_duration=st.integers(1, 8),
    max_gap=st.integers(0, 6),
)
def test_boundaries_within_one_frame_property(
    aligner: Aligner, *, seed: int, length: int, repeat_p: float, max_duration: int, max_gap: int
) -> None:
    rng = np.random.default_rng(seed)
    ids = synth.random_ids(rng, length, repeat_p)
    truth = synth.build(rng, ids, durations=(1, max_duration), gaps=(0, max_gap))
    assert_recovered(aligner, truth)


def test_real_reference_madd_run_is_consecutive_tokens(aligner: Aligner) -> None:
    """The reference of the real test clip (8:75-9:1): a 4-alif madd is 4 tokens with blanks
    between them, and the run's duration is its first token's start to its last's end."""
    phonemes = json.loads(FIXTURE.read_text(encoding="utf-8"))["reference"]["phonemes"]
    ids = np.array([synth.VOCAB.index(char) for char in phonemes], dtype=np.int64)
    rng = np.random.default_rng(75)
    labels, starts, ends = synth.frame_labels(rng, ids, durations=(2, 4), gaps=(0, 2))
    truth = synth.Truth(synth.posteriorgram(rng, labels), ids, phonemes, starts, ends)
    result = aligner.align(truth.log_probs, 0.04, ReferenceInput(phonemes, ids))
    run = phonemes.index("اااا")
    tokens = slice(run, run + 4)
    spans = result.tokens.spans
    assert np.abs(spans.start[tokens] - starts[tokens]).max() <= 1
    assert np.abs(spans.end[tokens] - ends[tokens]).max() <= 1
    # Identical neighbours never touch: a blank frame separates each alif from the next.
    assert (spans.start[run + 1 : run + 4] > spans.end[run : run + 3]).all()
    assert not result.tokens.flagged.any()


def _brute_force_best(log_probs: np.ndarray, ids: np.ndarray) -> float:
    """The best CTC path score by enumerating every frame labelling that collapses to ids."""
    labels = [0, *sorted(set(ids.tolist()))]
    target = ids.tolist()
    best = -np.inf
    for labelling in itertools.product(labels, repeat=log_probs.shape[0]):
        collapsed = [k for k, _ in itertools.groupby(labelling)]
        if [k for k in collapsed if k != 0] == target:
            best = max(best, float(log_probs[np.arange(len(labelling)), labelling].sum()))
    return best


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), length=st.integers(1, 3), extra=st.integers(0, 3))
def test_path_is_optimal_against_enumeration(
    aligner: Aligner, seed: int, length: int, extra: int
) -> None:
    rng = np.random.default_rng(seed)
    ids = synth.random_ids(rng, length, repeat_p=0.5)
    frames = length + int(np.count_nonzero(ids[1:] == ids[:-1])) + extra
    log_probs = synth.log_softmax(rng.normal(0.0, 2.0, size=(frames, synth.V)))
    result = aligner.align(log_probs, 0.04, ReferenceInput("".join(synth.VOCAB[i] for i in ids), ids))
    expected = _brute_force_best(log_probs.astype(np.float64), ids)
    assert result.path_log_prob * frames == pytest.approx(expected, abs=1e-3)
