"""Qalqalah from the decoded symbol and sifa; waqf at the end and in the middle (synthetic energy)."""

from __future__ import annotations

import pytest

from services.tajweed.convert import reference_from_proto
from services.tajweed.model import RuleKind, Verdict
from services.tajweed.waqf_marks import Stop, word_stops
from tests.tajweed import synth


def _qalqalah(surah: int, ayah: int, group: str, decoded: str, sifa: tuple[str, float]):  # type: ignore[no-untyped-def]
    ref = synth.reference(surah, ayah)
    index = synth.group_index(ref, group)
    dec = synth.decode(synth.replace_group(ref, index, decoded), sifat={index: {"qalqla": sifa}})
    result = synth.validate(synth.request(ref, None, dec, validators=["qalqalah"], duration_s=5.0))
    [finding] = result.findings
    assert finding.rule == RuleKind.QALQALAH
    return finding


def test_qalqalah_kubra_present() -> None:
    finding = _qalqalah(112, 1, "دڇ", "دڇ", ("moqalqal", 0.9))
    assert finding.verdict == Verdict.CORRECT
    assert "kubra" in finding.message_en and "الكبرى" in finding.message_ar
    assert finding.measured.sifa_prob == pytest.approx(0.9)
    assert finding.measured.symbol_count == 1
    assert finding.rule_name == "Qalqalah"


def test_qalqalah_sughra_missing() -> None:
    finding = _qalqalah(2, 4, "بڇ", "ب", ("not_moqalqal", 0.9))
    assert finding.verdict == Verdict.MISSING
    assert "sughra" in finding.message_en
    assert finding.measured.sifa_prob == pytest.approx(0.1)
    assert finding.heard_phonemes == "ب"


def test_qalqalah_contradicting_evidence() -> None:
    assert _qalqalah(112, 1, "دڇ", "دڇ", ("not_moqalqal", 0.95)).verdict == Verdict.UNCERTAIN


def _ends(decoded: str | None, *, cut: bool = False, is_complete: bool | None = None):  # type: ignore[no-untyped-def]
    ref = synth.reference(112, 1)
    timing = synth.alignment(ref, synth.natural_durations(ref, 0.3, 0.18))
    db = synth.envelope(timing)
    if cut:  # the recording stops while the last letter still sounds
        db = db[: round(timing.ends[-1] / 0.01) - 3]
        timing.duration_s = len(db) * 0.01
    dec = synth.decode(decoded) if decoded is not None else None
    req = synth.request(ref, timing, dec, validators=["waqf"], envelope=synth.energy(db, 0.01), is_complete=is_complete)
    req.audio_duration_s = len(db) * 0.01
    [finding] = synth.validate(req).findings
    assert finding.rule == RuleKind.WAQF and finding.word_index == 3
    return finding


def test_final_stop() -> None:
    ref = synth.reference(112, 1)
    right = _ends(ref.phonemes)
    assert right.verdict == Verdict.CORRECT
    assert right.measured.energy_ratio is not None and right.measured.energy_ratio < 0.01
    joined = _ends(ref.phonemes[:-1] + "َ")  # أَحَدَ: a vowel instead of the stop
    assert joined.verdict == Verdict.WRONG
    assert joined.heard_phonemes == "دَ"
    assert _ends(ref.phonemes, cut=True).verdict == Verdict.UNCERTAIN
    assert _ends(ref.phonemes, is_complete=False).verdict == Verdict.UNCERTAIN
    assert _ends(ref.phonemes, is_complete=True).verdict == Verdict.CORRECT


def test_a_decode_going_on_past_the_last_letter_is_not_a_vowel_joined_to_it() -> None:
    """A stretch cut before the reciter stopped (a pause the voice detector heard inside a held
    sound) decodes the next word's sounds after the last letter: those are extra sounds (the
    letter check reports them), not a haraka given to the last letter."""
    ref = synth.reference(112, 1)
    went_on = _ends(ref.phonemes + "وَ")  # the next word begun
    assert went_on.verdict != Verdict.WRONG
    assert went_on.heard_phonemes == ref.groups[-1].phonemes
    other_letter = _ends(ref.phonemes[: -len(ref.groups[-1].phonemes)] + "تَ")  # the last letter itself wrong
    assert other_letter.verdict != Verdict.WRONG


