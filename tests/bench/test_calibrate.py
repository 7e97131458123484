"""The calibration step (bench/calibrate.py) on findings of known truth: the letter threshold that
minimises false alarms + 0.5 x uncertain + missed mistakes within the recall floors, the replay of
the stage's verdicts from a finding's numbers, and the fit of the length thresholds."""

from __future__ import annotations

from typing import Any

import pytest

from bench.calibrate import choose_letter_threshold, letter_figures


def _row(recitation: int, kind: str, word: int, confidence: float, mistakes: list[tuple[str, int]]) -> dict[str, Any]:
    on = [k for k, w in mistakes if w == word]
    return {"recitation": recitation, "kind": kind, "word_index": word, "mistakes": mistakes, "on_mistake": on,
            "rule": "RULE_PRONUNCIATION", "verdict": "VERDICT_WRONG", "confidence": confidence}


def _letters_and_slips(extra_slips: int = 0) -> list[dict[str, Any]]:
    rows = []
    # Ten letter mistakes, found with confidences 0.50..0.95; and slips on clean words at 0.3..0.57.
    for n in range(10):
        rows.append(_row(n, "letter", 2, 0.5 + 0.05 * n, [("letter", 2)]))
        rows.append(_row(100 + n, "clean", 1, 0.3 + 0.03 * n, []))
    rows += [_row(200 + n, "clean", 1, 0.52, []) for n in range(extra_slips)]
    return rows


def test_a_threshold_that_would_miss_a_mistake_must_remove_more_than_it_costs() -> None:
    rows = _letters_and_slips()
    threshold, curve = choose_letter_threshold(rows, clean_words=50)
    # At 0.5 every mistake is found (3 slips left, 7 made uncertain: 3 + 3.5); at 0.55 one mistake
    # goes (1 slip left, 10 uncertain, 1 missed: 1 + 5 + 1): 0.5 and 0.49 tie, the middle is 0.5.
    assert threshold == 0.5
    chosen = letter_figures(rows, 50, threshold)
    assert chosen["recall"]["letter"] == 1.0
    assert curve[0]["letter_false_alarms_per_100_clean_words"] == 20.0
    assert chosen["letter_false_alarms_per_100_clean_words"] == 6.0


def test_the_threshold_stops_where_recall_would_fall_under_the_floor() -> None:
    rows = _letters_and_slips(extra_slips=4)
    threshold, _ = choose_letter_threshold(rows, clean_words=54)
    # Four more slips at 0.52 make one missed mistake worth it, but the floor (0.9) allows one only.
    assert threshold == 0.55
    chosen = letter_figures(rows, 54, threshold)
    assert chosen["recall"]["letter"] == 0.9
    assert chosen["letter_false_alarms_per_100_clean_words"] == round(100 / 54, 2)  # only the 0.57 slip is left


def test_a_kind_already_under_the_floor_keeps_what_it_had() -> None:
    rows = [_row(0, "haraka", 1, 0.9, [("haraka", 1)]), _row(1, "haraka", 1, 0.2, [("haraka", 3)])]
    threshold, curve = choose_letter_threshold(rows, clean_words=10)
    # Half the haraka mistakes are found at any threshold up to 0.9: the floor is 0.5, not 0.9;
    # every threshold above the slip (0.2) and up to 0.9 costs the same: the middle of them.
    assert 0.2 < threshold <= 0.9
    assert threshold == 0.56
    chosen = next(c for c in curve if c["threshold"] == threshold)
    assert chosen["recall"]["haraka"] == 0.5
    assert chosen["letter_false_alarms_per_100_clean_words"] == 0.0


# ---------------------------------------------------------------- replaying the stage's verdicts

from dataclasses import replace  # noqa: E402

from google.protobuf import json_format  # noqa: E402

from bench.calibrate import Split, figures, fit, replay  # noqa: E402
from services.tajweed.calibration import Calibration  # noqa: E402
from services.tajweed.config import TajweedConfig  # noqa: E402
from services.tajweed.convert import finding_to_proto  # noqa: E402
from services.tajweed.model import Finding  # noqa: E402
from tests.tajweed import synth  # noqa: E402

