"""Qalqalah: a sakin ق ط ب ج د released with an audible bounce (the script's ڇ after the letter).

Two kinds of evidence, each read as yes / no / too weak to say (calibration.py's levels):
- the release itself: inside the letter's segment (timeline.py: its closure and ڇ, up to
  the next consonant or a silence), the closure before the largest rise of energy and the
  peak in the first 60 ms after the energy leaves it (energy.burst), against the
  recitation's loud level: at least `release_level_db` is a release (a bounce is about as
  loud as the vowels), at most `no_release_level_db` none (held without release, or
  skipped into the next sound);
- the model: the qalqla sifa of the decoded group, P(moqalqal), at least `qalqla_present`
  yes, at most `qalqla_absent` no; the decoded ڇ cross-checks it (a symbol the sifa
  contradicts leaves the model undecided). Without sifat the symbol alone speaks.
The release decides when it is clear, unless the model clearly says the opposite (then
UNCERTAIN: the two disagree); when the release is unclear or unmeasured the model
decides, and when that is unclear too the verdict is UNCERTAIN. So a missing release is
reported here, as a qalqalah MISSING, even where the model decoded ڇ out of habit; it
is never a letter error (explain.py leaves a changed ڇ to this validator).
Kubra at a stop (the last letter, or one followed by a lasting silence), sughra elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from services.tajweed import energy as energy_measures
from services.tajweed import messages, phonetics
from services.tajweed.analysis import Analysis
from services.tajweed.calibration import Calibration
from services.tajweed.evidence import Level, level, logistic, symbol_confidence
from services.tajweed.matching import DecodedGroup
from services.tajweed.model import Finding, Group, Measured, RuleKind, Verdict
from services.tajweed.timeline import Segment, Timeline

SOURCE = "qalqalah"
# How far before the letter's segment its closure may lie (a stop's closure lasts 50-150 ms).
CLOSURE_LOOKBACK_S = 0.1


@dataclass(frozen=True)
class _Model:
    level: Level | None
    # P(moqalqal) as the model has it: the sifa, or the decoded symbol's confidence.
    prob: float | None
    symbol: int | None
    sifa: float | None


def _model(analysis: Analysis, decoded: DecodedGroup | None, group: Group) -> _Model:
    if decoded is None or decoded.core != group.core:
        return _Model(None, None, None, None)
    calibration = analysis.calibration
    symbol = decoded.count_of(phonetics.QALQALAH_MARK)
    released = [t.prob for t in decoded.tokens if t.phoneme == phonetics.QALQALAH_MARK]
    symbol_level = Level.YES if symbol else Level.NO
    if "qalqla" not in decoded.sifat:
        # The symbol alone: how sure the model was of what it decoded.
        sure = symbol_confidence(released[0] if released else decoded.mean_prob())
        prob = sure if symbol else 1.0 - sure
        return _Model(symbol_level if sure >= calibration.qalqla_present else Level.WEAK, prob, symbol, None)
    return sifa_model(symbol, decoded.sifat["qalqla"].probability_of("moqalqal"), calibration)


def sifa_model(symbol: int, sifa: float, calibration: Calibration) -> _Model:
    """The model's evidence from the qalqla sifa, cross-checked by the decoded ڇ (`symbol` of them)."""
    symbol_level = Level.YES if symbol else Level.NO
    sifa_level = level(sifa, calibration.qalqla_present, calibration.qalqla_absent)
    if sifa_level not in (Level.WEAK, symbol_level):
        return _Model(Level.WEAK, sifa, symbol, sifa)
    return _Model(sifa_level, sifa, symbol, sifa)


def judge(release_level_db: float | None, model: _Model, calibration: Calibration) -> tuple[Verdict, float]:
    """The verdict and its confidence from the release's level against the loud level (None:
    not measured) and the model."""
    release = release_prob = None
    if release_level_db is not None:
        present, absent = calibration.release_level_db, calibration.no_release_level_db
        release = level(release_level_db, present, absent)
        release_prob = _release_prob(release_level_db, present, absent)
    return _verdict(release, release_prob, model)


def _is_kubra(analysis: Analysis, group: Group) -> bool:
    if analysis.is_final(group.index):
        return analysis.reference.ends_with_waqf
    timeline = analysis.timeline
    return timeline is not None and timeline.silence_after(group.end - 1) is not None


def _verdict(
    release: Level | None, release_prob: float | None, model: _Model
) -> tuple[Verdict, float]:
    """The verdict and its confidence: the probability the deciding evidence gives it."""
    if release is not None and release_prob is not None and release != Level.WEAK:
        opposite = Level.NO if release == Level.YES else Level.YES
        if model.level == opposite and model.prob is not None:
            return Verdict.UNCERTAIN, 1.0 - abs(release_prob - model.prob)
        if release == Level.YES:
            return Verdict.CORRECT, release_prob
        return Verdict.MISSING, 1.0 - release_prob
    if model.level == Level.YES and model.prob is not None:
        return Verdict.CORRECT, model.prob
    if model.level == Level.NO and model.prob is not None:
        return Verdict.MISSING, 1.0 - model.prob
    return Verdict.UNCERTAIN, 0.5