def test_a_vowel_at_the_end_of_a_recording_that_is_cut_is_not_judged_a_joined_stop() -> None:
    """No fall at the end: the voice goes on, so there is no stop to judge (the reciter may be
    continuing); UNCERTAIN, as for a cut recording without the vowel."""
    ref = synth.reference(112, 1)
    assert _ends(ref.phonemes[:-1] + "َ", cut=True).verdict == Verdict.UNCERTAIN
    assert _ends(ref.phonemes[:-1] + "َ", is_complete=False).verdict == Verdict.UNCERTAIN


def _pauses(after_words: list[int]):  # type: ignore[no-untyped-def]
    """2:2 with a 0.6 s silence after each word in `after_words`."""
    ref = synth.reference(2, 2)
    last_group = {g.word_index: i for i, g in enumerate(ref.groups)}
    durations = synth.natural_durations(ref, 0.3, 0.18)
    timing = synth.alignment(ref, durations, pauses={last_group[w]: 0.6 for w in after_words})
    req = synth.request(ref, timing, validators=["waqf"], envelope=synth.energy(synth.envelope(timing), 0.01))
    findings = synth.validate(req).findings
    return {f.word_index: f for f in findings if f.measured.text.startswith("pause")}, findings


def test_marks_of_2_2() -> None:
    ref = reference_from_proto(synth.reference(2, 2))
    stops = word_stops(ref.words)
    assert [s.stop for s in stops] == [None, None, None, Stop.PAIRED, Stop.PAIRED, None, None]
    assert stops[3].pair == stops[4].pair
    assert [s.ayah_end for s in stops] == [False] * 6 + [True]


def test_pauses_where_a_stop_is_allowed_or_not() -> None:
    # رَيْبَ (word 3) carries ∴; لَا (word 2) carries nothing.
    found, _ = _pauses([3])
    assert found[3].verdict == Verdict.CORRECT
    assert found[3].measured.duration_s == pytest.approx(0.6, abs=0.05)
    found, _ = _pauses([2])
    assert found[2].verdict == Verdict.WRONG
    assert "marks no stop" in found[2].message_en
    found, _ = _pauses([3, 4])  # both marks of the ∴ pair
    assert (found[3].verdict, found[4].verdict) == (Verdict.CORRECT, Verdict.WRONG)
    found, findings = _pauses([])
    assert found == {}
    assert [f.verdict for f in findings] == [Verdict.CORRECT]  # the final stop


def test_skipping_a_compulsory_stop() -> None:
    ref = synth.reference(6, 36)
    timing = synth.alignment(ref, synth.natural_durations(ref, 0.3, 0.18))
    req = synth.request(ref, timing, validators=["waqf"], envelope=synth.energy(synth.envelope(timing), 0.01))
    skipped = [f for f in synth.validate(req).findings if f.verdict == Verdict.MISSING]
    assert [ref.words[f.word_index].uthmani for f in skipped] == ["يَسْمَعُونَ"]


def _continuous_102_3(quiet_db: float):  # type: ignore[no-untyped-def]
    """كَلَّا سَوْفَ تَعْلَمُونَ at 0.46 s per haraka, recited without a break; the model spikes the
    madd of كَلَّا right after its vowel starts, so ~0.8 s of blank frames run up to سَ. Inside
    them the voice goes on, 0.4 s of it at `quiet_db` (a fading vowel, a soft sibilant)."""
    ref = synth.reference(102, 3)
    madd = synth.group_index(ref, "اا")
    timing = synth.alignment(ref, synth.natural_durations(ref, 0.46, 0.28))
    first = ref.groups[madd].phoneme_start
    fatha_end = timing.alignment.tokens[first - 1].span.end_frame
    for k, token in enumerate(timing.alignment.tokens[first : first + 2]):
        frame = fatha_end + 1 + 2 * k
        token.span.start_frame, token.span.end_frame = frame, frame + 1
        token.span.start_s, token.span.end_s = frame * synth.FRAME_S, (frame + 1) * synth.FRAME_S
    blank_from = timing.alignment.tokens[first + 1].span.end_s
    blank_to = timing.alignment.tokens[first + 2].span.start_s
    assert blank_to - blank_from > 0.75
    db = synth.envelope(timing)
    middle = (blank_from + blank_to) / 2
    db[round((middle - 0.2) / 0.01) : round((middle + 0.2) / 0.01)] = quiet_db
    req = synth.request(ref, timing, validators=["waqf"], envelope=synth.energy(db, 0.01))
    return [f for f in synth.validate(req).findings if f.measured.text.startswith("pause")]


def test_no_stop_on_continuous_audio_with_a_long_blank_run() -> None:
    """The voice 30 dB under its vowels but 30 dB over the noise floor is speech, not a pause: no
    stop after كَلَّا, however long the model stayed silent."""
    assert _continuous_102_3(-50.0) == []


