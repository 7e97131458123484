"""Madd lengths on aligned spans of known durations, at tempos from 0.25 to 0.45 s per haraka."""

from __future__ import annotations

import pytest

from services.tajweed.calibration import Calibration
from services.tajweed.config import TajweedConfig
from services.tajweed.model import RuleKind, Verdict
from tests.tajweed import synth

TEMPOS = (0.25, 0.30, 0.35, 0.40, 0.45)
ACTUAL = (2, 4, 5, 6)
# (monfasel, mottasel, 'arid) the request's MoshafAttributes choose.
READINGS = ((4, 4, 4), (5, 5, 6), (2, 6, 2))


def _expected_verdict(actual: int, expected: int) -> Verdict:
    if actual == expected:
        return Verdict.CORRECT
    return Verdict.TOO_SHORT if actual < expected else Verdict.TOO_LONG


def _madd_groups(ref):  # type: ignore[no-untyped-def]
    return [i for i, g in enumerate(ref.groups) if g.phonemes[0] in "اۦۥ"]


def _with_madd_length(ref, tempo: float, actual: int):  # type: ignore[no-untyped-def]
    durations = synth.natural_durations(ref, tempo, 0.6 * tempo)
    madd = set(_madd_groups(ref))
    for i in madd:
        durations[i] = actual * tempo
    decoded = "".join(g.phonemes[0] * actual if i in madd else g.phonemes for i, g in enumerate(ref.groups))
    return durations, decoded


@pytest.mark.parametrize("reading", READINGS)
@pytest.mark.parametrize("tempo", TEMPOS)
def test_madd_lengths_are_classified_at_every_tempo(tempo: float, reading: tuple[int, int, int]) -> None:
    monfasel, mottasel, aared = reading
    ref = synth.reference(2, 19, madd_monfasel_len=monfasel, madd_mottasel_len=mottasel, madd_aared_len=aared)
    expected_len = {
        RuleKind.MADD_MUNFASIL: monfasel,
        RuleKind.MADD_MUTTASIL: mottasel,
        RuleKind.MADD_ARID: aared,
        RuleKind.MADD_TABEEI: 2,
        RuleKind.MADD_BADAL: 2,
    }
    for actual in ACTUAL:
        durations, decoded = _with_madd_length(ref, tempo, actual)
        for policy in ("spiky", "tiled"):
            timing = synth.alignment(ref, durations, policy=policy)
            for dec in (synth.decode(decoded), None):
                result = synth.validate(synth.request(ref, timing, dec, validators=["madd"]))
                assert abs(result.tempo.haraka_s - tempo) / tempo < 0.05
                kinds = {f.rule for f in result.findings}
                assert kinds == set(expected_len), kinds
                for finding in result.findings:
                    want = _expected_verdict(actual, expected_len[finding.rule])
                    assert finding.verdict == want, (tempo, actual, policy, dec is None, finding)
                    assert finding.measured.duration_harakat == pytest.approx(actual, abs=0.45)
                    if dec is not None:
                        assert finding.measured.symbol_count == actual


@pytest.mark.parametrize("tempo", TEMPOS)
def test_lazim_madd(tempo: float) -> None:
    ref = synth.reference(2, 1)
    for actual in ACTUAL:
        durations, decoded = _with_madd_length(ref, tempo, actual)
        result = synth.validate(
            synth.request(ref, synth.alignment(ref, durations), synth.decode(decoded), validators=["madd"])
        )
        assert [f.rule for f in result.findings] == [RuleKind.MADD_LAZIM, RuleKind.MADD_LAZIM]
        assert all(f.verdict == _expected_verdict(actual, 6) for f in result.findings)
        assert all(f.expected_harakat == (6,) for f in result.findings)


def test_leen_counts_the_haraka_before_it() -> None:
    # 106:3 ends on ٱلْبَيْتِ: leen of 4 harakat written as three yaa.
    ref = synth.reference(106, 3)
    leen = synth.group_index(ref, "ييي")
    for actual, verdict in ((4, Verdict.CORRECT), (2, Verdict.TOO_SHORT), (6, Verdict.TOO_LONG)):
        durations = synth.natural_durations(ref, 0.3, 0.18)
        durations[leen] = (actual - 1) * 0.3
        dec = synth.decode(synth.replace_group(ref, leen, "ي" * (actual - 1)))
        result = synth.validate(synth.request(ref, synth.alignment(ref, durations), dec, validators=["madd"]))
        [finding] = [f for f in result.findings if f.rule == RuleKind.MADD_LEEN]
        assert finding.verdict == verdict
        assert finding.measured.symbol_count == actual
        assert finding.measured.duration_harakat == pytest.approx(actual, abs=0.3)


