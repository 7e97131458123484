"""Letter and haraka errors from quran-transcript's explain_error, as findings; and the real
model's decode of test.wav (its prediction equals the reference)."""

from __future__ import annotations

import json

import pytest

from services.common.pb import common_pb2
from services.tajweed.model import RuleKind, Verdict
from tests.conftest import FIXTURES_DIR
from tests.tajweed import synth


def _errors(decoded: str):  # type: ignore[no-untyped-def]
    ref = synth.reference(112, 1)
    timing = synth.alignment(ref, synth.natural_durations(ref, 0.3, 0.18))
    result = synth.validate(synth.request(ref, timing, synth.decode(decoded, prob=0.9), validators=["explain_error"]))
    return ref, result.findings


def test_substitution() -> None:
    ref, findings = _errors("كُ" + synth.reference(112, 1).phonemes[2:])
    [finding] = findings
    assert (finding.rule, finding.verdict) == (RuleKind.PRONUNCIATION, Verdict.WRONG)
    assert (finding.expected_phonemes, finding.heard_phonemes) == ("قُ", "كُ")
    assert ref.uthmani[finding.text_span[0] : finding.text_span[1]] == "قُ"
    assert finding.word_index == 0 and finding.source == "explain_error"
    assert finding.rule_name == "normal replace"
    assert "كُ" in finding.message_ar and "instead of" in finding.message_en
    assert finding.time_span is not None and finding.time_span[0] == pytest.approx(0.3, abs=0.04)


def test_deletion_and_insertion() -> None:
    ref = synth.reference(112, 1)
    hu = synth.group_index(ref, "هُ")
    _, findings = _errors(synth.replace_group(ref, hu, ""))
    [missing] = findings
    assert (missing.rule, missing.verdict, missing.expected_phonemes) == (RuleKind.PRONUNCIATION, Verdict.MISSING, "هُ")
    assert missing.word_index == 1
    _, findings = _errors(synth.replace_group(ref, hu, "زَهُ"))
    [extra] = findings
    assert (extra.verdict, extra.heard_phonemes, extra.phoneme_start, extra.phoneme_end) == (
        Verdict.EXTRA, "زَ", ref.groups[hu].phoneme_start, ref.groups[hu].phoneme_start
    )
    # Where the inserted tokens were decoded: frames 2 x position, 40 ms each.
    assert extra.time_span == (2 * ref.groups[hu].phoneme_start * 0.04, (2 * ref.groups[hu].phoneme_start + 3) * 0.04)


def test_tashkeel() -> None:
    ref = synth.reference(112, 1)
    _, findings = _errors("قَ" + ref.phonemes[2:])
    [finding] = findings
    assert (finding.rule, finding.verdict, finding.heard_phonemes) == (RuleKind.TASHKEEL, Verdict.WRONG, "قَ")
    # A vowel on the sakin lam of قُلْ.
    lam = synth.group_index(ref, "ل")
    _, findings = _errors(synth.replace_group(ref, lam, "لَ"))
    [added] = findings
    assert (added.rule, added.verdict) == (RuleKind.TASHKEEL, Verdict.EXTRA)


def test_lengths_are_left_to_their_validators() -> None:
    ref = synth.reference(112, 1)
    shadda = synth.group_index(ref, "للَ")
    assert not _errors(synth.replace_group(ref, shadda, "لَ"))[1]
    assert not _errors(ref.phonemes[:-1])[1]  # qalqalah missing
    madd = synth.group_index(ref, "اا")
    assert not _errors(synth.replace_group(ref, madd, "اااا"))[1]


