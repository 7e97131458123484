"""The comparison engine: a recording against itself, a time-stretched and a pitch-shifted copy
(librosa makes them; a test-only dependency), the same recitation in other keys (pitch-shifted,
and its melody rendered as an exact transposition), and a synthetic recitation whose alignment,
madd lengths and contours are known."""

from __future__ import annotations

import numpy as np
import pytest

from services.common.audio import decode_bytes
from services.prosody.compare import Comparison, compare
from services.prosody.features import Group, Madd, Phone, Recitation, Timing, Word, analyze
from services.prosody.maqam import SCALES
from services.prosody.pitch import PitchTracker
from tests.conftest import AUDIO_DIR
from tests.prosody.synth import SR, harmonic, melody_of, scale_phrase

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


KEYS = [-3, -1, 1, 3]


@pytest.mark.parametrize("semitones", KEYS)
def test_transposed_teacher_keeps_maqam_and_similarity(
    recording: np.ndarray, reference: Recitation, tracker: PitchTracker, semitones: int
) -> None:
    """The teacher's own recording in another key is in the teacher's maqam. The similarity is
    held against a copy that went through the same phase vocoder and back to the teacher's key
    (shifted by +k, then by -k): what the vocoder alone costs (3-6 points of contour) is not the key."""
    shifted = librosa.effects.pitch_shift(recording, sr=SR, n_steps=semitones)
    control = librosa.effects.pitch_shift(shifted, sr=SR, n_steps=-semitones)
    c = compare(Recitation(analyze(shifted, SR, tracker)), reference)
    c0 = compare(Recitation(analyze(control, SR, tracker)), reference)
    assert c.learner_maqam is not None and c.reference_maqam is not None
    assert c.learner_maqam.name == c.reference_maqam.name
    assert c.same_maqam is True and c0.same_maqam is True
    assert "maqam" not in [f.kind for f in c.feedback]
    assert abs(c.similarity - c0.similarity) <= 5


@pytest.fixture(scope="module")
def slower_learner(recording: np.ndarray) -> np.ndarray:
    return librosa.effects.time_stretch(recording, rate=1 / 1.25)


@pytest.fixture(scope="module")
def slower_comparison(slower_learner: np.ndarray, reference: Recitation, tracker: PitchTracker) -> Comparison:
    return compare(Recitation(analyze(slower_learner, SR, tracker)), reference)


@pytest.mark.parametrize("semitones", KEYS)
def test_learner_in_another_key_gets_the_same_maqam_and_similarity(
    slower_learner: np.ndarray,
    slower_comparison: Comparison,
    reference: Recitation,
    tracker: PitchTracker,
    semitones: int,
) -> None:
    """A learner who recites slower than the teacher, in the teacher's key and in four others."""
    shifted = librosa.effects.pitch_shift(slower_learner, sr=SR, n_steps=semitones)
    c = compare(Recitation(analyze(shifted, SR, tracker)), reference)
    assert slower_comparison.learner_maqam is not None and c.learner_maqam is not None
    assert c.learner_maqam.name == slower_comparison.learner_maqam.name
    assert c.same_maqam == slower_comparison.same_maqam
    assert abs(c.similarity - slower_comparison.similarity) <= 5


@pytest.fixture(scope="module")
def rendered_teacher(reference: Recitation, tracker: PitchTracker) -> Recitation:
    track = reference.audio.pitch
    return Recitation(analyze(harmonic(melody_of(track.f0_hz, track.voiced, track.hop_s), noise_db=-30), SR, tracker))


@pytest.mark.parametrize("semitones", KEYS)
def test_rendered_melody_in_another_key(
    reference: Recitation, rendered_teacher: Recitation, tracker: PitchTracker, semitones: int
) -> None:
    """Known truth: the teacher's melody rendered as a harmonic tone in the teacher's key and,
    as an exact transposition, in four others. Only the key differs, so only the tracker's few
    cents of pitch-dependent error can move the maqam; they must not."""
    track = reference.audio.pitch
    f0 = melody_of(track.f0_hz, track.voiced, track.hop_s, semitones)
    c = compare(Recitation(analyze(harmonic(f0, noise_db=-30), SR, tracker)), rendered_teacher)
    assert compare(rendered_teacher, rendered_teacher).similarity == 100.0
    assert c.key_shift_cents == pytest.approx(100 * semitones, abs=10)
    assert c.learner_maqam is not None and c.reference_maqam is not None
    assert c.learner_maqam.name == c.reference_maqam.name
    assert c.same_maqam is True
    assert c.similarity >= 95


def test_another_maqam_is_still_told_apart(tracker: PitchTracker) -> None:
    """Keeping the teacher's maqam is for evidence that cannot tell; Bayati and Kurd differ in one
    quarter tone (150 against 100 cents), the nearest pair of templates."""
    teacher = Recitation(analyze(harmonic(scale_phrase(SCALES["Bayati"], 150.0), noise_db=-25), SR, tracker))
    learner = Recitation(
        analyze(harmonic(scale_phrase(SCALES["Kurd"], 150.0 * 2 ** (3 / 12)), noise_db=-25), SR, tracker)
    )
    c = compare(learner, teacher)
    assert c.reference_maqam is not None and c.reference_maqam.name == "Bayati"
    assert c.learner_maqam is not None and c.learner_maqam.name == "Kurd"
    assert c.same_maqam is False
    assert c.parts["maqam"] == 0.0


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
