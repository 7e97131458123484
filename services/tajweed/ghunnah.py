"""Ghunnah (doubled noon/meem, idgham with ghunnah, ikhfa, iqlab): about 2 harakat of nasal sound.

Duration: the nasal hold, the held consonant's segment (timeline.py: its first copy's
first frame to its last copy's last frame, or to the next consonant's first frame when a
consonant follows, as after an ikhfa), less the voweled copy's own onset when the group
ends voweled (ننننَ is the ghunnah then the voweled noon), over the reciter's haraka.
Symbols: the script writes the ghunnah as a run of 3 (ننننَ, ںںں, ۾۾۾; 2 before the voweled
yaa/waw of an idgham), so a decoded run is scaled to harakat by expected / reference run.
Both go through the same judgement as a madd (evidence.py) against the calibration's
`ghunnah_harakat` within the rule's tolerance (and `ghunnah_long_slack_harakat` more above it).
Nasality: the decoded group's ghonna sifa level, where the reference's own sifat call the
group maghnoon (yaa/waw after a merged noon are not labelled so, and are not checked): at
or below the calibration's `ghonna_absent` the model heard no nasal sound, and a short
hold is then a MISSING ghunnah, a right-length one UNCERTAIN.
Izhar instead of ikhfa or iqlab: a hidden noon/meem (ں ۾) decoded as a plain ن/م is WRONG,
unless the timing alone says the nasal was held as a ghunnah (the right length or longer,
within the rule's tolerance): the symbol and the timing then disagree, and it is UNCERTAIN.
`symbol_count` reports the decoded run converted to harakat.
"""

from __future__ import annotations

import math

from services.tajweed import messages, phonetics
from services.tajweed.analysis import Analysis
from services.tajweed.calibration import Calibration
from services.tajweed.evidence import (
    Doubt,
    Judgement,
    Length,
    LengthPolicy,
    Level,
    judge_length,
    level,
    symbol_confidence,
)
from services.tajweed.matching import DecodedGroup
from services.tajweed.model import Finding, Group, Measured, Verdict, split_group
from services.tajweed.rules import GhunnahTarget, ghunnah_targets

SOURCE = "ghunnah"
_MIN_DURATION_SD = 0.15


def _run(phonemes: str) -> int:
    return split_group(phonemes)[1] - (1 if phonemes[-1] in phonetics.HARAKAT else 0)


def with_nasality(judgement: Judgement, nasal: Level | None, nasal_prob: float | None) -> Judgement:
    if nasal != Level.NO or nasal_prob is None:
        return judgement
    if judgement.verdict == Verdict.TOO_SHORT:
        return Judgement(Verdict.MISSING, max(judgement.confidence, 1.0 - nasal_prob), judgement.estimate)
    if judgement.verdict == Verdict.CORRECT:
        return Judgement(Verdict.UNCERTAIN, 1.0 - nasal_prob, judgement.estimate, Doubt.DISAGREE)
    return judgement


def length_policy(calibration: Calibration, rule: str) -> LengthPolicy:
    """How a ghunnah rule's hold is judged (`rule`: its RuleKind name)."""
    return LengthPolicy.of(calibration, calibration.tolerance(rule), calibration.ghunnah_long_slack_harakat)


def _izhar(expected_core: str, heard_core: str) -> bool:
    return phonetics.HIDDEN_TO_CLEAR.get(expected_core) == heard_core


def izhar_judgement(duration: Length | None, expected: float, policy: LengthPolicy) -> Judgement | None:
    """None: the izhar stands (WRONG). UNCERTAIN when the timing alone says the nasal was held
    as a ghunnah (right length or longer): the decoded clear letter and the hold disagree."""
    if duration is None:
        return None
    alone = judge_length(duration, None, expected=expected, permitted=(expected,), policy=policy)
    if alone is not None and alone.verdict in (Verdict.CORRECT, Verdict.TOO_LONG):
        return Judgement(Verdict.UNCERTAIN, alone.confidence, duration.value, Doubt.DISAGREE)
    return None


def _izhar_finding(
    analysis: Analysis,
    target: GhunnahTarget,
    duration: Length | None,
    duration_s: float | None,
    decoded: DecodedGroup,
    held: Judgement | None,
) -> Finding:
    group = analysis.reference.groups[target.group]
    if held is not None:
        verdict, confidence = held.verdict, held.confidence
        held_ar = messages.num_ar(held.estimate or 0.0)
        message_ar = f"{target.names.ar}: سُمع الحرف مُظهَرًا لكن الغنة مُدّت نحو {held_ar} حركة"
        message_en = (
            f"{target.names.en} unclear: the letter was decoded clear (izhar), but the nasal sound was held "
            f"about {messages.num(held.estimate or 0.0)} harakat, as a ghunnah"
        )
    else:
        verdict, confidence = Verdict.WRONG, symbol_confidence(decoded.mean_prob(), floor=0.5)
        message_ar = f"{target.names.ar}: نُطق الحرف مُظهَرًا ولم يُخفَ"
        message_en = f"{target.names.en} wrong: the letter was pronounced clearly (izhar) instead of hidden"
    return analysis.group_finding(
        group,
        decoded,
        source=SOURCE,
        rule=target.kind,
        rule_name=target.names.en,
        expected_harakat=(round(analysis.calibration.ghunnah_harakat),),
        expected_text=f"{group.core} hidden with ghunnah, not pronounced clearly",
        measured=Measured(
            duration_harakat=duration.value if duration is not None else None,
            duration_s=duration_s,
            duration_sd=duration.sd if duration is not None else None,
            text=f"decoded {decoded.phonemes}",
        ),
        verdict=verdict,
        confidence=confidence,
        message_ar=message_ar,
        message_en=message_en,
    )