def test_dual_evidence_disagreeing_strongly_is_uncertain() -> None:
    ref = synth.reference(2, 19)
    muttasil = synth.group_index(ref, "اااا")
    durations = synth.natural_durations(ref, 0.3, 0.18)
    durations[muttasil] = 4 * 0.3
    dec = synth.decode(synth.replace_group(ref, muttasil, "اا"))
    result = synth.validate(synth.request(ref, synth.alignment(ref, durations), dec, validators=["madd"]))
    [finding] = [f for f in result.findings if f.rule == RuleKind.MADD_MUTTASIL]
    assert finding.verdict == Verdict.UNCERTAIN
    assert finding.measured.duration_harakat == pytest.approx(4, abs=0.3)
    assert finding.measured.symbol_count == 2
    assert "disagree" in finding.message_en


# The blend and the tolerance on their own: no uncertain band beyond the tolerance, and an error
# however weakly the measure leans to it.
NO_BAND = TajweedConfig(calibration=Calibration(uncertain_margin_harakat=0.0, min_error_confidence=0.0))


def test_mild_disagreement_is_blended() -> None:
    ref = synth.reference(2, 19)
    muttasil = synth.group_index(ref, "اااا")
    durations = synth.natural_durations(ref, 0.3, 0.18)
    durations[muttasil] = 4.4 * 0.3
    dec = synth.decode(synth.replace_group(ref, muttasil, "ااااا"))
    result = synth.validate(synth.request(ref, synth.alignment(ref, durations), dec, validators=["madd"]), NO_BAND)
    [finding] = [f for f in result.findings if f.rule == RuleKind.MADD_MUTTASIL]
    # 4.4 from the timing and 5 from the symbols: a blend above 4.5.
    assert finding.verdict == Verdict.TOO_LONG
    assert finding.measured.symbol_count == 5


def test_symbols_alone_without_alignment() -> None:
    ref = synth.reference(2, 19)
    muttasil = synth.group_index(ref, "اااا")
    dec = synth.decode(synth.replace_group(ref, muttasil, "اا"))
    result = synth.validate(synth.request(ref, None, dec, validators=["madd"], duration_s=9.0))
    [finding] = [f for f in result.findings if f.rule == RuleKind.MADD_MUTTASIL]
    assert finding.verdict == Verdict.TOO_SHORT
    assert finding.measured.duration_harakat is None
    assert result.tempo.from_prior


def test_tolerance_option() -> None:
    ref = synth.reference(2, 19)
    muttasil = synth.group_index(ref, "اااا")
    durations = synth.natural_durations(ref, 0.3, 0.18)
    durations[muttasil] = 4.75 * 0.3
    timing = synth.alignment(ref, durations)
    verdicts = {}
    for tolerance in (0.5, 1.0):
        result = synth.validate(synth.request(ref, timing, None, validators=["madd"], tolerance=tolerance), NO_BAND)
        [finding] = [f for f in result.findings if f.rule == RuleKind.MADD_MUTTASIL]
        verdicts[tolerance] = finding.verdict
    assert verdicts == {0.5: Verdict.TOO_LONG, 1.0: Verdict.CORRECT}


def test_accepting_permitted_lengths() -> None:
    ref = synth.reference(2, 19, madd_aared_len=4)
    arid = synth.group_index(ref, "ۦۦۦۦ", 1)
    durations = synth.natural_durations(ref, 0.3, 0.18)
    durations[arid] = 6 * 0.3
    timing = synth.alignment(ref, durations)
    strict = synth.validate(synth.request(ref, timing, validators=["madd"]))
    lenient = synth.validate(synth.request(ref, timing, validators=["madd"]), TajweedConfig(madd_accept_permitted=True))
    [s] = [f for f in strict.findings if f.rule == RuleKind.MADD_ARID]
    [n] = [f for f in lenient.findings if f.rule == RuleKind.MADD_ARID]
    assert (s.verdict, s.expected_harakat) == (Verdict.TOO_LONG, (4,))
    assert (n.verdict, n.expected_harakat) == (Verdict.CORRECT, (2, 4, 6))
    assert "permits 2/4/6" in s.expected_text


