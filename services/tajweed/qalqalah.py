"""Qalqalah: a sakin ق ط ب ج د released with an audible bounce (the script's ڇ after the letter).

Three votes for "released" (evidence.py):
- the symbol: did the model decode ڇ after the letter (its probability), or not;
- the qalqla sifa of the decoded group: P(moqalqal);
- the energy: inside the letter's group, the rise from the closure (the dip) to the
  release after it (energy.burst); `qalqalah_burst_db` is the midpoint of a logistic
  with a 2 dB scale.
Kubra at a stop (the last letter, or one followed by a pause), sughra elsewhere.
"""

from __future__ import annotations

from services.tajweed import energy as energy_measures
from services.tajweed import messages, phonetics
from services.tajweed.analysis import Analysis
from services.tajweed.evidence import fuse_presence, logistic, symbol_confidence
from services.tajweed.model import Finding, Measured, RuleKind, Verdict

SOURCE = "qalqalah"
_DB_SCALE = 2.0


def _is_kubra(analysis: Analysis, group: int) -> bool:
    if analysis.is_final(group):
        return analysis.reference.ends_with_waqf
    timeline = analysis.timeline
    if timeline is None:
        return False
    return timeline.onsets[group + 1] - timeline.ends[group] >= analysis.config.min_pause_s


def validate(analysis: Analysis) -> list[Finding]:
    config = analysis.config
    reference = analysis.reference
    rule_names = {
        reference.group_at(r.phoneme_start).index: r for r in reference.rules if r.name == "Qalqalah"
    }
    findings: list[Finding] = []
    for group in reference.groups:
        if phonetics.QALQALAH_MARK not in group.mark:
            continue
        votes: list[float] = []
        parts: list[str] = []
        decoded = analysis.decoded(group.index)
        symbol: int | None = None
        sifa: float | None = None
        if decoded is not None and decoded.core == group.core:
            released = [t.prob for t in decoded.tokens if t.phoneme == phonetics.QALQALAH_MARK]
            symbol = decoded.count_of(phonetics.QALQALAH_MARK)
            if symbol:
                votes.append(symbol_confidence(released[0] if released else None))
            else:
                votes.append(1.0 - symbol_confidence(decoded.mean_prob()))
            parts.append(f"decoded {decoded.phonemes}")
            if "qalqla" in decoded.sifat:
                sifa = decoded.sifat["qalqla"].probability_of("moqalqal")
                votes.append(sifa)
                parts.append(f"P(moqalqal) {messages.num(sifa, 2)}")
        rise: float | None = None
        span = analysis.group_time(group.index)
        if analysis.energy is not None and analysis.timeline is not None and span is not None:
            measured = energy_measures.burst(analysis.energy, span[0], span[1])
            if measured is not None:
                rise = measured.rise_db
                votes.append(logistic((rise - config.qalqalah_burst_db) / _DB_SCALE))
                parts.append(f"release +{messages.num(rise)} dB after the closure")
        presence = fuse_presence(votes)
        if presence is None:
            continue
        verdict = presence.verdict
        kubra = _is_kubra(analysis, group.index)
        name_ar = "القلقلة الكبرى" if kubra else "القلقلة الصغرى"
        name_en = "Qalqalah (kubra)" if kubra else "Qalqalah (sughra)"
        letter = group.core
        if verdict == Verdict.CORRECT:
            ar, en = f"{name_ar} في {letter}: صحيحة", f"{name_en} on {letter}: right"
        elif verdict == Verdict.MISSING:
            ar = f"{name_ar} في {letter}: لم تُسمع النبرة بعد السكون"
            en = f"{name_en} on {letter}: missing, no bounce after the closure"
        else:
            ar = f"{name_ar} في {letter}: الأدلة غير متفقة"
            en = f"{name_en} on {letter}: the model and the energy disagree"
        rule = rule_names.get(group.index)
        findings.append(
            analysis.group_finding(
                group,
                decoded,
                source=SOURCE,
                rule=RuleKind.QALQALAH,
                rule_name=rule.name_en if rule is not None else "Qalqalah",
                expected_harakat=(),
                expected_text="an audible release (bounce) after the sakin letter",
                measured=Measured(
                    symbol_count=float(symbol) if symbol is not None else None,
                    sifa_prob=sifa,
                    energy_ratio=10.0 ** (rise / 20.0) if rise is not None else None,
                    text="; ".join(parts),
                ),
                verdict=verdict,
                confidence=presence.confidence,
                message_ar=ar,
                message_en=en,
            )
        )
    return findings