SOME_CALIBRATION = replace(
    Calibration(), tolerance_harakat={"MADD_TABEEI": 0.375, "GHUNNAH": 0.5, "IKHFA": 1.0},
    uncertain_margin_harakat=0.125, min_error_confidence=0.7, symbol_sd_harakat=1.2, disagreement_harakat=1.5,
    ghonna_absent=0.4, qalqla_present=0.6, qalqla_absent=0.35, ghunnah_long_slack_harakat=0.5)


def _dumped(finding: Finding) -> dict[str, Any]:
    """A finding as bench.demo_model_eval dumps it."""
    proto = finding_to_proto(finding)
    return {"rule": f"RULE_{finding.rule.value}", "verdict": f"VERDICT_{finding.verdict.value}",
            "confidence": proto.confidence, "source": finding.source, "rule_name": finding.rule_name,
            "message_en": finding.message_en, "measured": json_format.MessageToDict(proto.measured),
            "expected": json_format.MessageToDict(proto.expected)}


def _stage_findings(calibration: Calibration) -> list[Finding]:
    config = TajweedConfig(calibration=calibration)
    found: list[Finding] = []
    for surah, ayah in ((2, 19), (2, 8), (2, 4)):
        ref = synth.reference(surah, ayah)
        for tempo in (0.25, 0.4):
            for stretch in (0.4, 0.8, 1.0, 1.3, 2.0):
                durations = [d * (stretch if len(g.phonemes) > 2 else 1.0)
                             for d, g in zip(synth.natural_durations(ref, tempo, 0.6 * tempo), ref.groups, strict=True)]
                for decoded in (ref.phonemes, "".join(g.phonemes[:2] if len(g.phonemes) > 3 else g.phonemes
                                                      for g in ref.groups)):
                    nasal = {i: {"ghonna": ("not_maghnoon", 0.7)} for i, g in enumerate(ref.groups)
                             if g.phonemes[0] in "نم"}
                    request = synth.request(ref, synth.alignment(ref, durations), synth.decode(decoded, sifat=nasal),
                                            validators=["madd", "ghunnah"])
                    found += synth.validate(request, config).findings
    for group, heard, sifa in (("دڇ", "دڇ", ("moqalqal", 0.65)), ("دڇ", "د", ("not_moqalqal", 0.5)),
                               ("دڇ", "دڇ", ("not_moqalqal", 0.9))):
        ref = synth.reference(112, 1)
        index = synth.group_index(ref, group)
        dec = synth.decode(synth.replace_group(ref, index, heard), sifat={index: {"qalqla": sifa}})
        found += synth.validate(synth.request(ref, None, dec, validators=["qalqalah"], duration_s=5.0), config).findings
    return found


@pytest.mark.parametrize("calibration", [Calibration(), SOME_CALIBRATION], ids=["defaults", "fitted"])
def test_the_replay_gives_every_finding_the_verdict_the_stage_gave(calibration: Calibration) -> None:
    findings = _stage_findings(calibration)
    verdicts = {f.verdict for f in findings}
    assert len(findings) > 50 and len(verdicts) >= 3, verdicts
    for finding in findings:
        assert replay(_dumped(finding), calibration) == f"VERDICT_{finding.verdict.value}", finding


def test_the_replay_under_other_thresholds_is_what_the_stage_says_under_them() -> None:
    rows = [_dumped(f) for f in _stage_findings(Calibration())]
    again = _stage_findings(SOME_CALIBRATION)
    assert [replay(r, SOME_CALIBRATION) for r in rows] == [f"VERDICT_{f.verdict.value}" for f in again]


def _madd_row(recitation: int, kind: str, duration: float, mistakes: list[tuple[str, int]]) -> dict[str, Any]:
    return {"recitation": recitation, "kind": kind, "word_index": 2, "mistakes": mistakes, "rule": "RULE_MADD_TABEEI",
            "verdict": "VERDICT_CORRECT", "confidence": 0.9, "source": "madd", "rule_name": "Normal Madd",
            "measured": {"durationHarakat": duration, "durationSd": 0.2},
            "expected": {"harakat": [2], "text": "2 harakat"}}


