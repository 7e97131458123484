"""SwiftF0 against an independent tracker (librosa's pyin, a test-only dependency) on the real
recitations: within 50 cents on at least 90 % of the frames both call voiced."""

from __future__ import annotations

import numpy as np
import pytest

from services.common.audio import decode_bytes
from services.prosody.pitch import PitchTracker
from tests.conftest import AUDIO_DIR

librosa = pytest.importorskip("librosa")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["test.wav", "002282_15.wav", "fatiha_long_track.wav"])
def test_swiftf0_agrees_with_pyin(name: str) -> None:
    audio = decode_bytes((AUDIO_DIR / name).read_bytes(), name_hint=name)
    track = PitchTracker().track(audio.samples, audio.sample_rate)
    # hop 160 at 16 kHz with centred frames: frame i at i * 10 ms, the same grid as the track.
    f0, voiced, _ = librosa.pyin(
        audio.samples, fmin=60, fmax=600, sr=audio.sample_rate, frame_length=1024, hop_length=160, center=True
    )
    n = min(len(f0), len(track.f0_hz))
    both = voiced[:n] & track.voiced[:n]
    assert both.sum() > 500  # seconds of voiced recitation, not a handful of frames
    cents = 1200 * np.abs(np.log2(track.f0_hz[:n][both] / f0[:n][both]))
    assert np.mean(cents < 50) >= 0.90
