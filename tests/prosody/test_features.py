"""Voice quality, melody, maqam and DTW against known truth."""

from __future__ import annotations

import numpy as np
import pytest

from services.prosody.dtw import accumulate, dtw
from services.prosody.maqam import SCALES, estimate
from services.prosody.melody import WordSpan, melody
from services.prosody.pitch import PitchTrack, PitchTracker
from services.prosody.voice import voice_quality
from tests.prosody.synth import SR, harmonic, scale_phrase


@pytest.fixture(scope="module")
def tracker() -> PitchTracker:
    return PitchTracker()


def test_hnr_follows_the_noise_level(tracker: PitchTracker) -> None:
    f0 = np.full(int(1.5 * SR), 150.0)
    hnr = {}
    for snr in (10, 20):
        x = harmonic(f0, noise_db=-snr, seed=snr)
        hnr[snr] = voice_quality(x, SR, tracker.track(x, SR)).hnr_db
    # White noise at -snr dB of the tone: HNR within 3 dB of snr.
    assert hnr[10] == pytest.approx(10, abs=3)
    assert hnr[20] == pytest.approx(20, abs=3)
    clean = harmonic(f0)
    assert voice_quality(clean, SR, tracker.track(clean, SR)).hnr_db > 25


def test_jitter_and_shimmer_of_known_perturbations(tracker: PitchTracker) -> None:
    rng = np.random.default_rng(1)
    periods = np.round(SR / 150 * (1 + 0.02 * rng.standard_normal(260))) / SR
    truth = float(np.mean(np.abs(np.diff(periods))) / np.mean(periods))
    f0 = np.concatenate([np.full(round(p * SR), 1 / p) for p in periods])
    x = harmonic(f0)
    vq = voice_quality(x, SR, tracker.track(x, SR))
    assert vq.jitter_local == pytest.approx(truth, rel=0.2)
    steady = harmonic(np.full(int(1.5 * SR), 150.0))
    vq0 = voice_quality(steady, SR, tracker.track(steady, SR))
    assert vq0.jitter_local < 0.002
    assert vq0.shimmer_local_db < 0.2
    # Alternate cycles 2 dB apart: shimmer ~2 dB.
    t = np.arange(int(1.5 * SR)) / SR
    gain = np.where((np.floor(t * 150) % 2) == 0, 1.0, 10 ** (-2 / 20))
    x2 = (steady * gain).astype(np.float32)
    assert voice_quality(x2, SR, tracker.track(x2, SR)).shimmer_local_db == pytest.approx(2.0, abs=0.5)


def test_spectral_slope_follows_the_harmonics(tracker: PitchTracker) -> None:
    f0 = np.full(int(1.0 * SR), 120.0)
    steep = harmonic(f0, harmonics=3)
    flat = harmonic(f0, harmonics=12)
    s_steep = voice_quality(steep, SR, tracker.track(steep, SR)).slope_500_1500
    s_flat = voice_quality(flat, SR, tracker.track(flat, SR)).slope_500_1500
    assert s_steep < s_flat


@pytest.mark.parametrize("tonic", [131.0, 196.0])
@pytest.mark.parametrize("name", sorted(SCALES))
def test_scale_phrases_give_their_maqam(tracker: PitchTracker, name: str, tonic: float) -> None:
    x = harmonic(scale_phrase(SCALES[name], tonic), noise_db=-25)
    got = estimate(tracker.track(x, SR))
    assert got is not None
    assert got.name == name
    assert 1200 * abs(np.log2(got.tonic_hz / tonic)) < 30
    assert 0 < got.confidence <= 1


@pytest.mark.parametrize("name", sorted(SCALES))
def test_scale_phrases_keep_their_maqam_in_other_keys(tracker: PitchTracker, name: str) -> None:
    """The same phrase moved by -3, -1, +1 and +3 semitones (librosa's phase vocoder): the same
    maqam, and a tonic that moves with the key."""
    librosa = pytest.importorskip("librosa")
    tonic = 131.0
    x = harmonic(scale_phrase(SCALES[name], tonic), noise_db=-25)
    for semitones in (-3, -1, 1, 3):
        got = estimate(tracker.track(librosa.effects.pitch_shift(x, sr=SR, n_steps=semitones), SR))
        assert got is not None
        assert got.name == name, semitones
        assert 1200 * abs(np.log2(got.tonic_hz / (tonic * 2 ** (semitones / 12)))) < 30, semitones