def _release_prob(release_level_db: float, present: float, absent: float) -> float:
    """P(released) from the release's level: a logistic centred between the two levels."""
    scale = max((present - absent) / 4.0, 0.5)
    return logistic((release_level_db - (present + absent) / 2.0) / scale)


def _burst(energy: energy_measures.EnergyProfile, timeline: Timeline, letter: Segment) -> energy_measures.Burst | None:
    """The release in the letter's segment; if nothing rises there, in the segment with up to
    CLOSURE_LOOKBACK_S before it: a model may spike a stop at its release, so that the closure
    lies in the blanks the vowel before it took (seen on surahs 80-89 with the demo model)."""
    found = energy_measures.burst(energy, letter.start_s, letter.end_s)
    if found is not None and found.rose:
        return found
    lead_s = max(timeline.segments[letter.index - 1].start_s if letter.index > 0 else letter.start_s,
                 letter.start_s - CLOSURE_LOOKBACK_S)
    lead = energy.window(lead_s, letter.start_s)
    if len(lead) == 0:
        return found
    closure = int(np.argmin(lead))
    # A stop's closure is silent: a dip that is not (a fricative, a nasal before the vowel)
    # is another sound, and the rise out of it the vowel's onset, no release.
    if lead[closure] >= energy.silence_db:
        return found
    # From the loudest frame before the closure: the end of the vowel before the letter.
    start = energy.frame(lead_s) + int(np.argmax(lead[: closure + 1]))
    earlier = energy_measures.burst(energy, start * energy.hop_s, letter.end_s)
    return earlier if earlier is not None else found


def _release_text(measured: energy_measures.Burst) -> str:
    under = messages.num(max(0.0, -measured.level_db))
    if not measured.rose:
        return f"no rise after the closure, {under} dB under the loudest vowels"
    return f"release {under} dB under the loudest vowels, +{messages.num(measured.rise_db)} dB over the closure"


def validate(analysis: Analysis) -> list[Finding]:
    calibration = analysis.calibration
    reference = analysis.reference
    rule_names = {
        reference.group_at(r.phoneme_start).index: r for r in reference.rules if r.name == "Qalqalah"
    }
    findings: list[Finding] = []
    for group in reference.groups:
        if phonetics.QALQALAH_MARK not in group.mark:
            continue
        parts: list[str] = []
        decoded = analysis.decoded(group.index)
        model = _model(analysis, decoded, group)
        if decoded is not None and model.symbol is not None:
            parts.append(f"decoded {decoded.phonemes}")
        if model.sifa is not None:
            parts.append(f"P(moqalqal) {messages.num(model.sifa, 2)}")
        release_level: float | None = None
        release: Level | None = None
        timeline = analysis.timeline
        letter = timeline.segment(group.start) if timeline is not None else None
        if analysis.energy is not None and letter is not None and timeline is not None:
            measured = _burst(analysis.energy, timeline, letter)
            if measured is not None:
                release_level = measured.level_db
                release = level(release_level, calibration.release_level_db, calibration.no_release_level_db)
                parts.append(_release_text(measured))
        if model.level is None and release is None:
            continue
        verdict, confidence = judge(release_level, model, calibration)
        kubra = _is_kubra(analysis, group)
        name_ar = "القلقلة الكبرى" if kubra else "القلقلة الصغرى"
        name_en = "Qalqalah (kubra)" if kubra else "Qalqalah (sughra)"
        letter_name = group.core
        if verdict == Verdict.CORRECT:
            ar, en = f"{name_ar} في {letter_name}: صحيحة", f"{name_en} on {letter_name}: right"
        elif verdict == Verdict.MISSING:
            ar = f"{name_ar} في {letter_name}: لم تُسمع النبرة بعد السكون"
            en = f"{name_en} on {letter_name}: missing, no release (bounce) after the closure"
        elif release in (Level.YES, Level.NO):
            ar = f"{name_ar} في {letter_name}: الصوت والنموذج غير متفقين"
            en = f"{name_en} on {letter_name}: unclear, the model and the energy disagree"
        else:
            ar = f"{name_ar} في {letter_name}: غير واضحة، الأدلة ضعيفة"
            en = f"{name_en} on {letter_name}: unclear, the evidence is too weak to judge"
        rule = rule_names.get(group.index)
        findings.append(
            analysis.group_finding(
                group,
                decoded,
                source=SOURCE,
                rule=RuleKind.QALQALAH,
                rule_name=rule.name_en if rule is not None else "Qalqalah",
                time_span=(letter.start_s, letter.end_s) if letter is not None else analysis.group_time(group.index),
                expected_harakat=(),
                expected_text="an audible release (bounce) after the sakin letter",
                measured=Measured(
                    symbol_count=float(model.symbol) if model.symbol is not None else None,
                    sifa_prob=model.sifa,
                    energy_ratio=10.0 ** (release_level / 20.0) if release_level is not None else None,
                    text="; ".join(parts),
                ),
                verdict=verdict,
                confidence=confidence,
                message_ar=ar,
                message_en=en,
            )
        )
    return findings
