"""Madd lengths: natural, muttasil, munfasil, lazim, 'arid, leen, badal, silah, 'iwad.

Expected: the rule's golden_len, which quran-transcript computed from the request's
MoshafAttributes (monfasel 2/3/4/5, mottasel 4/5/6, mottasel at a stop max(waqf, 'arid),
'arid and leen 2/4/6, lazim 6, the 2-count madds 2). Two measurements, both reported:
- duration: the madd's nucleus, the vowel and the madd that lengthens it as one segment
  (timeline.py: from the end of the consonant before it to the start of the next
  consonant), less the reciter's short vowel, over the reciter's haraka (tempo.py); for
  leen, +1 for the haraka before the yaa/waw, as the script writes a leen of n counts with
  n - 1 letters. Where the CTC spikes fall inside the vowel does not change it;
- symbols: how many madd symbols the model decoded in the matching group (matching.py).
The verdict blends them, or is UNCERTAIN (no error) when they disagree, when the estimate
is borderline or the evidence weak (evidence.py, with the calibration's numbers; the
tolerance is the rule's own, unless the request sets one for every madd).
"""

from __future__ import annotations

import math

from services.tajweed import messages
from services.tajweed.analysis import Analysis
from services.tajweed.evidence import Doubt, Judgement, Length, LengthPolicy, judge_length
from services.tajweed.model import Finding, Measured, Verdict
from services.tajweed.rules import MaddTarget
from services.tajweed.timeline import Segment

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
    target: MaddTarget, judgement: Judgement, duration: Length | None, symbols: Length | None
) -> tuple[str, str]:
    name_ar, name_en = target.names.ar, target.names.en
    expected = target.expected
    verdict = judgement.verdict
    if judgement.doubt == Doubt.DISAGREE and duration is not None and symbols is not None:
        return (
            f"{name_ar}: المدة المقيسة ({messages.num_ar(duration.value)} حركة) والرموز المسموعة "
            f"({messages.num_ar(symbols.value, 0)}) غير متفقتين، والمطلوب {messages.num_ar(expected)} حركات",
            f"{name_en}: the timing ({messages.num(duration.value)} harakat) and the decoded symbols "
            f"({messages.num(symbols.value, 0)}) disagree; {expected} expected",
        )
    estimate = judgement.estimate if judgement.estimate is not None else 0.0
    if verdict == Verdict.UNCERTAIN:
        return (
            f"{name_ar}: غير واضح، مُدَّ نحو {messages.num_ar(estimate)} حركة والمطلوب {messages.num_ar(expected)}، "
            "والقياس لا يكفي للحكم",
            f"{name_en} unclear: held about {messages.num(estimate)} harakat, {expected} expected; "
            "the measure is too close to call",
        )
    return (
        f"{name_ar}: {messages.VERDICT_AR[verdict]}، مُدَّ نحو {messages.num_ar(estimate)} حركة والمطلوب "
        f"{messages.num_ar(expected)}",
        f"{name_en} {messages.VERDICT_EN[verdict]}: held about {messages.num(estimate)} harakat, {expected} expected",
    )


def _duration(analysis: Analysis, target: MaddTarget) -> tuple[Length, Segment] | None:
    """The nucleus of the madd, in harakat: (nucleus - short vowel) / haraka + offset."""
    timeline = analysis.timeline
    if timeline is None:
        return None
    group = analysis.reference.groups[target.group]
    nucleus = timeline.segment(group.end - 1)
    if not nucleus.vowel:
        return None
    tempo = analysis.tempo
    # The short vowel the nucleus starts with is the letter's own haraka, not the madd's.
    vowel = tempo.vowel_s if nucleus.first < group.start else 0.0
    value = max(0.0, nucleus.duration - vowel) / tempo.haraka_s + target.offset
    spread = math.hypot(analysis.calibration.duration_rel_sd, tempo.haraka_log_sd)
    return Length(value, max(value * spread, _MIN_DURATION_SD)), nucleus


def validate(analysis: Analysis, tolerance: float | None) -> list[Finding]:
    """`tolerance`: the request's, for every madd; None: the calibration's for each rule."""
    calibration = analysis.calibration
    tempo = analysis.tempo
    reference = analysis.reference
    findings: list[Finding] = []
    for target in analysis.madd:
        group = reference.groups[target.group]
        timed = _duration(analysis, target)
        duration = timed[0] if timed is not None else None
        nucleus = timed[1] if timed is not None else None
        symbols: Length | None = None
        decoded = analysis.decoded(target.group)
        heard = decoded.phonemes if decoded is not None else ""
        if analysis.match is not None:
            count = decoded.count_of(group.core) if decoded is not None else 0
            symbols = Length(float(count + target.offset), calibration.symbol_sd_harakat)
        permitted = target.permitted if analysis.config.madd_accept_permitted else (target.expected,)
        rule_tolerance = tolerance if tolerance is not None else calibration.tolerance(target.kind.value)
        judgement = judge_length(
            duration,
            symbols,
            expected=target.expected,
            permitted=permitted,
            policy=LengthPolicy.of(calibration, rule_tolerance),
        )
        if judgement is None:
            continue
        parts = []
        if duration is not None and nucleus is not None:
            parts.append(
                f"duration {messages.num(duration.value, 2)} harakat (vowel and madd "
                f"{messages.num(nucleus.duration, 2)} s, short vowel {messages.num(tempo.vowel_s, 3)} s, "
                f"{messages.num(tempo.haraka_s, 3)} s/haraka)"
            )
        if symbols is not None:
            parts.append(f"{messages.num(symbols.value, 0)} counts decoded ({heard or 'nothing'})")
        message_ar, message_en = _messages(target, judgement, duration, symbols)
        rule_start, rule_end = target.rule.text_start, target.rule.text_end
        group_start, group_end = analysis.group_text_span(target.group)
        time_span = (nucleus.start_s, nucleus.end_s) if nucleus is not None else analysis.group_time(target.group)
        findings.append(
            analysis.group_finding(
                group,
                decoded,
                source=SOURCE,
                rule=target.kind,
                rule_name=target.rule.name_en,
                # The rule's letters as well as the group's (a madd's cause may lie outside the group).
                text_span=(min(rule_start, group_start), max(rule_end, group_end)),
                time_span=time_span,
                expected_harakat=permitted,
                expected_text=_expected_text(target, permitted),
                measured=Measured(
                    duration_harakat=duration.value if duration is not None else None,
                    symbol_count=symbols.value if symbols is not None else None,
                    duration_s=nucleus.duration if nucleus is not None else None,
                    duration_sd=duration.sd if duration is not None else None,
                    text="; ".join(parts),
                ),
                verdict=judgement.verdict,
                confidence=judgement.confidence,
                message_ar=message_ar,
                message_en=message_en,
            )
        )
    return findings
