"""The core's contract: errors that name the problem, confidence that flags what it should."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from services.alignment.core import Aligner, CallOptions, GroupRef, ReferenceInput, WordRef
from services.alignment.thresholds import ThresholdTable
from services.common.errors import FailedPrecondition, InvalidArgument

from . import synth


@pytest.fixture(scope="module")
def aligner() -> Aligner:
    return Aligner(ThresholdTable(default=0.0, per_phoneme={}))


def reference_of(ids: list[int], **kwargs: Any) -> ReferenceInput:
    return ReferenceInput("".join(synth.VOCAB[i] for i in ids), ids, **kwargs)


def test_too_few_frames_is_failed_precondition_with_the_counts(aligner: Aligner) -> None:
    # 10 phonemes, 3 of them repeating their neighbour (a madd run of 3 and a shadda).
    ids = [2, 32, 29, 29, 29, 23, 23, 32, 24, 33]
    log_probs = synth.log_softmax(np.zeros((12, synth.V)))
    with pytest.raises(FailedPrecondition) as caught:
        aligner.align(log_probs, 0.04, reference_of(ids))
    message = caught.value.message
    assert "12 frames (0.48 s)" in message
    assert "needs at least 13 frames" in message
    assert "10 phonemes" in message and "3 blanks" in message
    # One frame more is enough.
    enough = synth.log_softmax(np.zeros((13, synth.V)))
    assert aligner.align(enough, 0.04, reference_of(ids)).num_frames == 13


def test_no_frames_at_all_is_failed_precondition(aligner: Aligner) -> None:
    with pytest.raises(FailedPrecondition, match="0 frames"):
        aligner.align(np.zeros((0, synth.V), dtype=np.float32), 0.04, reference_of([1]))


GOOD = synth.log_softmax(np.zeros((20, synth.V)))


@pytest.mark.parametrize(
    ("log_probs", "reference", "options", "frame_s", "expected"),
    [
        (GOOD[0], reference_of([1]), None, 0.04, "must be 2-D"),
        (GOOD[:, :2], ReferenceInput("x", [1]), CallOptions(vocabulary=["b", "x"]), 0.04, "2 columns"),
        (np.full((20, synth.V), np.nan, dtype=np.float32), reference_of([1]), None, 0.04, "NaN"),
        (GOOD, reference_of([1]), None, 0.0, "frame_duration_s"),
        (GOOD, ReferenceInput("", []), None, 0.04, "no phonemes"),
        (GOOD, ReferenceInput("ءب", [1]), None, 0.04, "2 characters but reference.phoneme_ids has 1"),
        (GOOD, ReferenceInput("ء", [0]), None, 0.04, "phoneme_ids[0] = 0 is outside"),
        (GOOD, ReferenceInput("ءء", [1, 43]), None, 0.04, "phoneme_ids[1] = 43 is outside"),
        (GOOD, ReferenceInput("ءت", [1, 2]), None, 0.04, "reference.phonemes[1] is 'ت'"),
        (GOOD, reference_of([1, 2], groups=[GroupRef("", 1, 3, 0)]), None, 0.04, "groups[0]"),
        (GOOD, reference_of([1, 2], words=[WordRef("", 2, 1)]), None, 0.04, "words[0]"),
        (
            GOOD,
            reference_of([1, 2], groups=[GroupRef("", 0, 2, 1)], words=[WordRef("", 0, 2)]),
            None,
            0.04,
            "word_index = 1",
        ),
        (GOOD, reference_of([1]), CallOptions(band_frames=-1), 0.04, "band_frames"),
        (GOOD, reference_of([1]), CallOptions(vocabulary=["a", "b"]), 0.04, "vocabulary has 2"),
        (GOOD[:, :10], reference_of([1]), None, 0.04, "server's phoneme vocabulary has 43"),
        (GOOD, reference_of([1]), CallOptions(thresholds={"Q": 1.0}), 0.04, "'Q' is not a phoneme"),
        (GOOD, reference_of([1]), CallOptions(thresholds={"[PAD]": 1.0}), 0.04, "not a phoneme"),
        (GOOD, reference_of([1]), CallOptions(default_threshold=float("inf")), 0.04, "finite"),
    ],
)
def test_inconsistent_input_is_invalid_argument_naming_the_problem(
    aligner: Aligner,
    *,
    log_probs: np.ndarray,
    reference: ReferenceInput,
    options: CallOptions | None,
    frame_s: float,
    expected: str,
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        aligner.align(log_probs, frame_s, reference, options)
    assert expected in caught.value.message


def favouring_competitor(seed: int) -> tuple[synth.Truth, int, int]:
    """A clean posteriorgram except that token `k`'s frames favour label `competitor`."""
    rng = np.random.default_rng(seed)
    ids = np.array([2, 32, 23, 23, 32, 29, 29, 26, 34, 24], dtype=np.int64)
    labels, starts, ends = synth.frame_labels(rng, ids, durations=(3, 5), gaps=(1, 2))
    k, competitor = 7, 12
    labels[starts[k] : ends[k]] = competitor
    log_probs = synth.posteriorgram(rng, labels)
    # The target stays second best, so the forced path still puts token k there.
    log_probs[starts[k] : ends[k], ids[k]] = np.log(0.2)
    log_probs = synth.log_softmax(log_probs.astype(np.float64))
    phonemes = "".join(synth.VOCAB[i] for i in ids)
    return synth.Truth(log_probs, ids, phonemes, starts, ends), k, competitor


