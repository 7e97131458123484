"""The comparison engine: a recording against itself, a time-stretched and a pitch-shifted copy
(librosa makes them; a test-only dependency), and a synthetic recitation whose alignment,
madd lengths and contours are known."""

from __future__ import annotations

import numpy as np
import pytest

from services.common.audio import decode_bytes
from services.prosody.compare import compare
from services.prosody.features import Group, Madd, Phone, Recitation, Timing, Word, analyze
from services.prosody.pitch import PitchTracker
from tests.conftest import AUDIO_DIR
from tests.prosody.synth import SR, harmonic

librosa = pytest.importorskip("librosa")


@pytest.fixture(scope="module")
def tracker() -> PitchTracker:
    return PitchTracker()


@pytest.fixture(scope="module")
def recording() -> np.ndarray:
    return decode_bytes((AUDIO_DIR / "test.wav").read_bytes(), name_hint="test.wav").samples


@pytest.fixture(scope="module")
def reference(recording: np.ndarray, tracker: PitchTracker) -> Recitation:
    return Recitation(analyze(recording, SR, tracker))


def test_self_comparison_is_100(reference: Recitation) -> None:
    c = compare(reference, reference)
    assert c.similarity == 100.0
    assert c.tempo_ratio == pytest.approx(1.0, abs=0.005)
    assert c.key_shift_cents == 0.0
    assert c.same_maqam is True
    assert c.feedback == ()


@pytest.mark.parametrize("stretch", [0.8, 1.25])
def test_time_stretched_copy(
    recording: np.ndarray, reference: Recitation, tracker: PitchTracker, stretch: float
) -> None:
    learner = Recitation(analyze(librosa.effects.time_stretch(recording, rate=1 / stretch), SR, tracker))
    c = compare(learner, reference)
    assert c.word_alignment == "dtw"
    assert c.tempo_ratio == pytest.approx(stretch, rel=0.02)
    assert c.contour_similarity is not None and c.contour_similarity > 0.85
    assert abs(c.key_shift_cents) < 20
    assert c.similarity < 100.0


@pytest.mark.parametrize("semitones", [-3, 3])
def test_pitch_shifted_copy(
    recording: np.ndarray, reference: Recitation, tracker: PitchTracker, semitones: int
) -> None:
    shifted = librosa.effects.pitch_shift(recording, sr=SR, n_steps=semitones)
    c = compare(Recitation(analyze(shifted, SR, tracker)), reference)
    assert c.key_shift_cents == pytest.approx(100 * semitones, abs=20)
    assert c.contour_similarity is not None and c.contour_similarity > 0.85
    assert c.tempo_ratio == pytest.approx(1.0, abs=0.02)
    assert c.similarity > 85


def _synthetic(haraka: float, madd_counts: int, word1_rise_st: float) -> tuple[np.ndarray, Timing]:
    """Three words of CV syllables (each one haraka) with silences between; word 1 carries a madd
    of `madd_counts` harakat and its pitch rises by `word1_rise_st`; the last word falls to a stop."""
    f0_parts, words, groups, phones, madds = [], [], [], [], []
    t = 0.0
    fatha = "\u064e"
    for w in range(3):
        start = t
        for _ in range(3):
            groups.append(Group("ب" + fatha, w, t, t + haraka))
            phones += [Phone("ب", t, t + haraka / 3), Phone(fatha, t + haraka / 3, t + haraka)]
            t += haraka
        if w == 1:
            groups.append(Group("ا" * madd_counts, w, t, t + madd_counts * haraka))
            phones.append(Phone("ا", t, t + madd_counts * haraka))
            madds.append(Madd(w, "MaddTabeeiRule", 2, t, t + madd_counts * haraka))
            t += madd_counts * haraka
        n = int((t - start) * SR)
        ramp = np.linspace(0, 1, n)
        if w == 1:
            st = word1_rise_st * ramp
        elif w == 2:
            st = -5 * np.clip(ramp * 3 - 2, 0, 1)
        else:
            st = np.zeros(n)
        f0_parts.append(160 * 2 ** (st / 12))
        words.append(Word(w, f"w{w}", start, t))
        gap = int(0.3 * SR)
        f0_parts.append(np.zeros(gap))
        t += gap / SR
    f0 = np.concatenate([np.zeros(int(0.2 * SR)), *f0_parts])
    shift = 0.2
    timing = Timing(
        words=tuple(Word(x.index, x.text, x.start_s + shift, x.end_s + shift) for x in words),
        phones=tuple(Phone(p.phoneme, p.start_s + shift, p.end_s + shift) for p in phones),
        groups=tuple(Group(g.phonemes, g.word_index, g.start_s + shift, g.end_s + shift) for g in groups),
        madds=tuple(Madd(m.word_index, m.rule, m.golden_len, m.start_s + shift, m.end_s + shift) for m in madds),
        confidence=1.0,
    )
    return harmonic(f0, noise_db=-30), timing


def test_aligned_comparison_measures_madd_tempo_and_contours(tracker: PitchTracker) -> None:
    ref_audio, ref_timing = _synthetic(haraka=0.2, madd_counts=4, word1_rise_st=6.0)
    learner_audio, learner_timing = _synthetic(haraka=0.25, madd_counts=2, word1_rise_st=0.0)
    assert ref_timing.haraka_s() == pytest.approx(0.2, rel=1e-6)
    reference = Recitation(analyze(ref_audio, SR, tracker), ref_timing)
    learner = Recitation(analyze(learner_audio, SR, tracker), learner_timing)
    c = compare(learner, reference)
    assert c.word_alignment == "alignment"
    assert c.tempo_source == "haraka"
    assert c.tempo_ratio == pytest.approx(1.25, rel=1e-6)
    (madd,) = c.madds
    assert madd.reference_harakat == pytest.approx(4.0, abs=0.01)
    assert madd.learner_harakat == pytest.approx(2.0, abs=0.01)
    assert madd.learner_in_reference_harakat == pytest.approx(2.5, abs=0.01)
    assert c.words[1].reference_slope > 3.0 and abs(c.words[1].learner_slope) < 0.5
    assert c.learner_rhythm is not None and c.reference_rhythm is not None
    kinds = [f.kind for f in c.feedback]
    assert "madd" in kinds and "contour" in kinds
    madd_line = next(f for f in c.feedback if f.kind == "madd")
    assert madd_line.en == "your madd in w1 is 2.0 harakat, your teacher holds 4"
    assert "w1" in madd_line.ar and "4" in madd_line.ar
    contour_line = next(f for f in c.feedback if f.kind == "contour")
    assert contour_line.en == "your voice stays flat on w1 where your teacher's voice rises"
    assert len(c.feedback) <= 3
    assert 0 < c.similarity < 90
    same = compare(reference, reference)
    assert same.similarity == 100.0 and same.word_alignment == "alignment"


def test_unsure_alignment_falls_back_to_dtw(tracker: PitchTracker) -> None:
    audio, timing = _synthetic(haraka=0.2, madd_counts=4, word1_rise_st=6.0)
    unsure = Timing(timing.words, timing.phones, timing.groups, timing.madds, confidence=0.2)
    reference = Recitation(analyze(audio, SR, tracker), timing)
    learner = Recitation(reference.audio, unsure)
    c = compare(learner, reference)
    assert c.word_alignment == "dtw"
    assert [w.index for w in c.words] == [0, 1, 2]
    for w in c.words:
        assert w.learner_span[0] == pytest.approx(w.reference_span[0], abs=0.03)
        assert w.learner_span[1] == pytest.approx(w.reference_span[1], abs=0.03)
    assert c.similarity == 100.0