@pytest.mark.parametrize(
    ("surah", "ayah", "phonemes", "kind"),
    [
        (2, 9, "اا", RuleKind.MADD_BADAL),  # ءَامَنُوا
        (2, 26, "ۦۦ", RuleKind.MADD_SILAH),  # بِهِۦ كَثِيرًا: silah sughra
        (2, 26, "ۦۦۦۦ", RuleKind.MADD_SILAH),  # بِهِۦٓ إِلَّا: silah kubra (a munfasil)
        (4, 1, "اا", RuleKind.MADD_IWAD),  # رَقِيبًا at the stop
        (106, 3, "ييي", RuleKind.MADD_LEEN),
        (2, 1, "اااااا", RuleKind.MADD_LAZIM),
    ],
)
def test_rule_kinds(surah: int, ayah: int, phonemes: str, kind: RuleKind) -> None:
    ref = synth.reference(surah, ayah)
    durations = synth.natural_durations(ref, 0.3, 0.18)
    result = synth.validate(synth.request(ref, synth.alignment(ref, durations), validators=["madd"]))
    kinds = {f.rule for f in result.findings if f.expected_phonemes == phonemes}
    assert kind in kinds
    assert all(f.verdict == Verdict.CORRECT for f in result.findings)


def test_finding_locates_the_madd() -> None:
    ref = synth.reference(2, 19)
    muttasil = synth.group_index(ref, "اااا")
    durations = synth.natural_durations(ref, 0.3, 0.18)
    timing = synth.alignment(ref, durations)
    result = synth.validate(synth.request(ref, timing, synth.decode(ref.phonemes), validators=["madd"]))
    [finding] = [f for f in result.findings if f.rule == RuleKind.MADD_MUTTASIL]
    group = ref.groups[muttasil]
    assert (finding.phoneme_start, finding.phoneme_end) == (group.phoneme_start, group.phoneme_end)
    assert ref.uthmani[finding.text_span[0] : finding.text_span[1]] == "ا"
    assert finding.word_index == group.word_index == 3  # ٱلسَّمَآءِ
    assert ref.words[3].uthmani.startswith("ٱلس")
    # The nucleus: from the end of the consonant before the madd (مَ) to the start of the next (ء).
    assert finding.time_span is not None
    before, after = timing.alignment.tokens[group.phoneme_start - 2], timing.alignment.tokens[group.phoneme_end]
    assert finding.time_span == (pytest.approx(before.span.end_s), pytest.approx(after.span.start_s))
    assert finding.time_span[0] < timing.starts[muttasil] and finding.time_span[1] >= timing.ends[muttasil] - 0.02
    assert finding.rule_name == "Mottasel Madd"
    assert finding.message_ar and finding.message_en


def test_a_pause_after_a_word_final_madd_is_not_counted() -> None:
    # فِىٓ ءَاذَانِهِم: the munfasil ends its word; the reciter breathes 0.7 s after it.
    ref = synth.reference(2, 19)
    munfasil = synth.group_index(ref, "ۦۦۦۦ")
    durations = synth.natural_durations(ref, 0.3, 0.18)
    for policy in ("spiky", "tiled"):
        timing = synth.alignment(ref, durations, policy=policy, pauses={munfasil: 0.7})
        with_energy = synth.request(
            ref, timing, validators=["madd"], envelope=synth.energy(synth.envelope(timing), 0.01)
        )
        [finding] = [f for f in synth.validate(with_energy).findings if f.rule == RuleKind.MADD_MUNFASIL]
        assert finding.verdict == Verdict.CORRECT
        assert finding.measured.duration_harakat == pytest.approx(4, abs=0.3)
        # Without an envelope the pause cannot be told from the madd (timeline.py).
        [blind] = [
            f
            for f in synth.validate(synth.request(ref, timing, validators=["madd"])).findings
            if f.rule == RuleKind.MADD_MUNFASIL
        ]
        assert blind.verdict == Verdict.TOO_LONG
