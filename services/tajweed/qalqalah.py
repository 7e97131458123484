"""Qalqalah: a sakin ق ط ب ج د released with an audible bounce (the script's ڇ after the letter).

Two kinds of evidence, each read as yes / no / too weak to say (calibration.py's levels):
- the release itself: inside the letter's segment (timeline.py: its closure and ڇ, up to
  the next consonant or a silence), the largest rise of energy from the closure to a later
  peak (energy.burst); at least `release_db` is a release, at most `no_release_db` none;
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

from services.tajweed import energy as energy_measures
from services.tajweed import messages, phonetics
from services.tajweed.analysis import Analysis
from services.tajweed.calibration import Calibration
from services.tajweed.evidence import Level, level, logistic, symbol_confidence
from services.tajweed.matching import DecodedGroup
from services.tajweed.model import Finding, Group, Measured, RuleKind, Verdict

SOURCE = "qalqalah"


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


def judge(rise_db: float | None, model: _Model, calibration: Calibration) -> tuple[Verdict, float]:
    """The verdict and its confidence from the release's rise (None: not measured) and the model."""
    release = release_prob = None
    if rise_db is not None:
        release = level(rise_db, calibration.release_db, calibration.no_release_db)
        release_prob = _release_prob(rise_db, calibration.release_db, calibration.no_release_db)
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


def _release_prob(rise: float, present: float, absent: float) -> float:
    """P(released) from the rise: a logistic centred between the two levels."""
    scale = max((present - absent) / 4.0, 0.5)
    return logistic((rise - (present + absent) / 2.0) / scale)


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
        rise: float | None = None
        release: Level | None = None
        timeline = analysis.timeline
        letter = timeline.segment(group.start) if timeline is not None else None
        if analysis.energy is not None and letter is not None:
            measured = energy_measures.burst(analysis.energy, letter.start_s, letter.end_s)
            if measured is not None:
                rise = measured.rise_db
                release = level(rise, calibration.release_db, calibration.no_release_db)
                parts.append(f"release +{messages.num(rise)} dB after the closure")
        if model.level is None and release is None:
            continue
        verdict, confidence = judge(rise, model, calibration)
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
                    energy_ratio=10.0 ** (rise / 20.0) if rise is not None else None,
                    text="; ".join(parts),
                ),
                verdict=verdict,
                confidence=confidence,
                message_ar=ar,
                message_en=en,
            )
        )
    return findings
