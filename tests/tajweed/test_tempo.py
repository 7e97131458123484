"""The reciter's haraka and single consonant, measured from the recording, with the prior."""

from __future__ import annotations

import numpy as np
import pytest

from services.tajweed import tempo
from services.tajweed.config import TajweedConfig
from services.tajweed.convert import request_from_proto
from services.tajweed.core import TajweedValidator
from tests.tajweed import synth


def _analyse(req):  # type: ignore[no-untyped-def]
    config = TajweedConfig()
    return TajweedValidator(config).analyse(request_from_proto(req, config))


@pytest.mark.parametrize("haraka", [0.25, 0.3, 0.379, 0.45])
def test_tempo_follows_the_reciter(haraka: float) -> None:
    ref = synth.reference(2, 19)
    timing = synth.alignment(ref, synth.natural_durations(ref, haraka, 0.6 * haraka))
    measured = _analyse(synth.request(ref, timing)).tempo
    assert measured.haraka_s == pytest.approx(haraka, rel=0.03)
    assert measured.consonant_s == pytest.approx(0.6 * haraka, rel=0.1)
    assert measured.samples > 20 and not measured.from_prior


def test_outliers_and_span_noise_do_not_move_it() -> None:
    ref = synth.reference(2, 19)
    durations = synth.natural_durations(ref, 0.3, 0.18)
    cv = [i for i, g in enumerate(ref.groups) if len(g.phonemes) == 2 and g.phonemes[1] in "َُِ"]
    for i in cv[:4]:
        durations[i] = 1.5  # a breath or a hesitation inside a word
    timing = synth.alignment(ref, durations, jitter_frames=1.0, rng=np.random.default_rng(3))
    assert _analyse(synth.request(ref, timing)).tempo.haraka_s == pytest.approx(0.3, rel=0.05)


def test_few_samples_shrink_towards_the_prior() -> None:
    ref = synth.words_reference(112, 1, 0, 1)  # قُلْ: a single short vowel
    timing = synth.alignment(ref, [0.25, 0.15])
    measured = _analyse(synth.request(ref, timing)).tempo
    assert measured.samples == 1 and measured.from_prior
    assert 0.25 < measured.haraka_s < 0.379
    assert measured.haraka_s - 0.25 < 0.379 - measured.haraka_s


def test_prior_follows_the_recitation_speed() -> None:
    for speed, factor in tempo.SPEED_FACTORS.items():
        ref = synth.reference(112, 1, recitation_speed=speed)
        measured = _analyse(synth.request(ref, None, synth.decode(ref.phonemes), duration_s=3.0)).tempo
        assert measured.from_prior and measured.samples == 0
        assert measured.haraka_s == pytest.approx(0.379 * factor)
        assert measured.consonant_s == pytest.approx(0.6 * 0.379 * factor)