@pytest.mark.parametrize("name", sorted(SCALES))
def test_a_preferred_maqam_does_not_override_clear_evidence(tracker: PitchTracker, name: str) -> None:
    """`prefer` (the teacher's maqam, in a comparison) only settles what the scores cannot: a full
    scale phrase keeps its own maqam whichever other one is preferred."""
    track = tracker.track(harmonic(scale_phrase(SCALES[name], 196.0), noise_db=-25), SR)
    for other in SCALES:
        got = estimate(track, prefer=other)
        assert got is not None and got.name == name, other


def test_maqam_is_the_same_for_an_exact_transposition() -> None:
    """The estimate works on cents above the recording's own median: a track moved by any
    amount, on or off any grid of absolute pitch, gives the same maqam, the same scores and a
    tonic moved by that amount."""
    rng = np.random.default_rng(3)
    degrees = np.array(SCALES["Sikah"] + (1200,))
    cents = np.repeat(rng.choice(degrees, 60), 12) + rng.normal(0, 8, 720)
    f0 = 150.0 * 2 ** (cents / 1200)
    base = estimate(PitchTrack(f0, np.ones(720, dtype=bool), np.full(720, 0.95)))
    assert base is not None
    for shift in (-300.0, -137.0, 3.0, 100.0, 263.0):
        got = estimate(PitchTrack(f0 * 2 ** (shift / 1200), np.ones(720, dtype=bool), np.full(720, 0.95)))
        assert got is not None
        assert got.name == base.name
        assert got.tonic_hz == pytest.approx(base.tonic_hz * 2 ** (shift / 1200), rel=1e-4)
        for maqam, score in base.scores.items():
            assert got.scores[maqam] == pytest.approx(score, abs=2e-4)


def test_maqam_needs_voice() -> None:
    track = PitchTrack(np.zeros(100), np.zeros(100, dtype=bool), np.zeros(100))
    assert estimate(track) is None


def test_melody_slopes_range_and_final_lowering() -> None:
    hop = 0.01
    t = np.arange(300) * hop
    # Word 0 rises 4 st/s for a second, word 1 flat, word 2 falls 6 semitones in its last third.
    st = np.where(t < 1.0, 4 * t, np.where(t < 2.0, 4.0, 4.0))
    st = np.where(t >= 2.6, 4.0 - (t - 2.6) * 15, st)
    f0 = 150 * 2 ** (st / 12)
    track = PitchTrack(f0, np.ones(300, dtype=bool), np.ones(300))
    m = melody(track, [WordSpan(0, 0.0, 1.0), WordSpan(1, 1.0, 2.0), WordSpan(2, 2.0, 3.0)])
    assert m.words[0].slope_st_per_s == pytest.approx(4.0, abs=0.05)
    assert m.words[1].slope_st_per_s == pytest.approx(0.0, abs=0.05)
    assert m.final_lowering_st > 2.0
    assert m.range_st == pytest.approx(np.percentile(st, 95) - np.percentile(st, 5), abs=0.01)


def test_dtw_matches_the_textbook_recursion() -> None:
    rng = np.random.default_rng(0)
    for n, m in [(1, 1), (1, 6), (6, 1), (4, 9), (9, 4), (25, 31)]:
        cost = rng.random((n, m))
        ref = np.full((n + 1, m + 1), np.inf)
        ref[0, 0] = 0
        for i in range(n):
            for j in range(m):
                ref[i + 1, j + 1] = cost[i, j] + min(ref[i, j + 1], ref[i + 1, j], ref[i, j])
        assert np.allclose(accumulate(cost), ref[1:, 1:])


def test_dtw_path_of_a_stretched_sequence() -> None:
    a = np.sin(np.linspace(0, 6, 100))
    b = np.sin(np.linspace(0, 6, 150))
    d_self, path = dtw(a, a)
    assert d_self == 0.0
    assert (path[:, 0] == path[:, 1]).all()
    d, path = dtw(a, b)
    assert d < 0.05
    assert tuple(path[0]) == (0, 0)
    assert tuple(path[-1]) == (99, 149)
    with pytest.raises(ValueError):
        dtw(a[:0], b)