def test_a_silence_in_the_same_place_is_a_stop() -> None:
    [pause] = _continuous_102_3(-80.0)
    assert pause.word_index == 0
    assert pause.measured.duration_s == pytest.approx(0.4, abs=0.02)


def _qalqalah_at_the_stop(decoded: str, sifa: tuple[str, float], *, released: bool):  # type: ignore[no-untyped-def]
    """أَحَدْ of 112:1 at its stop: the dal closed, then released (the envelope's bounce) or held."""
    ref = synth.reference(112, 1)
    index = synth.group_index(ref, "دڇ")
    timing = synth.alignment(ref, synth.natural_durations(ref, 0.3, 0.18))
    db = synth.envelope(timing) if released else synth.envelope(timing, closure_db=-20.0)
    dec = synth.decode(synth.replace_group(ref, index, decoded), sifat={index: {"qalqla": sifa}})
    req = synth.request(ref, timing, dec, validators=["qalqalah", "explain_error"],
                        envelope=synth.energy(db, 0.01), include_correct=False)
    return synth.validate(req).findings


def test_a_missing_release_is_a_missing_qalqalah_even_with_the_mark_decoded() -> None:
    """The model wrote ڇ (out of habit, P(moqalqal) only 0.6), but the energy shows no bounce after
    the closure: the qalqalah is missing, named as qalqalah, with the release level it measured."""
    [finding] = _qalqalah_at_the_stop("دڇ", ("moqalqal", 0.6), released=False)
    assert (finding.rule, finding.verdict, finding.source) == (RuleKind.QALQALAH, Verdict.MISSING, "qalqalah")
    assert "kubra" in finding.message_en and "no release" in finding.message_en
    assert finding.measured.energy_ratio is not None and finding.measured.energy_ratio < 1.5
    assert finding.measured.sifa_prob == pytest.approx(0.6)


def test_a_stop_spiked_at_its_release_is_measured_from_its_closure() -> None:
    """The model spikes the dal of أَحَدْ at its release, so the silent closure lies in the blanks
    the vowel before it took: the release is still found, out of that closure; a closure that is
    not silent (another sound before the letter) is not looked for there."""
    ref = synth.reference(112, 1)
    index = synth.group_index(ref, "دڇ")
    timing = synth.alignment(ref, synth.natural_durations(ref, 0.3, 0.18))
    dal = timing.alignment.tokens[ref.groups[index].phoneme_start]
    closure_start, closure_end = timing.phonemes[ref.groups[index].phoneme_start]
    release_frame = round(closure_end / synth.FRAME_S)
    mark = timing.alignment.tokens[ref.groups[index].phoneme_start + 1]
    for token, frame in ((dal, release_frame), (mark, max(mark.span.start_frame, release_frame + 1))):
        token.span.start_frame, token.span.end_frame = frame, frame + 1
        token.span.start_s, token.span.end_s = frame * synth.FRAME_S, (frame + 1) * synth.FRAME_S
    dec = synth.decode(ref.phonemes, sifat={index: {"qalqla": ("moqalqal", 0.5)}})
    verdicts = {}
    for closure_db in (-80.0, -45.0):
        db = synth.envelope(timing, closure_db=closure_db)
        req = synth.request(ref, timing, dec, validators=["qalqalah"], envelope=synth.energy(db, 0.01))
        [finding] = [f for f in synth.validate(req).findings if f.rule == RuleKind.QALQALAH]
        verdicts[closure_db] = finding.verdict
    assert closure_end - closure_start > 0.1
    assert verdicts == {-80.0: Verdict.CORRECT, -45.0: Verdict.MISSING}


def test_a_missing_qalqalah_is_never_a_letter_error() -> None:
    """Heard د without its release: one qalqalah finding, no pronunciation line for the letter."""
    findings = _qalqalah_at_the_stop("د", ("not_moqalqal", 0.9), released=False)
    assert [(f.rule, f.verdict) for f in findings] == [(RuleKind.QALQALAH, Verdict.MISSING)]


def test_a_release_in_the_audio_is_a_qalqalah_when_the_model_is_unsure() -> None:
    assert _qalqalah_at_the_stop("دڇ", ("moqalqal", 0.55), released=True) == ()  # right: include_correct off
    [finding] = _qalqalah_at_the_stop("د", ("not_moqalqal", 0.9), released=True)
    # The bounce is there, the model is sure it is not (no mark, P(moqalqal) 0.1): they disagree,
    # and that is no error.
    assert finding.verdict == Verdict.UNCERTAIN and "disagree" in finding.message_en
