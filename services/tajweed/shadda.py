"""Shadda: a doubled consonant (للَ) must be held about one consonant longer than a single one.

Duration: the held consonant's segment (timeline.py), from its first copy's first frame
to its last copy's last frame, or to the next consonant's first frame when one follows.
Before its vowel the segment ends on the voweled copy's own frames, which a single voweled
consonant has too (tempo.py's onset): the hold in consonant lengths is then
1 + (segment - onset) / consonant_s; unvoweled, segment / consonant_s, where consonant_s is
this reciter's single sakin consonant. It counts as doubled from the calibration's
`shadda_threshold` (1.5). Symbols: whether the model decoded the letter twice.
Nasal doubled letters (ننننَ) are judged by the ghunnah validator instead.
"""

from __future__ import annotations

from services.tajweed import messages, phonetics
from services.tajweed.analysis import Analysis
from services.tajweed.evidence import fuse_presence, normal_cdf, symbol_confidence
from services.tajweed.model import Finding, Measured, RuleKind, Verdict

SOURCE = "shadda"
_MIN_SD = 0.25
_NAME_AR = "الشدة"
_NAME_EN = "Shadda"


def _symbol_vote(count: int, prob: float | None) -> float:
    confidence = symbol_confidence(prob)
    return confidence if count >= 2 else 1.0 - confidence


def validate(analysis: Analysis) -> list[Finding]:
    calibration = analysis.calibration
    tempo = analysis.tempo
    reference = analysis.reference
    findings: list[Finding] = []
    for group in reference.groups:
        if (
            group.count != 2
            or group.core not in phonetics.CONSONANTS
            or group.index in analysis.lengthened
            or phonetics.is_ghunnah_group(group)
        ):
            continue
        decoded = analysis.decoded(group.index)
        if analysis.match is not None and decoded is None:
            # Not heard at all: the content check already reports the letter missing, and the
            # span the aligner squeezed it into measures nothing about doubling.
            continue
        votes: list[float] = []
        held: float | None = None
        duration_s: float | None = None
        if analysis.timeline is not None:
            duration_s = analysis.timeline.segment(group.start).duration
            if phonetics.is_voweled(group):
                held = 1.0 + max(0.0, duration_s - tempo.onset_s) / tempo.consonant_s
            else:
                held = duration_s / tempo.consonant_s
            spread = max(_MIN_SD, calibration.duration_rel_sd * duration_s / tempo.consonant_s)
            votes.append(normal_cdf((held - calibration.shadda_threshold) / spread))
        count: int | None = None
        if decoded is not None and decoded.core == group.core:
            count = decoded.count_of(group.core)
            votes.append(_symbol_vote(count, decoded.mean_prob()))
        presence = fuse_presence(votes, calibration.presence_contradiction)
        if presence is None:
            continue
        verdict = presence.verdict
        weak = verdict == Verdict.MISSING and presence.confidence < calibration.min_error_confidence
        if weak:
            verdict = Verdict.UNCERTAIN
        letter = group.core
        parts = []
        if held is not None:
            parts.append(
                f"held {messages.num(held, 2)} consonant lengths (single consonant "
                f"{messages.num(tempo.consonant_s, 3)} s)"
            )
        if count is not None:
            parts.append(f"decoded {count}x {letter}")
        if verdict == Verdict.CORRECT:
            ar, en = f"{_NAME_AR} على {letter}: صحيحة", f"Shadda on {letter}: right"
        elif verdict == Verdict.MISSING:
            ar = f"{_NAME_AR} على {letter}: لم تُشدَّد، نُطق الحرف مرة واحدة"
            en = f"Shadda on {letter}: missing, the letter was not doubled"
        elif weak:
            ar = f"{_NAME_AR} على {letter}: غير واضحة، القياس لا يكفي للحكم"
            en = f"Shadda on {letter}: unclear, the measure is too close to call"
        else:
            ar = f"{_NAME_AR} على {letter}: المدة والرموز غير متفقتين"
            en = f"Shadda on {letter}: the timing and the decoded letters disagree"
        findings.append(
            analysis.group_finding(
                group,
                decoded,
                source=SOURCE,
                rule=RuleKind.SHADDA,
                rule_name=_NAME_EN,
                expected_harakat=(),
                expected_text="the letter doubled: held about two consonant lengths",
                measured=Measured(
                    duration_harakat=None,
                    symbol_count=float(count) if count is not None else None,
                    duration_s=duration_s,
                    text="; ".join(parts),
                ),
                verdict=verdict,
                confidence=1.0 - presence.confidence if weak else presence.confidence,
                message_ar=ar,
                message_en=en,
            )
        )
    return findings
