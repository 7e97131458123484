"""Pitch against known truth: harmonic tones whose f0 follows a glide, a step or a vibrato,
clean and with noise; the 10 ms resampling; semitones relative to the reciter's median."""

from __future__ import annotations

import numpy as np
import pytest

from services.prosody.pitch import PitchTrack, PitchTracker, resample_track
from tests.prosody.synth import SR, contour, frame_truth, harmonic


@pytest.fixture(scope="module")
def tracker() -> PitchTracker:
    return PitchTracker()


@pytest.mark.parametrize("kind", ["glide", "step", "vibrato"])
@pytest.mark.parametrize("noise_db", [None, -20.0])
def test_known_contours(tracker: PitchTracker, kind: str, noise_db: float | None) -> None:
    f0 = contour(kind)
    track = tracker.track(harmonic(f0, noise_db=noise_db), SR)
    truth = frame_truth(f0)[: len(track.f0_hz)]
    assert len(track.f0_hz) == len(truth)
    voiced_truth = truth > 0
    # Voicing: the edges of the tone may go either way by a frame or two.
    assert np.mean(voiced_truth == track.voiced) >= 0.97
    both = voiced_truth & track.voiced
    cents = 1200 * np.abs(np.log2(track.f0_hz[both] / truth[both]))
    # The step's transition frame straddles two notes: judge it by the 95th percentile.
    assert np.median(cents) < 10.0
    assert np.percentile(cents, 95) < 25.0


def test_silence_is_unvoiced(tracker: PitchTracker) -> None:
    track = tracker.track(np.zeros(SR, dtype=np.float32), SR)
    assert not track.voiced.any()
    assert track.median_hz == 0.0
    assert np.isnan(track.semitones()).all()


def test_other_rates_are_refused(tracker: PitchTracker) -> None:
    with pytest.raises(ValueError, match="16000 Hz"):
        tracker.track(np.zeros(100, dtype=np.float32), 44100)
    with pytest.raises(ValueError, match="non-empty"):
        tracker.track(np.zeros(0, dtype=np.float32), SR)


def test_resample_interpolates_in_log_and_keeps_gaps() -> None:
    times = np.array([0.0, 0.016, 0.032, 0.048, 0.064])
    f0 = np.array([100.0, 200.0, 0.0, 200.0, 200.0])
    conf = np.array([1.0, 1.0, 0.0, 1.0, 1.0])
    track = resample_track(times, f0, conf, 7)
    assert len(track.f0_hz) == 7
    # 10 ms is 10/16 of the way from 100 to 200 Hz, in log frequency.
    assert track.f0_hz[1] == pytest.approx(100 * 2 ** (10 / 16), rel=1e-6)
    # 30 ms is nearest the unvoiced frame at 32 ms: no glide invented across the gap.
    assert not track.voiced[3]
    assert track.f0_hz[3] == 0.0


def test_semitones_are_relative_to_the_median() -> None:
    f0 = np.array([100.0, 200.0, 0.0, 400.0])
    track = PitchTrack(f0, f0 > 0, np.ones(4))
    st = track.semitones()
    assert track.median_hz == 200.0
    assert st[0] == pytest.approx(-12.0)
    assert st[1] == pytest.approx(0.0)
    assert np.isnan(st[2])
    assert st[3] == pytest.approx(12.0)