def test_confidence_flags_the_token_whose_frames_favour_another_label(aligner: Aligner) -> None:
    truth, k, competitor = favouring_competitor(seed=5)
    words = [WordRef("a", 0, 5), WordRef("b", 5, 10)]
    groups = [GroupRef("", 0, 2, 0), GroupRef("", 2, 5, 0), GroupRef("", 5, 8, 1), GroupRef("", 8, 10, 1)]
    reference = ReferenceInput(truth.phonemes, truth.ids, groups, words)
    result = aligner.align(truth.log_probs, 0.04, reference)
    tokens = result.tokens
    assert np.abs(tokens.spans.start - truth.starts).max() <= 1
    assert tokens.flagged.tolist() == [i == k for i in range(truth.ids.size)]
    assert tokens.competitor[k] == competitor
    assert tokens.llr[k] < 0 < np.delete(tokens.llr, k).min()
    assert tokens.gop_posterior[k] < 0.5 < np.delete(tokens.gop_posterior, k).min()
    assert result.groups.flagged.tolist() == [False, False, True, False]
    assert result.groups.llr[2] == pytest.approx(tokens.llr[k])
    assert result.words.flagged.tolist() == [False, True]
    assert result.words.llr[1] == pytest.approx(tokens.llr[5:10].mean())
    assert result.confidence == pytest.approx(0.9)


def test_thresholds_per_phoneme_default_and_per_call(aligner: Aligner) -> None:
    truth, k, _ = favouring_competitor(seed=6)
    target = synth.VOCAB[truth.ids[k]]
    reference = ReferenceInput(truth.phonemes, truth.ids)
    lenient = Aligner(ThresholdTable(default=0.0, per_phoneme={target: -100.0}))
    result = lenient.align(truth.log_probs, 0.04, reference)
    assert not result.tokens.flagged.any()
    assert result.tokens.threshold[k] == -100.0
    # Per call: a replacement table and default.
    strict = CallOptions(thresholds={synth.VOCAB[2]: 1000.0}, default_threshold=-100.0)
    result = lenient.align(truth.log_probs, 0.04, reference, strict)
    assert result.tokens.flagged.tolist() == [i == 0 for i in range(truth.ids.size)]
    everything = aligner.align(truth.log_probs, 0.04, reference, CallOptions(default_threshold=1e6))
    assert everything.tokens.flagged.all() and everything.confidence == 0.0


def test_logits_and_float16_give_the_same_alignment(aligner: Aligner) -> None:
    rng = np.random.default_rng(9)
    ids = synth.random_ids(rng, 40)
    truth = synth.build(rng, ids)
    reference = ReferenceInput(truth.phonemes, ids)
    base = aligner.align(truth.log_probs, 0.04, reference)
    logits = aligner.align(truth.log_probs * 1.0 + 7.5, 0.04, reference)
    half = aligner.align(truth.log_probs.astype(np.float16), 0.04, reference)
    for other in (logits, half):
        assert (other.tokens.spans.start == base.tokens.spans.start).all()
        assert (other.tokens.spans.end == base.tokens.spans.end).all()
        np.testing.assert_allclose(other.tokens.llr, base.tokens.llr, atol=0.02)
    assert base.path_log_prob == pytest.approx(logits.path_log_prob, abs=1e-4)


def test_mean_log_prob_and_posterior_are_over_the_token_frames(aligner: Aligner) -> None:
    rng = np.random.default_rng(3)
    ids = np.array([5, 32, 6], dtype=np.int64)
    truth = synth.build(rng, ids, durations=(3, 3), gaps=(1, 1), edges=(1, 1))
    result = aligner.align(truth.log_probs, 0.04, ReferenceInput(truth.phonemes, ids))
    for k, token in enumerate(ids):
        frames = slice(result.tokens.spans.start[k], result.tokens.spans.end[k])
        column = truth.log_probs[frames, token].astype(np.float64)
        assert result.tokens.mean_log_prob[k] == pytest.approx(column.mean(), abs=1e-5)
        assert result.tokens.gop_posterior[k] == pytest.approx(np.exp(column).mean(), abs=1e-5)
    assert result.timings_ms.keys() == {"viterbi", "confidence"}
