"""UNCERTAIN where the evidence does not allow a verdict: it carries its numbers and is no error."""

from __future__ import annotations

import pytest

from services.common.pb import common_pb2
from services.tajweed.calibration import Calibration
from services.tajweed.config import TajweedConfig
from services.tajweed.convert import request_from_proto, response_to_proto
from services.tajweed.core import TajweedValidator
from services.tajweed.model import Finding, RuleKind, Verdict
from tests.tajweed import synth

ERRORS = {Verdict.TOO_SHORT, Verdict.TOO_LONG, Verdict.MISSING, Verdict.WRONG, Verdict.EXTRA}


def _madd(
    surah: int, ayah: int, group: str, held: float, decoded: str | None, *, tempo: float = 0.3,
    config: TajweedConfig | None = None, occurrence: int = 0,
) -> Finding:
    """The madd spelled `group`, held `held` harakat, heard as `decoded` (None: timing alone)."""
    ref = synth.reference(surah, ayah)
    index = synth.group_index(ref, group, occurrence)
    durations = synth.natural_durations(ref, tempo, 0.6 * tempo)
    durations[index] = held * tempo
    dec = synth.decode(synth.replace_group(ref, index, decoded)) if decoded is not None else None
    req = synth.request(ref, synth.alignment(ref, durations, policy="late"), dec, validators=["madd"])
    [finding] = [f for f in synth.validate(req, config).findings if f.phoneme_start == ref.groups[index].phoneme_start]
    return finding


def test_two_symbols_decoded_and_a_short_timing_is_uncertain_not_an_error() -> None:
    """The issue's report line, '0.8 harakat | 2 symbols': the model heard both madd symbols of the
    natural madd in ٱللَّهُ, the timing says 0.8 harakat. One of them is wrong; which, is unknown."""
    finding = _madd(112, 1, "اا", 0.8, "اا")
    assert finding.rule == RuleKind.MADD_TABEEI
    assert finding.verdict == Verdict.UNCERTAIN
    assert finding.measured.duration_harakat == pytest.approx(0.8, abs=0.2)
    assert finding.measured.symbol_count == 2
    assert "disagree" in finding.message_en and "0.8" in finding.message_en
    assert "غير متفقتين" in finding.message_ar


def test_uncertain_reaches_the_response_and_nothing_else_is_wrong() -> None:
    ref = synth.reference(112, 1)
    madd = synth.group_index(ref, "اا")
    durations = synth.natural_durations(ref, 0.3, 0.18)
    durations[madd] = 0.8 * 0.3
    timing = synth.alignment(ref, durations, policy="late")
    req = synth.request(ref, timing, synth.decode(ref.phonemes), include_correct=False,
                        envelope=synth.energy(synth.envelope(timing), 0.01), is_complete=True)
    config = TajweedConfig()
    reply = response_to_proto(TajweedValidator(config).validate(request_from_proto(req, config)))
    assert [(f.source, f.verdict) for f in reply.findings] == [("madd", common_pb2.VERDICT_UNCERTAIN)]
    [finding] = reply.findings
    assert finding.measured.HasField("duration_harakat") and finding.measured.symbol_count == 2
    assert reply.calibration.defaults and reply.calibration.digest == Calibration().digest()


def test_a_borderline_length_is_uncertain() -> None:
    """Beyond the tolerance by less than the margin: a frame of alignment error would flip it."""
    finding = _madd(112, 1, "اا", 2.62, None, tempo=0.46)
    assert 2.5 < (finding.measured.duration_harakat or 0.0) < 2.75
    assert finding.verdict == Verdict.UNCERTAIN
    assert "unclear" in finding.message_en
    clear = _madd(112, 1, "اا", 3.2, None, tempo=0.46)
    assert clear.verdict == Verdict.TOO_LONG


