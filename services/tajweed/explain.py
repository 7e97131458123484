"""Letter and haraka errors from quran-transcript's explain_error, as findings.

explain_error aligns the decoded groups on the reference groups (on their first letter)
and classifies each difference: normal (a letter substituted, deleted or inserted),
tashkeel (a haraka), tajweed (a group that carries a rule). Kept here:
- normal and tashkeel errors, except a difference in how many times the same letter is
  repeated with the same mark (للَ heard as لَ): that is a length (shadda, ghunnah,
  madd) and its validator judges it with the timing as well;
- tajweed-typed errors where the letter itself changed, or a group other than a madd was
  deleted: a letter error on a group that happens to carry a rule. A madd's or
  qalqalah's own shortcomings are left to their validators.
With the decode's frame phases (the same audio decoded on a grid moved by a fraction of a
frame, asr TranscribeOptions.frame_phases), each kept error is looked for in every phase's own
explain_error, as any error on the same reference sounds: the model's slips come and go with the
grid, while a learner's mistake is heard at every phase (not always as the same wrong sound).
Heard by fewer than the calibration's letter_dismiss_phases share of the decodes, it is no
finding (most heard the letter as written); by fewer than letter_sure_phases, UNCERTAIN.
A letter substituted or missing is also weighed by the aligner: where the expected sounds fit the
audio nearly as well as the competitor the decode chose (their llr above letter_uncertain_llr),
it is UNCERTAIN; as well or better (above letter_dismiss_llr), no finding.
Costs: explain_error takes well under a millisecond for an ayah (once per phase); its mappings
are rebuilt once per reference (phonetics.py).
"""

from __future__ import annotations

from quran_transcript import explain_error
from quran_transcript.phonetics.error_explainer import ReciterError

from services.common.script import readable
from services.tajweed import phonetics
from services.tajweed.analysis import Analysis
from services.tajweed.calibration import Calibration
from services.tajweed.matching import DecodedGroup
from services.tajweed.model import Finding, Measured, RuleKind, Verdict, split_group

SOURCE = "explain_error"
_DEFAULT_CONFIDENCE = 0.7

_VERDICTS = {"insert": Verdict.EXTRA, "delete": Verdict.MISSING, "replace": Verdict.WRONG}


def _only_length_differs(expected: str, heard: str) -> bool:
    if not expected or not heard:
        return False
    core, count, mark = split_group(expected)
    heard_core, heard_count, heard_mark = split_group(heard)
    return core == heard_core and mark == heard_mark and count != heard_count


def _kept(error: ReciterError) -> bool:
    expected, heard = error.expected_ph, error.preditected_ph
    if _only_length_differs(expected, heard):
        return False
    if expected and heard and phonetics.HIDDEN_TO_CLEAR.get(expected[0]) == heard[0]:
        return False
    if error.error_type in ("normal", "tashkeel"):
        return True
    if error.speech_error_type == "delete":
        return bool(expected) and expected[0] not in phonetics.MADD_SYMBOLS
    return bool(expected and heard) and expected[0] != heard[0]


def _heard_groups(analysis: Analysis, error: ReciterError) -> list[DecodedGroup]:
    match = analysis.match
    if match is None or not error.preditected_ph:
        return []
    phonemes = analysis.reference.phonemes
    start = error.ph_pos[0]
    if error.ph_pos[1] <= start:  # inserted between reference groups
        ref_group = analysis.reference.group_at(start).index if start < len(phonemes) else len(
            analysis.reference.groups
        )
        inserted = [match.decoded[i] for i in match.inserted_before.get(ref_group, ())]
        return [g for g in inserted if g.phonemes == error.preditected_ph] or inserted[:1]
    decoded = match.of(analysis.reference.group_at(start).index)
    return [decoded] if decoded is not None else []


