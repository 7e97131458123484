"""The energy envelope and the measures read from it, on synthetic signals."""

from __future__ import annotations

import numpy as np
import pytest

from services.tajweed.energy import FLOOR_DB, burst, energy_envelope, profile, tail_fall_db

SR = 16000


def _naive(x: np.ndarray, sr: int, hop_s: float, win_s: float) -> np.ndarray:
    hop, win = round(hop_s * sr), round(win_s * sr)
    padded = np.concatenate([np.zeros(win // 2), x, np.zeros(win + hop)])
    out = []
    for i in range(1 + len(x) // hop):
        frame = padded[i * hop : i * hop + win]
        out.append(10 * np.log10(max(float(np.mean(frame**2)), 10 ** (FLOOR_DB / 10))))
    return np.asarray(out)


def test_sine_level_and_silence() -> None:
    t = np.arange(SR) / SR
    x = np.concatenate([0.5 * np.sin(2 * np.pi * 220 * t), np.zeros(SR)]).astype(np.float32)
    db, hop = energy_envelope(x, SR)
    assert db.dtype == np.float32
    assert hop == pytest.approx(0.01)
    assert len(db) == 1 + len(x) // 160
    # RMS of a 0.5 sine is 0.5 / sqrt(2): -9.03 dBFS; digital silence sits on the floor.
    assert np.median(db[10:90]) == pytest.approx(20 * np.log10(0.5 / np.sqrt(2)), abs=0.1)
    assert np.all(db[110:] == FLOOR_DB)


def test_matches_a_frame_by_frame_computation() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(0, 0.1, 12345) * np.linspace(0, 1, 12345)
    for sr, hop_s, win_s in ((SR, 0.01, 0.025), (22050, 0.005, 0.02)):
        db, _ = energy_envelope(x, sr, hop_s, win_s)
        np.testing.assert_allclose(db, _naive(x, sr, hop_s, win_s), atol=1e-3)


def test_frames_are_centred_on_their_time() -> None:
    x = np.zeros(SR)
    x[8000:8160] = 0.5  # 10 ms click at 0.5 s
    db, hop = energy_envelope(x, SR)
    assert abs(int(np.argmax(db)) * hop - 0.505) <= 0.01


def test_rejects_stereo() -> None:
    with pytest.raises(ValueError, match="mono"):
        energy_envelope(np.zeros((100, 2)))


def test_profile_silence_runs_burst_and_fall() -> None:
    hop = 0.01
    db = np.full(300, -20.0, dtype=np.float32)
    db[100:140] = -88.0  # 0.4 s pause
    db[160:190] = -50.0  # 0.3 s of quiet speech (a held fricative): 30 dB down, far above the floor
    db[200:205] = -45.0  # 50 ms closure, then the release
    db[205:210] = -22.0
    db[210:215] = -40.0  # the dip after the bounce, before the next sound
    db[260:] = -90.0  # trailing silence
    energy = profile(db, hop, (0.0, 2.6), silence_drop_db=25.0, floor_margin_db=10.0)
    assert energy.loud_db == pytest.approx(-20.0)
    # Silence is near the noise floor (-90): 10 dB over it, not merely 25 dB under the voice.
    assert energy.silence_db == pytest.approx(-80.0)
    runs = energy.silent_runs(0.0, 3.0, 0.25)
    assert runs == [(pytest.approx(1.0), pytest.approx(1.4)), (pytest.approx(2.6), pytest.approx(3.0))]
    assert energy.silent_runs(1.5, 2.2, 0.03) == []  # quiet speech and the closure are not silence
    released = burst(energy, 1.95, 2.1)
    assert released is not None and released.rise_db == pytest.approx(23.0)
    assert released.level_db == pytest.approx(-2.0)
    assert released.closure_s == pytest.approx(2.0)
    held = burst(energy, 2.3, 2.6)
    assert held is not None and held.rise_db == pytest.approx(0.0)
    assert tail_fall_db(energy) == pytest.approx(70.0)


def test_a_release_is_read_where_the_energy_leaves_the_closure_not_at_the_next_sound() -> None:
    """The same closure, 20 dB of noise under the voice, four ways out of it: a bounce as loud
    as the vowels; no bounce, straight into the next sound (a sonorant's onset, then its
    vowel); the letter fading into a stop; the letter held at full voice. The largest rise in
    the window cannot tell the first two apart (19 and 18 dB out of the noise); the release's
    level in its first 60 ms against the loud frames can."""
    hop = 0.01
    db = np.full(120, -20.0, dtype=np.float32)
    db[30:40] = -40.0  # the closure: the noise floor
    bounced, skipped = db.copy(), db.copy()
    bounced[40:48] = -21.0  # the bounce
    bounced[48:60] = -36.0  # then the next consonant's onset
    skipped[40:47] = -34.0  # straight into the next sound: its onset, then its vowel
    skipped[47:60] = -22.0
    faded = db.copy()
    faded[30:] = np.linspace(-25.0, -40.0, 90)
    faded[100:] = -40.0
    held = np.full(120, -20.0, dtype=np.float32)
    held[:10] = held[100:] = -40.0
    levels = {}
    for name, trace in (("bounced", bounced), ("skipped", skipped), ("faded", faded), ("held", held)):
        energy = profile(trace, hop, (0.0, 1.2), silence_drop_db=25.0, floor_margin_db=10.0)
        found = burst(energy, 0.25, 0.55)
        assert found is not None
        levels[name] = found
    assert levels["bounced"].rise_db == pytest.approx(19.0)
    assert levels["bounced"].level_db == pytest.approx(-1.0)
    assert levels["skipped"].level_db == pytest.approx(-14.0)
    # Nothing rises out of a fade, or out of a letter held loud: no release, as quiet as silence.
    for name in ("faded", "held"):
        assert levels[name].rise_db <= 0.0 and levels[name].level_db <= -14.0, name


def test_silence_on_a_noisy_recording_sits_over_the_noise() -> None:
    """20 dB of noise under the voice: the threshold sits 6 dB over the noise floor, so a pause in
    the noise is silence while the voice is not."""
    rng = np.random.default_rng(1)
    db = (-40.0 + rng.normal(0.0, 1.0, 400)).astype(np.float32)
    db[50:150] = -15.0
    db[200:350] = -15.0
    energy = profile(db, 0.01, (0.5, 3.5), silence_drop_db=25.0, floor_margin_db=10.0)
    assert energy.silence_db == pytest.approx(float(np.percentile(db, 5)) + 6.0)
    assert energy.silent_runs(1.5, 2.0, 0.25) == [(pytest.approx(1.5), pytest.approx(2.0))]