def test_a_weakly_supported_error_is_uncertain() -> None:
    """5.2 harakat timed for a muttasil of 4: an error at the default level of evidence, not when
    the calibration asks for 99 % certainty."""
    assert _madd(2, 19, "اااا", 5.2, None).verdict == Verdict.TOO_LONG
    strict = TajweedConfig(calibration=Calibration(min_error_confidence=0.99))
    finding = _madd(2, 19, "اااا", 5.2, None, config=strict)
    assert finding.verdict == Verdict.UNCERTAIN
    assert finding.measured.duration_harakat == pytest.approx(5.2, abs=0.3)


def test_errors_can_require_both_measures_to_agree() -> None:
    """Timed 4.3, decoded 5 for a muttasil of 4: the blend (~4.6) is long; the timing alone is
    right. Calibrated to need agreement, that is no error."""
    plain = Calibration(uncertain_margin_harakat=0.0, min_error_confidence=0.0)
    both = Calibration(uncertain_margin_harakat=0.0, min_error_confidence=0.0, errors_need_agreement=True)
    blended = _madd(2, 19, "اااا", 4.3, "ااااا", config=TajweedConfig(calibration=plain))
    agreed = _madd(2, 19, "اااا", 4.3, "ااااا", config=TajweedConfig(calibration=both))
    assert blended.verdict == Verdict.TOO_LONG
    assert agreed.verdict == Verdict.UNCERTAIN
    # Both long: an error either way.
    assert _madd(2, 19, "اااا", 5.1, "ااااا", config=TajweedConfig(calibration=both)).verdict == Verdict.TOO_LONG


def test_a_right_length_with_no_nasality_is_uncertain_not_a_missing_ghunnah() -> None:
    """The nasal hold is right (2 harakat) but the model's ghonna level says not nasal: the two
    kinds of evidence disagree."""
    ref = synth.reference(2, 8)
    noon = synth.group_index(ref, "ننننَ")
    durations = synth.natural_durations(ref, 0.3, 0.18)
    decoded_group = noon  # the decode equals the reference: group indices match
    dec = synth.decode(ref.phonemes, sifat={decoded_group: {"ghonna": ("not_maghnoon", 0.95)}})
    req = synth.request(ref, synth.alignment(ref, durations, policy="late"), dec, validators=["ghunnah"])
    [finding] = [f for f in synth.validate(req).findings if f.phoneme_start == ref.groups[noon].phoneme_start]
    assert finding.verdict == Verdict.UNCERTAIN
    assert finding.measured.sifa_prob == pytest.approx(0.05)
    assert finding.measured.duration_harakat == pytest.approx(2.0, abs=0.3)
    assert finding.verdict not in ERRORS


def test_the_ghunnah_slack_widens_the_long_side_only_and_not_a_madds() -> None:
    """ghunnah_long_slack_harakat: a hold 0.9 harakat over its 2 passes, one 0.9 under is still too
    short; a madd's tolerance stays symmetric (the same policy without the slack, as madd.py uses)."""
    from services.tajweed.evidence import Length, LengthPolicy, judge_length
    from services.tajweed.ghunnah import length_policy

    calibration = Calibration(tolerance_harakat={"GHUNNAH": 0.5, "MADD_TABEEI": 0.5},
                              ghunnah_long_slack_harakat=1.0, uncertain_margin_harakat=0.0,
                              min_error_confidence=0.0)
    ghunnah = length_policy(calibration, "GHUNNAH")
    madd = LengthPolicy.of(calibration, calibration.tolerance("MADD_TABEEI"))

    def verdict(value: float, policy: LengthPolicy) -> Verdict:
        judged = judge_length(Length(value, 0.1), None, expected=2.0, permitted=(2.0,), policy=policy)
        assert judged is not None
        return judged.verdict

    assert [verdict(v, ghunnah) for v in (1.1, 1.6, 2.9, 3.6)] == [
        Verdict.TOO_SHORT, Verdict.CORRECT, Verdict.CORRECT, Verdict.TOO_LONG]
    assert [verdict(v, madd) for v in (1.1, 1.6, 2.9)] == [Verdict.TOO_SHORT, Verdict.CORRECT, Verdict.TOO_LONG]