def _confidence(analysis: Analysis, error: ReciterError, heard: list[DecodedGroup]) -> float:
    votes = [p for p in (g.mean_prob() for g in heard) if p is not None]
    alignment = analysis.request.alignment
    start, end = error.ph_pos
    if alignment is not None and end > start:
        # The aligner's posterior for what should have been said: low when it was not.
        gop = [t.gop for t in alignment.tokens[start:end]]
        votes.append(1.0 - sum(gop) / len(gop))
    return sum(votes) / len(votes) if votes else _DEFAULT_CONFIDENCE


_Span = tuple[int, int]


def _span(analysis: Analysis, error: ReciterError) -> _Span:
    """The reference phonemes an error is on; an insertion (a point between two groups) is on
    the groups either side of it: the same added sound may be placed before or after a
    neighbouring group by another decode's alignment."""
    start, end = int(error.ph_pos[0]), int(error.ph_pos[1])
    if end > start:
        return start, end
    reference = analysis.reference
    size = len(reference.phonemes)
    before = reference.group_at(start - 1).start if start > 0 else start
    after = reference.group_at(start).end if start < size else start
    return before, max(after, before + 1)


def _touches(a: _Span, b: _Span) -> bool:
    """Whether two errors are on some of the same reference sounds."""
    return a[0] < b[1] and b[0] < a[1]


def _phase_errors(analysis: Analysis) -> list[list[_Span]]:
    """Where each frame-phase decode hears an error (empty without phases)."""
    request, reference = analysis.request, analysis.reference
    phases = request.decode.phase_phonemes if request.decode is not None else ()
    return [
        [
            _span(analysis, e)
            for e in explain_error(reference.uthmani, reference.phonemes, phonemes, analysis.index.mappings)
        ]
        for phonemes in phases
    ]


def expected_llr(llrs: list[float]) -> float | None:
    """The aligner's evidence that an expected sound was not said: the most contradicted of its
    phonemes' llr (None without aligned phonemes)."""
    return min(llrs) if llrs else None


def _aligned_llr(analysis: Analysis, error: ReciterError) -> float | None:
    alignment = analysis.request.alignment
    start, end = error.ph_pos
    if alignment is None or end <= start:
        return None
    return expected_llr([t.llr for t in alignment.tokens[start:end]])


# letter_doubt's answer for an error the calibration removes: no finding.
DISMISSED = "dismissed"


def letter_doubt(
    calibration: Calibration, letter: str, confidence: float, llr: float | None, heard_in: int | None, phases: int
) -> str | None:
    """How the calibration weighs a letter error's evidence (the stage here, and bench/calibrate.py
    replaying it): DISMISSED (no finding), "phases", "llr" or "confidence" (UNCERTAIN, for that
    reason), None (an error). `heard_in` of `phases` decodes heard it (None: no phases decoded)."""
    if heard_in is not None and heard_in < calibration.letter_dismiss_phases * phases:
        return DISMISSED  # most decodes heard the letter as written
    if llr is not None and llr > calibration.letter_dismiss_llr:
        return DISMISSED  # the aligner finds what was expected as well as anything else
    if heard_in is not None and heard_in < calibration.letter_sure_phases * phases:
        return "phases"
    if llr is not None and llr > calibration.letter_uncertain_llr:
        return "llr"
    if confidence < calibration.letter_threshold(letter):
        return "confidence"
    return None


def letter_of(expected: str) -> str:
    """The letter a letter error's threshold is chosen by: the expected sound's core letter, ""
    for a sound added where none is expected."""
    return expected[:1]


def _texts(rule: RuleKind, verdict: Verdict, expected_ph: str, heard_ph: str) -> tuple[str, str]:
    """What a teacher would say, in the mushaf's letters (the phonetic strings stay in the
    finding's fields for machines). No leading label: the report names the rule beside it."""
    expected, heard = readable(expected_ph), readable(heard_ph)
    if rule == RuleKind.TASHKEEL:
        if verdict == Verdict.EXTRA:
            return f"حركة زائدة: «{heard}» بدل «{expected}»", f"Extra haraka: heard {heard} instead of {expected}"
        if verdict == Verdict.MISSING:
            return f"حركة ناقصة: «{heard}» بدل «{expected}»", f"Missing haraka: heard {heard} instead of {expected}"
        return f"حركة مختلفة: «{heard}» بدل «{expected}»", f"Wrong haraka: heard {heard} instead of {expected}"
    if verdict == Verdict.EXTRA:
        if expected:
            return f"زيادة: «{heard}» بدل «{expected}»", f"Extra sound: heard {heard} instead of {expected}"
        return f"زيادة: «{heard}» ليست في النص", f"Extra: {heard} is not in the text"
    if verdict == Verdict.MISSING:
        return f"لم يُقرأ «{expected}»", f"{expected} was not recited"
    return f"سُمِع «{heard}» بدل «{expected}»", f"heard {heard} instead of {expected}"


