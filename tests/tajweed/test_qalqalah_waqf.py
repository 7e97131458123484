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