def test_the_fit_narrows_what_the_mistakes_allow_and_no_further() -> None:
    # Short madds injected at 0.9-1.3 harakat; right ones timed 1.2-2.0 (the timing's own spread).
    rows = [_madd_row(n, "short-madd", 0.9 + 0.05 * n, [("short-madd", 2)]) for n in range(9)]
    rows += [_madd_row(100 + n, "clean", 1.2 + 0.1 * n, []) for n in range(9)]
    split = Split.of(rows, clean_words=40)
    before = figures(split, Calibration())
    cal, report = fit(split)
    after = report["fitted"]
    assert after["recall"]["short-madd"] >= min(0.9, before["recall"]["short-madd"])
    assert after["cost"] < before["cost"]
    assert after["missed"] <= before["missed"]
    assert report["chosen"]["tolerance MADD_TABEEI"] == cal.tolerance("MADD_TABEEI")


def _qalqalah_row(recitation: int, kind: str, level_db: float, mistakes: list[tuple[str, int]]) -> dict[str, Any]:
    # No sifa and no decoded symbol: the release alone decides.
    return {"recitation": recitation, "kind": kind, "word_index": 2, "mistakes": mistakes, "rule": "RULE_QALQALAH",
            "verdict": "VERDICT_CORRECT", "confidence": 0.9, "source": "qalqalah", "rule_name": "Qalqalah",
            "measured": {"energyRatio": 10.0 ** (level_db / 20.0)}, "expected": {}}


def test_the_two_levels_of_one_evidence_move_together() -> None:
    """Releases skipped at -11..-5 dB under the loud level, right ones at -3..0: both levels must go
    above -5 to catch them. Starting from -12 / -12, one level at a time cannot (the release level
    alone gains nothing while no-release holds it down; no-release cannot pass the release level)."""
    rows = [_qalqalah_row(n, "no-qalqalah", -11.0 + n, [("no-qalqalah", 2)]) for n in range(7)]
    rows += [_qalqalah_row(100 + n, "clean", -3.0 + 0.5 * n, []) for n in range(7)]
    split = Split.of(rows, clean_words=20)
    start = replace(Calibration(), release_level_db=-12.0, no_release_level_db=-12.0)
    assert figures(split, start)["recall"]["no-qalqalah"] == 0.0
    cal, report = fit(split, start)
    assert report["fitted"]["recall"]["no-qalqalah"] == 1.0
    assert report["fitted"]["false_alarm_lines"] == 0
    assert -5.0 <= cal.no_release_level_db <= cal.release_level_db <= -3.0
    assert report["chosen"]["release_level_db+no_release_level_db"] == (cal.release_level_db, cal.no_release_level_db)


def _letter_row(recitation: int, kind: str, expected: str, confidence: float, mistakes: list[tuple[str, int]],
                heard: int | None = None) -> dict[str, Any]:
    measured = {"phasesHeard": heard, "phases": 4} if heard is not None else {}
    return {"recitation": recitation, "kind": kind, "word_index": 2, "mistakes": mistakes,
            "on_mistake": [k for k, w in mistakes if w == 2], "rule": "RULE_PRONUNCIATION",
            "verdict": "VERDICT_WRONG", "confidence": confidence, "source": "explain_error",
            "rule_name": "normal replace", "expected_phonemes": expected, "heard_phonemes": "دَ", "measured": measured}


def test_the_replay_weighs_a_letter_error_by_the_phases_that_heard_it() -> None:
    cal = replace(Calibration(), letter_sure_phases=0.75, letter_dismiss_phases=0.5)
    verdicts = [replay(_letter_row(0, "clean", "ءَ", 0.9, [], heard=n), cal) for n in (1, 2, 3, 4)]
    assert verdicts == ["VERDICT_CORRECT", "VERDICT_UNCERTAIN", "VERDICT_WRONG", "VERDICT_WRONG"]
    # Without phases (an older run, or MUAALEM_LETTER_PHASES=1) the confidence alone decides.
    assert replay(_letter_row(0, "clean", "ءَ", 0.9, []), cal) == "VERDICT_WRONG"