def validate(analysis: Analysis) -> list[Finding]:
    request = analysis.request
    if request.decode is None:
        return []
    reference = analysis.reference
    errors = explain_error(reference.uthmani, reference.phonemes, request.decode.phonemes, analysis.index.mappings)
    findings: list[Finding] = []
    kept = [e for e in errors if _kept(e)]
    phase_errors = _phase_errors(analysis) if kept else []
    calibration = analysis.calibration
    for error in kept:
        # The decode heard it; how many of its frame phases heard something wrong on the same
        # sounds (a mistake may be heard as another wrong sound, or with its neighbour).
        mine = _span(analysis, error)
        heard_in = 1 + sum(any(_touches(mine, there) for there in found) for found in phase_errors)
        phases = 1 + len(phase_errors)
        llr = _aligned_llr(analysis, error)
        heard = _heard_groups(analysis, error)
        confidence = _confidence(analysis, error, heard)
        doubt = letter_doubt(
            calibration, letter_of(error.expected_ph), confidence, llr, heard_in if phase_errors else None, phases
        )
        if doubt == DISMISSED:
            continue
        rule = RuleKind.TASHKEEL if error.error_type == "tashkeel" else RuleKind.PRONUNCIATION
        verdict = _VERDICTS[error.speech_error_type]
        start, end = error.ph_pos
        time_span = analysis.range_time(start, end)
        if end <= start and heard:
            time_span = heard[0].time_span(analysis.frame_s) or time_span
        anchor = min(start, len(reference.phonemes) - 1)
        rule_name = f"{error.error_type} {error.speech_error_type}"
        if error.ref_tajweed_rules:
            rule_name += f" ({error.ref_tajweed_rules[0].name.en})"
        ar, en = _texts(rule, verdict, error.expected_ph, error.preditected_ph)
        # Too weak to defend to a teacher: shown greyed with its numbers, never as a mistake.
        if doubt == "phases":
            verdict = Verdict.UNCERTAIN
            ar = f"غير مؤكد (سُمع في {heard_in} من {phases} استماعات): {ar}"
            en = f"uncertain (heard in {heard_in} of {phases} listenings): {en}"
        elif doubt == "llr":
            verdict = Verdict.UNCERTAIN
            ar = f"غير مؤكد (المتوقع يوافق الصوت تقريبًا: {llr:.1f}): {ar}"
            en = f"uncertain (what was expected fits the sound almost as well: {llr:.1f}): {en}"
        elif doubt == "confidence":
            verdict = Verdict.UNCERTAIN
            ar = f"غير مؤكد ({confidence:.2f}): {ar}"
            en = f"uncertain (confidence {confidence:.2f}): {en}"
        findings.append(
            Finding(
                rule=rule,
                rule_name=rule_name,
                word_index=reference.group_at(anchor).word_index,
                text_span=(int(error.uthmani_pos[0]), int(error.uthmani_pos[1])),
                time_span=time_span,
                expected_harakat=(),
                expected_text=error.expected_ph,
                measured=Measured(
                    text=error.preditected_ph,
                    phases_heard=heard_in if phase_errors else None,
                    phases=phases if phase_errors else None,
                ),
                verdict=verdict,
                confidence=confidence,
                message_ar=ar,
                message_en=en,
                phoneme_start=start,
                phoneme_end=end,
                expected_phonemes=error.expected_ph,
                heard_phonemes=error.preditected_ph,
                source=SOURCE,
            )
        )
    return findings
