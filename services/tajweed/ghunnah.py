"""Ghunnah (doubled noon/meem, idgham with ghunnah, ikhfa, iqlab): about 2 harakat of nasal sound.

Duration: the group's duration less one haraka when it ends voweled (ننننَ is the
ghunnah then the voweled noon), over the reciter's haraka. Symbols: the script writes the
ghunnah as a run of 3 (ننننَ, ںںں, ۾۾۾; 2 before the voweled yaa/waw of an idgham), so a
decoded run is scaled to harakat by expected / reference run. Both go through the same
blend as a madd (evidence.py) against `ghunnah_harakat` within `ghunnah_tolerance_harakat`.
Nasality: the decoded group's ghonna sifa, where the reference's own sifat call the group
maghnoon (yaa/waw after a merged noon are not labelled so, and are not checked); when the
model is sure the sound was not nasal (P(maghnoon) <= 0.2) a short ghunnah is MISSING
and a right-length one UNCERTAIN.
Izhar instead of ikhfa or iqlab: a hidden noon/meem (ں ۾) decoded as a plain ن/م is WRONG.
`symbol_count` reports the decoded run converted to harakat.
"""

from __future__ import annotations

import math

from services.tajweed import messages, phonetics
from services.tajweed.analysis import Analysis
from services.tajweed.evidence import Judgement, Length, judge_length, symbol_confidence
from services.tajweed.matching import DecodedGroup
from services.tajweed.model import Finding, Measured, Verdict, split_group
from services.tajweed.rules import GhunnahTarget, ghunnah_targets

SOURCE = "ghunnah"
_NOT_NASAL = 0.2
_MIN_DURATION_SD = 0.15


def _run(phonemes: str) -> int:
    return split_group(phonemes)[1] - (1 if phonemes[-1] in phonetics.HARAKAT else 0)


def _with_nasality(judgement: Judgement, nasal: float | None) -> Judgement:
    if nasal is None or nasal > _NOT_NASAL:
        return judgement
    if judgement.verdict == Verdict.TOO_SHORT:
        return Judgement(Verdict.MISSING, max(judgement.confidence, 1.0 - nasal), judgement.estimate)
    if judgement.verdict == Verdict.CORRECT:
        return Judgement(Verdict.UNCERTAIN, 1.0 - nasal, judgement.estimate)
    return judgement


def _izhar(expected_core: str, heard_core: str) -> bool:
    return phonetics.HIDDEN_TO_CLEAR.get(expected_core) == heard_core


def _izhar_finding(
    analysis: Analysis,
    target: GhunnahTarget,
    duration: Length | None,
    duration_s: float | None,
    decoded: DecodedGroup,
) -> Finding:
    group = analysis.reference.groups[target.group]
    return analysis.group_finding(
        group,
        decoded,
        source=SOURCE,
        rule=target.kind,
        rule_name=target.names.en,
        expected_harakat=(round(analysis.config.ghunnah_harakat),),
        expected_text=f"{group.core} hidden with ghunnah, not pronounced clearly",
        measured=Measured(
            duration_harakat=duration.value if duration is not None else None,
            duration_s=duration_s,
            text=f"decoded {decoded.phonemes}",
        ),
        verdict=Verdict.WRONG,
        confidence=symbol_confidence(decoded.mean_prob(), floor=0.5),
        message_ar=f"{target.names.ar}: نُطق الحرف مُظهَرًا ولم يُخفَ",
        message_en=f"{target.names.en} wrong: the letter was pronounced clearly (izhar) instead of hidden",
    )


def validate(analysis: Analysis) -> list[Finding]:
    config = analysis.config
    tempo = analysis.tempo
    reference = analysis.reference
    expected = config.ghunnah_harakat
    findings: list[Finding] = []
    for target in ghunnah_targets(reference, analysis.index, analysis.lengthened):
        group = reference.groups[target.group]
        duration: Length | None = None
        duration_s: float | None = None
        if analysis.timeline is not None:
            duration_s = analysis.timeline.duration(group.index)
            # The group's vowel takes one haraka of it; a group shorter than that held no nasal at all.
            hold = max(0.0, duration_s - (tempo.haraka_s if phonetics.is_voweled(group) else 0.0))
            value = hold / tempo.haraka_s
            spread = math.hypot(config.duration_rel_sd, tempo.haraka_log_sd) * duration_s / tempo.haraka_s
            duration = Length(value, max(spread, _MIN_DURATION_SD))
        decoded = analysis.decoded(group.index)
        if decoded is not None and _izhar(group.core, decoded.core):
            findings.append(_izhar_finding(analysis, target, duration, duration_s, decoded))
            continue
        symbols: Length | None = None
        nasal: float | None = None
        run: int | None = None
        if decoded is not None and decoded.core == group.core:
            run = _run(decoded.phonemes)
            symbols = Length(run * expected / _run(group.phonemes), config.symbol_sd_harakat)
        elif analysis.match is not None:
            run = 0
            symbols = Length(0.0, config.symbol_sd_harakat)
        if decoded is not None and group.sifat.get("ghonna") == "maghnoon" and "ghonna" in decoded.sifat:
            nasal = decoded.sifat["ghonna"].probability_of("maghnoon")
        judgement = judge_length(
            duration,
            symbols,
            expected=expected,
            permitted=(expected,),
            tolerance=config.ghunnah_tolerance_harakat,
            disagreement=config.madd_disagreement_harakat,
        )
        if judgement is None:
            continue
        judgement = _with_nasality(judgement, nasal)
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
        elif nasal is not None and nasal <= _NOT_NASAL:
            ar = f"{name_ar}: المدة صحيحة لكن الصوت لم يُسمع أغنّ"
            en = f"{name_en}: the length is right but the sound was not heard as nasal"
        else:
            ar = f"{name_ar}: المدة والرموز غير متفقتين"
            en = f"{name_en}: the timing and the decoded letters disagree"
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