def test_real_model_output_on_test_wav() -> None:
    data = json.loads((FIXTURES_DIR / "test_wav_real_model_output.json").read_text(encoding="utf-8"))
    predicted = data["predicted"]
    attrs = data["reference"]["moshaf"]
    ref = synth.words_reference(
        8, 75, 17, 9,
        madd_monfasel_len=attrs["madd_monfasel_len"],
        madd_mottasel_len=attrs["madd_mottasel_len"],
        madd_mottasel_waqf=attrs["madd_mottasel_waqf"],
        madd_aared_len=attrs["madd_aared_len"],
    )
    assert ref.phonemes == data["reference"]["phonemes"]
    levels = [k for k in predicted["sifat"][0] if k != "phonemes_group"]
    decode = common_pb2.Decode(
        phonemes=predicted["phonemes"],
        tokens=[
            common_pb2.DecodedToken(phoneme=p, id=i, prob=prob, start_frame=2 * n, end_frame=2 * n + 1)
            for n, (p, i, prob) in enumerate(
                zip(predicted["phonemes"], predicted["ids"], predicted["probs"], strict=True)
            )
        ],
        sifat=[
            common_pb2.Sifat(
                phonemes_group=s["phonemes_group"],
                **{level: common_pb2.SifaValue(label=s[level]["text"], prob=s[level]["prob"]) for level in levels},
            )
            for s in predicted["sifat"]
        ],
    )
    req = synth.request(ref, None, decode, validators=["madd", "ghunnah", "explain_error"], duration_s=8.77)
    findings = synth.validate(req).findings
    assert not [f for f in findings if f.verdict != Verdict.CORRECT]
    kinds = {f.rule for f in findings}
    assert {RuleKind.MADD_TABEEI, RuleKind.MADD_MUTTASIL, RuleKind.GHUNNAH, RuleKind.IQLAB, RuleKind.IDGHAM} <= kinds
    ghunnah = [f for f in findings if f.source == "ghunnah"]
    assert all(f.measured.sifa_prob is not None and f.measured.sifa_prob > 0.5 for f in ghunnah)


def test_a_weak_letter_error_is_uncertain_under_a_calibrated_threshold() -> None:
    from dataclasses import replace

    from services.tajweed.calibration import Calibration
    from services.tajweed.config import TajweedConfig

    ref = synth.reference(112, 1)
    timing = synth.alignment(ref, synth.natural_durations(ref, 0.3, 0.18))
    decoded = synth.decode("كُ" + ref.phonemes[2:], prob=0.55)
    request = synth.request(ref, timing, decoded, validators=["explain_error"])
    [weak] = synth.validate(request).findings
    assert weak.verdict == Verdict.WRONG  # the default keeps every letter error
    calibrated = replace(Calibration(), letter_min_confidence=weak.confidence + 0.01, fitted_on_surahs=(80,))
    [uncertain] = synth.validate(request, TajweedConfig(calibration=calibrated)).findings
    assert uncertain.verdict == Verdict.UNCERTAIN
    assert f"{weak.confidence:.2f}" in uncertain.message_en and "كُ" in uncertain.message_en


def _phased(decoded: str, phases: tuple[str, ...], **calibration: float):  # type: ignore[no-untyped-def]
    from dataclasses import replace

    from services.tajweed.calibration import Calibration
    from services.tajweed.config import TajweedConfig

    ref = synth.reference(112, 1)
    timing = synth.alignment(ref, synth.natural_durations(ref, 0.3, 0.18))
    decode = synth.decode(decoded, prob=0.9)
    decode.phase_phonemes.extend(phases)
    request = synth.request(ref, timing, decode, validators=["explain_error"])
    config = TajweedConfig(calibration=replace(Calibration(), **calibration)) if calibration else TajweedConfig()
    return synth.validate(request, config).findings


def test_a_letter_error_every_frame_phase_hears_is_an_error() -> None:
    ref = synth.reference(112, 1)
    wrong = "كُ" + ref.phonemes[2:]
    [finding] = _phased(wrong, (wrong, wrong, wrong))
    assert finding.verdict == Verdict.WRONG
    assert (finding.measured.phases_heard, finding.measured.phases) == (4, 4)