def test_a_letter_the_model_hears_worse_gets_its_own_threshold() -> None:
    # Glottal stops: 20 slips on clean words at 0.60-0.79, 10 recited mistakes at 0.85-0.94; a
    # rarer letter: 12 mistakes at 0.55-0.66 and 6 slips at 0.30-0.35. One threshold cannot keep
    # the rarer letter's mistakes and drop the glottal stop's slips.
    rows = [_letter_row(n, "clean", "ءَ", 0.6 + 0.01 * n, []) for n in range(20)]
    rows += [_letter_row(100 + n, "letter", "ءَ", 0.85 + 0.01 * n, [("letter", 2)]) for n in range(10)]
    rows += [_letter_row(200 + n, "letter", "سَ", 0.55 + 0.01 * n, [("letter", 2)]) for n in range(12)]
    rows += [_letter_row(300 + n, "clean", "سَ", 0.3 + 0.01 * n, []) for n in range(6)]
    split = Split.of(rows, clean_words=100)
    cal, report = fit(split)
    assert report["fitted"]["recall"]["letter"] == 1.0
    assert report["fitted"]["false_alarm_lines"] == 0
    assert 0.79 < cal.letter_threshold("ء") <= 0.85
    assert 0.35 < cal.letter_threshold("س") <= 0.55
    # 18 findings of "س" are too few for a threshold of its own: it has the global one.
    assert set(cal.letter_min_confidence_by_letter) == {"ء"}


def test_the_replay_weighs_a_substituted_letter_by_the_aligner() -> None:
    cal = replace(Calibration(), letter_uncertain_llr=-0.5, letter_dismiss_llr=0.0)

    def replayed(llrs: list[float], expected: str = "دڇ") -> str:
        row = _letter_row(0, "clean", expected, 0.9, [])
        row["aligned"] = [[v, 0.5, "ج"] for v in llrs]
        return replay(row, cal)

    # The most contradicted expected phoneme decides.
    assert replayed([-12.0, 3.0]) == "VERDICT_WRONG"
    assert replayed([-0.3, 3.0]) == "VERDICT_UNCERTAIN"
    assert replayed([0.4, 3.0]) == "VERDICT_CORRECT"
    assert replayed([]) == "VERDICT_WRONG"  # no aligned phonemes: not weighed
    assert replayed([0.4], expected="") == "VERDICT_WRONG"  # an added sound has no expected one


def test_the_replay_of_letter_findings_is_what_the_stage_says() -> None:
    """Findings judged under the defaults (as the calibration run judges them), replayed under
    other letter thresholds, get the verdicts the stage gives under those thresholds."""
    ref = synth.reference(112, 1)
    right, wrong = ref.phonemes, "كُ" + ref.phonemes[2:]
    cal = replace(Calibration(), letter_sure_phases=1.0, letter_dismiss_phases=0.5, letter_uncertain_llr=-0.5,
                  letter_dismiss_llr=0.0, letter_min_confidence_by_letter={"ق": 0.95})
    cases = 0
    for llr in (-12.0, -0.3, 0.4):
        for phases in ((wrong, wrong, wrong), (wrong, right, wrong), (right, right, wrong)):
            timing = synth.alignment(ref, synth.natural_durations(ref, 0.3, 0.18))
            for token in timing.alignment.tokens[:2]:
                token.llr = llr
            decode = synth.decode(wrong, prob=0.9)
            decode.phase_phonemes.extend(phases)
            request = synth.request(ref, timing, decode, validators=["explain_error"])
            rows = []
            for finding in synth.validate(request).findings:
                row = _dumped(finding)
                tokens = timing.alignment.tokens[finding.phoneme_start : finding.phoneme_end]
                row.update(expected_phonemes=finding.expected_phonemes, heard_phonemes=finding.heard_phonemes,
                           aligned=[[t.llr, t.gop_posterior, t.competitor] for t in tokens])
                rows.append(row)
            judged = synth.validate(request, TajweedConfig(calibration=cal)).findings
            staged = [f"VERDICT_{f.verdict.value}" for f in judged]
            replayed = [replay(r, cal) for r in rows]
            # A finding the thresholds remove replays as correct: no finding.
            assert [v for v in replayed if v != "VERDICT_CORRECT"] == staged, (llr, phases)
            cases += bool(staged)
    assert cases >= 3
