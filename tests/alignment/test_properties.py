"""Properties every alignment has, whatever the log-probs say (hypothesis)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.alignment.core import Aligner, CallOptions, GroupRef, ReferenceInput, WordRef
from services.alignment.thresholds import ThresholdTable

from . import synth


@pytest.fixture(scope="module")
def aligner() -> Aligner:
    return Aligner(ThresholdTable(default=0.0, per_phoneme={}))


@st.composite
def cases(draw: st.DrawFn) -> tuple[np.ndarray, ReferenceInput, CallOptions]:
    """Random log-probs (no truth behind them), a reference with repeats, groups and words
    (some words empty), and just enough frames or more."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    length = draw(st.integers(1, 50))
    ids = synth.random_ids(rng, length, draw(st.floats(0.0, 0.9)))
    needed = length + int(np.count_nonzero(ids[1:] == ids[:-1]))
    frames = needed + draw(st.integers(0, 3 * length))
    log_probs = synth.log_softmax(rng.normal(0.0, draw(st.floats(0.1, 5.0)), size=(frames, synth.V)))
    # Words: cut the phonemes at random points, allowing empty words; groups: cut each word.
    cuts = sorted(draw(st.lists(st.integers(0, length), max_size=8)))
    bounds = [0, *cuts, length]
    words = [WordRef(f"w{i}", a, b) for i, (a, b) in enumerate(itertools.pairwise(bounds))]
    groups = []
    for index, word in enumerate(words):
        edge = word.start
        while edge < word.end:
            size = draw(st.integers(1, 4))
            stop = min(edge + size, word.end)
            groups.append(GroupRef("", edge, stop, index))
            edge = stop
    phonemes = "".join(synth.VOCAB[i] for i in ids)
    # Narrow bands too: the invariants hold whatever part of the lattice the path may use.
    options = CallOptions(band_frames=draw(st.sampled_from([0, 1, 2, 5, 20])))
    return log_probs, ReferenceInput(phonemes, ids, groups, words), options


@settings(max_examples=200, deadline=None)
@given(case=cases())
def test_spans_are_ordered_disjoint_inside_and_one_per_token(
    aligner: Aligner, case: tuple[np.ndarray, ReferenceInput, CallOptions]
) -> None:
    log_probs, reference, options = case
    result = aligner.align(log_probs, 0.04, reference, options)
    start, end = result.tokens.spans.start, result.tokens.spans.end
    frames = log_probs.shape[0]
    assert start.size == end.size == len(reference.ids)
    assert (start >= 0).all() and (end <= frames).all()
    assert (end > start).all()
    # Ordered and non-overlapping; identical neighbours need a blank frame between them.
    ids = np.asarray(reference.ids)
    assert (start[1:] >= end[:-1]).all()
    repeats = ids[1:] == ids[:-1]
    assert (start[1:][repeats] > end[:-1][repeats]).all()
    for kind, ranges, spans in (
        ("group", [(g.start, g.end) for g in reference.groups], result.groups.spans),
        ("word", [(w.start, w.end) for w in reference.words], result.words.spans),
    ):
        assert spans.start.size == len(ranges), kind
        for i, (first, stop) in enumerate(ranges):
            s, e = int(spans.start[i]), int(spans.end[i])
            assert 0 <= s <= e <= frames, kind
            if stop > first:
                # The span runs from its first token's start to its last token's end.
                assert s == start[first] and e == end[stop - 1], kind
            else:
                assert s == e, kind
    assert 0.0 <= result.confidence <= 1.0
    assert ((result.tokens.gop_posterior >= 0) & (result.tokens.gop_posterior <= 1 + 1e-6)).all()
    assert (result.tokens.competitor != ids).all() and (result.tokens.competitor != 0).all()
    assert (result.tokens.flagged == (result.tokens.llr < result.tokens.threshold)).all()
    # A band only restricts the lattice: its best path is never better than the full one's.
    full = aligner.align(log_probs, 0.04, reference, CallOptions(band_frames=10**9))
    assert result.path_log_prob <= full.path_log_prob + 1e-9
    if result.band_frames is None:
        assert result.path_log_prob == full.path_log_prob
