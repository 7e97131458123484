"""Shadda present/absent and ghunnah short/right on aligned spans of known durations."""

from __future__ import annotations

import pytest

from services.tajweed.model import RuleKind, Verdict
from tests.tajweed import synth


def _shadda(tempo: float, held: float, decoded: str | None) -> Verdict:
    """ٱللَّهُ of 112:1 with its doubled lam held `held` consonant lengths."""
    ref = synth.reference(112, 1)
    lam = synth.group_index(ref, "للَ")
    consonant = 0.6 * tempo
    durations = synth.natural_durations(ref, tempo, consonant)
    durations[lam] = tempo + (held - 1) * consonant
    dec = synth.decode(synth.replace_group(ref, lam, decoded)) if decoded is not None else None
    result = synth.validate(synth.request(ref, synth.alignment(ref, durations), dec, validators=["shadda"]))
    [finding] = [f for f in result.findings if f.phoneme_start == ref.groups[lam].phoneme_start]
    assert finding.rule == RuleKind.SHADDA
    return finding.verdict


@pytest.mark.parametrize("tempo", [0.25, 0.35, 0.45])
def test_shadda_present_and_absent(tempo: float) -> None:
    assert _shadda(tempo, 2.0, "للَ") == Verdict.CORRECT
    assert _shadda(tempo, 1.0, "لَ") == Verdict.MISSING
    # From the timing alone.
    assert _shadda(tempo, 2.0, None) == Verdict.CORRECT
    assert _shadda(tempo, 1.0, None) == Verdict.MISSING


def test_shadda_timing_against_symbols_is_uncertain() -> None:
    assert _shadda(0.3, 1.0, "للَ") == Verdict.UNCERTAIN


def test_shadda_measures_are_reported() -> None:
    ref = synth.reference(1, 7)
    durations = synth.natural_durations(ref, 0.3, 0.18)
    result = synth.validate(
        synth.request(ref, synth.alignment(ref, durations), synth.decode(ref.phonemes), validators=["shadda"])
    )
    letters = [f.expected_phonemes for f in result.findings]
    assert letters == ["للَ", "ضضَ", "للِ"]
    for finding in result.findings:
        assert finding.verdict == Verdict.CORRECT
        assert finding.measured.symbol_count == 2
        # The held consonant, its first copy's first frame to the voweled copy's spike: the hold
        # (one consonant, 0.18 s) and that spike's frame.
        assert finding.measured.duration_s == pytest.approx(0.18 + synth.FRAME_S, abs=0.05)
        assert "consonant lengths" in finding.measured.text
        assert finding.confidence > 0.8


def _ghunnah(duration_harakat: float, decoded: str, nasal: float = 0.95) -> tuple[Verdict, float | None]:
    """ٱلنَّاسِ of 2:8: a doubled noon whose ghunnah lasts `duration_harakat`."""
    ref = synth.reference(2, 8)
    noon = synth.group_index(ref, "ننننَ")
    durations = synth.natural_durations(ref, 0.3, 0.18)
    durations[noon] = (duration_harakat + 1) * 0.3
    phonemes = synth.replace_group(ref, noon, decoded)
    decoded_group = sum(1 for g in ref.groups[:noon])
    label = ("maghnoon", nasal) if nasal >= 0.5 else ("not_maghnoon", 1 - nasal)
    dec = synth.decode(phonemes, sifat={decoded_group: {"ghonna": label}})
    result = synth.validate(synth.request(ref, synth.alignment(ref, durations), dec, validators=["ghunnah"]))
    [finding] = [f for f in result.findings if f.phoneme_start == ref.groups[noon].phoneme_start]
    assert finding.rule == RuleKind.GHUNNAH
    return finding.verdict, finding.measured.sifa_prob


def test_ghunnah_right() -> None:
    verdict, nasal = _ghunnah(2.0, "ننننَ")
    assert verdict == Verdict.CORRECT
    assert nasal == pytest.approx(0.95)


def test_ghunnah_short() -> None:
    assert _ghunnah(0.5, "ننَ")[0] == Verdict.TOO_SHORT
    assert _ghunnah(0.2, "ننننَ")[0] == Verdict.UNCERTAIN  # the timing says short, the symbols say 2


def test_ghunnah_without_nasality() -> None:
    assert _ghunnah(0.5, "ننَ", nasal=0.05)[0] == Verdict.MISSING
    assert _ghunnah(2.0, "ننننَ", nasal=0.05)[0] == Verdict.UNCERTAIN


@pytest.mark.parametrize(
    ("surah", "ayah", "phonemes", "kind", "name"),
    [
        (2, 8, "ننننَ", RuleKind.GHUNNAH, "Ghunnah of the doubled noon or meem"),
        (2, 8, "يييَ", RuleKind.IDGHAM, "Idgham with ghunnah"),  # مَن يَقُولُ
        (2, 19, "ممممِ", RuleKind.IDGHAM, "Idgham with ghunnah"),  # ظُلُمَـٰتٌ مِّن... tanween into meem
        (2, 4, "ںںں", RuleKind.IKHFA, "Ikhfa"),
        (2, 8, "۾۾۾", RuleKind.IKHFA, "Ikhfa shafawi"),  # هُم بِمُؤْمِنِينَ
        (2, 27, "۾۾۾", RuleKind.IQLAB, "Iqlab"),  # مِنۢ بَعْدِ
        (2, 19, "۾۾۾", RuleKind.IQLAB, "Iqlab"),  # مُحِيطٌۢ بِ
    ],
)
def test_ghunnah_kinds(surah: int, ayah: int, phonemes: str, kind: RuleKind, name: str) -> None:
    ref = synth.reference(surah, ayah)
    durations = synth.natural_durations(ref, 0.3, 0.18)
    result = synth.validate(
        synth.request(ref, synth.alignment(ref, durations), synth.decode(ref.phonemes), validators=["ghunnah"])
    )
    found = [f for f in result.findings if f.expected_phonemes == phonemes]
    assert found, [f.expected_phonemes for f in result.findings]
    assert any(f.rule == kind and f.rule_name == name for f in found), [(f.rule, f.rule_name) for f in found]
    assert all(f.verdict == Verdict.CORRECT for f in result.findings)