def test_a_letter_error_some_frame_phases_miss_is_uncertain_and_one_most_miss_is_none() -> None:
    ref = synth.reference(112, 1)
    wrong, right = "كُ" + ref.phonemes[2:], ref.phonemes
    [doubted] = _phased(wrong, (wrong, right, wrong))
    assert doubted.verdict == Verdict.UNCERTAIN
    assert (doubted.measured.phases_heard, doubted.measured.phases) == (3, 4)
    assert "heard in 3 of 4 listenings" in doubted.message_en and "كُ" in doubted.message_en
    # Heard by the decode alone: three decodes of four heard the letter as written.
    assert not _phased(wrong, (right, right, right))
    # An error elsewhere is not this one's support; one on the same sound is, heard otherwise.
    elsewhere = ref.phonemes[:6] + "زَ" + ref.phonemes[6:]
    assert not _phased(wrong, (elsewhere, elsewhere, elsewhere))
    [supported] = _phased(wrong, ("تُ" + ref.phonemes[2:],) * 3)
    assert supported.verdict == Verdict.WRONG and supported.measured.phases_heard == 4
    # The calibration sets both shares: with every decode needed to show it, even 3 of 4 is none.
    assert _phased(wrong, (wrong, right, wrong), letter_sure_phases=1.0, letter_dismiss_phases=1.0) == ()
    [kept] = _phased(wrong, (wrong, right, right), letter_sure_phases=0.5, letter_dismiss_phases=0.5)
    assert kept.verdict == Verdict.WRONG


def test_a_decode_without_frame_phases_is_judged_as_before() -> None:
    ref = synth.reference(112, 1)
    [finding] = _phased("كُ" + ref.phonemes[2:], ())
    assert finding.verdict == Verdict.WRONG
    assert finding.measured.phases is None and finding.measured.phases_heard is None


def test_an_added_sound_placed_beside_the_next_group_by_a_phase_is_the_same_error() -> None:
    ref = synth.reference(112, 1)
    hu = synth.group_index(ref, "هُ")
    extra = synth.replace_group(ref, hu, "زَهُ")
    # Another decode's alignment puts the same added sound after هُ instead of before it.
    after = synth.replace_group(ref, hu, "هُزَ")
    [finding] = _phased(extra, (after, after, after))
    assert (finding.verdict, finding.measured.phases_heard) == (Verdict.EXTRA, 4)
    # An added sound a word away is not it.
    far = ref.phonemes + "زَ"
    assert not _phased(extra, (far, far, far))


def test_a_letter_threshold_of_its_own_judges_that_letter_only() -> None:
    ref = synth.reference(112, 1)
    qaf = "كُ" + ref.phonemes[2:]
    [strict] = _phased(qaf, (), letter_min_confidence_by_letter={"ق": 0.95})
    assert strict.verdict == Verdict.UNCERTAIN  # the decode's 0.9 is under the ق's own 0.95
    [other] = _phased(qaf, (), letter_min_confidence_by_letter={"ه": 0.95})
    assert other.verdict == Verdict.WRONG


def test_the_aligner_weighs_a_substituted_letter() -> None:
    from dataclasses import replace

    from services.tajweed.calibration import Calibration
    from services.tajweed.config import TajweedConfig

    ref = synth.reference(112, 1)
    wrong = "كُ" + ref.phonemes[2:]

    def judged(llr: float, **calibration: float):  # type: ignore[no-untyped-def]
        timing = synth.alignment(ref, synth.natural_durations(ref, 0.3, 0.18))
        for token in timing.alignment.tokens[:2]:  # قُ, which the decode heard as كُ
            token.llr = llr
        request = synth.request(ref, timing, synth.decode(wrong, prob=0.9), validators=["explain_error"])
        return synth.validate(request, TajweedConfig(calibration=replace(Calibration(), **calibration))).findings

    limits = {"letter_uncertain_llr": -0.5, "letter_dismiss_llr": 0.0}
    [sure] = judged(-12.0, **limits)  # the competitor far likelier than the ق: a mistake
    assert sure.verdict == Verdict.WRONG
    [weak] = judged(-0.3, **limits)  # the ق nearly as likely: weak evidence
    assert weak.verdict == Verdict.UNCERTAIN and "-0.3" in weak.message_en and "كُ" in weak.message_en
    assert not judged(0.4, **limits)  # the ق likelier than anything else: no finding
    [unused] = judged(0.4)  # the defaults do not weigh it
    assert unused.verdict == Verdict.WRONG
