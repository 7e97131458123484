"""Madd lengths: natural, muttasil, munfasil, lazim, 'arid, leen, badal, silah, 'iwad.

Expected: the rule's golden_len, which quran-transcript computed from the request's
MoshafAttributes (monfasel 2/3/4/5, mottasel 4/5/6, mottasel at a stop max(waqf, 'arid),
'arid and leen 2/4/6, lazim 6, the 2-count madds 2). Two measurements, both reported:
- duration: the madd group's aligned duration (timeline.py) divided by the reciter's
  haraka (tempo.py); for leen, +1 for the haraka before the yaa/waw, as the script writes
  a leen of n counts with n - 1 letters;
- symbols: how many madd symbols the model decoded in the matching group (matching.py).
The verdict blends them, or is UNCERTAIN when they disagree strongly (evidence.py).
"""

from __future__ import annotations

import math

from services.tajweed import messages
from services.tajweed.analysis import Analysis
from services.tajweed.evidence import Length, judge_length
from services.tajweed.model import Finding, Measured, Verdict
from services.tajweed.rules import MaddTarget

SOURCE = "madd"
_MIN_DURATION_SD = 0.15


def _expected_text(target: MaddTarget, permitted: tuple[int, ...]) -> str:
    text = f"{target.expected} harakat"
    if target.setting:
        text += f" ({target.setting})"
    if len(target.permitted) > 1:
        text += f"; the rule permits {messages.lengths(target.permitted)}"
    if len(permitted) > 1:
        text += ", any of them accepted"
    return text


def _messages(
    target: MaddTarget, verdict: Verdict, estimate: float | None, duration: Length | None, symbols: Length | None
) -> tuple[str, str]:
    name_ar, name_en = target.names.ar, target.names.en
    expected = target.expected
    if verdict == Verdict.UNCERTAIN:
        assert duration is not None and symbols is not None
        return (
            f"{name_ar}: المدة المقيسة ({messages.num_ar(duration.value)} حركة) والرموز المسموعة "
            f"({messages.num_ar(symbols.value, 0)}) غير متفقتين، والمطلوب {messages.num_ar(expected)} حركات",
            f"{name_en}: the timing ({messages.num(duration.value)} harakat) and the decoded symbols "
            f"({messages.num(symbols.value, 0)}) disagree; {expected} expected",
        )
    assert estimate is not None
    return (
        f"{name_ar}: {messages.VERDICT_AR[verdict]}، مُدَّ نحو {messages.num_ar(estimate)} حركة والمطلوب "
        f"{messages.num_ar(expected)}",
        f"{name_en} {messages.VERDICT_EN[verdict]}: held about {messages.num(estimate)} harakat, {expected} expected",
    )


def validate(analysis: Analysis, tolerance: float) -> list[Finding]:
    config = analysis.config
    tempo = analysis.tempo
    reference = analysis.reference
    findings: list[Finding] = []
    for target in analysis.madd:
        group = reference.groups[target.group]
        duration: Length | None = None
        duration_s: float | None = None
        if analysis.timeline is not None:
            duration_s = analysis.timeline.duration(target.group)
            value = duration_s / tempo.haraka_s + target.offset
            spread = math.hypot(config.duration_rel_sd, tempo.haraka_log_sd)
            duration = Length(value, max(value * spread, _MIN_DURATION_SD))
        symbols: Length | None = None
        decoded = analysis.decoded(target.group)
        heard = decoded.phonemes if decoded is not None else ""
        if analysis.match is not None:
            count = decoded.count_of(group.core) if decoded is not None else 0
            symbols = Length(float(count + target.offset), config.symbol_sd_harakat)
        permitted = target.permitted if config.madd_accept_permitted else (target.expected,)
        judgement = judge_length(
            duration,
            symbols,
            expected=target.expected,
            permitted=permitted,
            tolerance=tolerance,
            disagreement=config.madd_disagreement_harakat,
        )
        if judgement is None:
            continue
        parts = []
        if duration is not None and duration_s is not None:
            parts.append(
                f"duration {messages.num(duration.value, 2)} harakat ({messages.num(duration_s, 2)} s at "
                f"{messages.num(tempo.haraka_s, 3)} s/haraka)"
            )
        if symbols is not None:
            parts.append(f"{messages.num(symbols.value, 0)} counts decoded ({heard or 'nothing'})")
        message_ar, message_en = _messages(target, judgement.verdict, judgement.estimate, duration, symbols)
        rule_start, rule_end = target.rule.text_start, target.rule.text_end
        group_start, group_end = analysis.group_text_span(target.group)
        findings.append(
            analysis.group_finding(
                group,
                decoded,
                source=SOURCE,
                rule=target.kind,
                rule_name=target.rule.name_en,
                # The rule's letters as well as the group's (a madd's cause may lie outside the group).
                text_span=(min(rule_start, group_start), max(rule_end, group_end)),
                expected_harakat=permitted,
                expected_text=_expected_text(target, permitted),
                measured=Measured(
                    duration_harakat=duration.value if duration is not None else None,
                    symbol_count=symbols.value if symbols is not None else None,
                    duration_s=duration_s,
                    text="; ".join(parts),
                ),
                verdict=judgement.verdict,
                confidence=judgement.confidence,
                message_ar=message_ar,
                message_en=message_en,
            )
        )
    return findings