def test_izhar_instead_of_ikhfa() -> None:
    ref = synth.reference(2, 4)
    ikhfa = synth.group_index(ref, "ںںں")
    durations = synth.natural_durations(ref, 0.3, 0.18)
    durations[ikhfa] = 0.18
    dec = synth.decode(synth.replace_group(ref, ikhfa, "ن"))
    req = synth.request(ref, synth.alignment(ref, durations), dec, validators=["ghunnah", "explain_error"])
    [finding] = [f for f in synth.validate(req).findings if f.verdict != Verdict.CORRECT]
    assert (finding.rule, finding.verdict, finding.heard_phonemes) == (RuleKind.IKHFA, Verdict.WRONG, "ن")
    assert finding.source == "ghunnah" and "izhar" in finding.message_en


def test_shadda_on_a_letter_not_heard_is_left_to_the_content_check() -> None:
    """A dropped word: its doubled letter has no decoded counterpart, and the aligner squeezes it
    into a sliver; a shadda verdict there would measure nothing (it once read 'held -1.09')."""
    ref = synth.reference(112, 1)
    lam = synth.group_index(ref, "للَ")
    durations = synth.natural_durations(ref, 0.4, 0.12)
    durations[lam] = 0.01
    dropped = synth.replace_group(ref, lam, "")
    result = synth.validate(
        synth.request(ref, synth.alignment(ref, durations), synth.decode(dropped), validators=["shadda"])
    )
    assert [f for f in result.findings if f.phoneme_start == ref.groups[lam].phoneme_start] == []
    # Timing alone (no decode) still judges it, and never reports a negative hold.
    timing_only = synth.validate(synth.request(ref, synth.alignment(ref, durations), None, validators=["shadda"]))
    [finding] = [f for f in timing_only.findings if f.phoneme_start == ref.groups[lam].phoneme_start]
    # Two spikes squeezed together: at most a borderline hold, never a doubled one.
    assert finding.verdict in (Verdict.MISSING, Verdict.UNCERTAIN)
    assert finding.measured.text.startswith("held 1.")


def test_a_missing_nasal_hold_is_named_as_its_rule() -> None:
    """The ikhfa of 2:4 (مِنْ قَبْلِكَ) barely held, heard as a single hidden noon: the ikhfa is too
    short, said by the ghunnah validator as an ikhfa, and no letter error is reported for it."""
    ref = synth.reference(2, 4)
    ikhfa = synth.group_index(ref, "ںںں", 2)
    durations = synth.natural_durations(ref, 0.3, 0.18)
    durations[ikhfa] = 0.4 * 0.3
    dec = synth.decode(synth.replace_group(ref, ikhfa, "ں"))
    req = synth.request(ref, synth.alignment(ref, durations, policy="late"), dec,
                        validators=["ghunnah", "explain_error"], include_correct=False)
    [finding] = synth.validate(req).findings
    assert (finding.rule, finding.verdict, finding.source) == (RuleKind.IKHFA, Verdict.TOO_SHORT, "ghunnah")
    assert finding.measured.duration_harakat == pytest.approx(0.4, abs=0.2)
    assert finding.phoneme_start == ref.groups[ikhfa].phoneme_start


def _ikhfa_decoded_clear(hold_s: float) -> list:  # type: ignore[type-arg]
    ref = synth.reference(2, 4)
    ikhfa = synth.group_index(ref, "ںںں")
    durations = synth.natural_durations(ref, 0.3, 0.18)
    durations[ikhfa] = hold_s
    dec = synth.decode(synth.replace_group(ref, ikhfa, "ن"))
    req = synth.request(ref, synth.alignment(ref, durations), dec, validators=["ghunnah"])
    start = ref.groups[ikhfa].phoneme_start
    return [f for f in synth.validate(req).findings if f.phoneme_start == start]


def test_a_clear_letter_held_as_long_as_a_ghunnah_is_not_an_izhar() -> None:
    """The model decoded ن, but the nasal was held about 2 harakat: the symbol says izhar, the
    timing says ghunnah. They disagree, so UNCERTAIN, never WRONG; a short hold is an izhar."""
    [held] = _ikhfa_decoded_clear(0.6)
    assert held.verdict == Verdict.UNCERTAIN
    assert held.measured.duration_harakat is not None and held.measured.duration_harakat > 1.5
    assert held.measured.duration_sd is not None
    assert "izhar" in held.message_en
    [short] = _ikhfa_decoded_clear(0.18)
    assert short.verdict == Verdict.WRONG