def _duration(analysis: Analysis, group: Group) -> tuple[Length, float] | None:
    timeline = analysis.timeline
    if timeline is None:
        return None
    tempo = analysis.tempo
    held = timeline.segment(group.start).duration
    # The voweled copy's own frames are the letter's onset, not its ghunnah.
    hold = max(0.0, held - tempo.onset_s) if phonetics.is_voweled(group) else held
    value = hold / tempo.haraka_s
    spread = math.hypot(analysis.calibration.duration_rel_sd, tempo.haraka_log_sd) * held / tempo.haraka_s
    return Length(value, max(spread, _MIN_DURATION_SD)), held


def validate(analysis: Analysis) -> list[Finding]:
    calibration = analysis.calibration
    reference = analysis.reference
    expected = calibration.ghunnah_harakat
    findings: list[Finding] = []
    for target in ghunnah_targets(reference, analysis.index, analysis.lengthened):
        group = reference.groups[target.group]
        timed = _duration(analysis, group)
        duration = timed[0] if timed is not None else None
        duration_s = timed[1] if timed is not None else None
        decoded = analysis.decoded(group.index)
        policy = length_policy(calibration, target.kind.value)
        if decoded is not None and _izhar(group.core, decoded.core):
            as_ghunnah = izhar_judgement(duration, expected, policy)
            findings.append(_izhar_finding(analysis, target, duration, duration_s, decoded, as_ghunnah))
            continue
        symbols: Length | None = None
        nasal: float | None = None
        run: int | None = None
        if decoded is not None and decoded.core == group.core:
            run = _run(decoded.phonemes)
            symbols = Length(run * expected / _run(group.phonemes), calibration.symbol_sd_harakat)
        elif analysis.match is not None:
            run = 0
            symbols = Length(0.0, calibration.symbol_sd_harakat)
        if decoded is not None and group.sifat.get("ghonna") == "maghnoon" and "ghonna" in decoded.sifat:
            nasal = decoded.sifat["ghonna"].probability_of("maghnoon")
        nasal_level = level(nasal, calibration.ghonna_present, calibration.ghonna_absent) if nasal is not None else None
        judgement = judge_length(duration, symbols, expected=expected, permitted=(expected,), policy=policy)
        if judgement is None:
            continue
        judgement = with_nasality(judgement, nasal_level, nasal)
        verdict = judgement.verdict
        name_ar, name_en = target.names.ar, target.names.en
        if judgement.estimate is not None and verdict != Verdict.UNCERTAIN:
            ar = (
                f"{name_ar}: {messages.VERDICT_AR[verdict]}، الغنة نحو {messages.num_ar(judgement.estimate)} "
                f"حركة والمطلوب {messages.num_ar(expected)}"
            )
            en = (
                f"{name_en} {messages.VERDICT_EN[verdict]}: nasal sound held about "
                f"{messages.num(judgement.estimate)} harakat, {messages.num(expected)} expected"
            )
        elif nasal_level == Level.NO and judgement.doubt == Doubt.DISAGREE and judgement.estimate is not None:
            ar = f"{name_ar}: المدة صحيحة لكن الصوت لم يُسمع أغنّ"
            en = f"{name_en}: the length is right but the sound was not heard as nasal"
        elif judgement.doubt == Doubt.DISAGREE:
            ar = f"{name_ar}: المدة والرموز غير متفقتين"
            en = f"{name_en}: the timing and the decoded letters disagree"
        else:
            held = judgement.estimate or 0.0
            ar = f"{name_ar}: غير واضحة، الغنة نحو {messages.num_ar(held)} حركة والقياس لا يكفي للحكم"
            en = (
                f"{name_en} unclear: nasal sound held about {messages.num(held)} harakat; "
                "the measure is too close to call"
            )
        parts = []
        if duration is not None:
            parts.append(f"nasal hold {messages.num(duration.value, 2)} harakat")
        if run is not None:
            parts.append(f"decoded run of {run}")
        if nasal is not None:
            parts.append(f"P(maghnoon) {messages.num(nasal, 2)}")
        findings.append(
            analysis.group_finding(
                group,
                decoded,
                source=SOURCE,
                rule=target.kind,
                rule_name=name_en,
                expected_harakat=(round(expected),),
                expected_text=f"{messages.num(expected)} harakat of ghunnah",
                measured=Measured(
                    duration_harakat=duration.value if duration is not None else None,
                    symbol_count=symbols.value if symbols is not None else None,
                    duration_s=duration_s,
                    duration_sd=duration.sd if duration is not None else None,
                    sifa_prob=nasal,
                    text="; ".join(parts),
                ),
                verdict=verdict,
                confidence=judgement.confidence,
                message_ar=ar,
                message_en=en,
            )
        )
    return findings
