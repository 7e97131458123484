"""Fusing the stages' outputs into what a learner reads: per-word verdicts (a teacher's colours),
an error table, and scores."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from quran_transcript import chunck_phonemes
from rapidfuzz.distance import Levenshtein

from services.common.findings import LETTER_RULES
from services.common.pb import common_pb2, gateway_pb2

_NOT_A_PROBLEM = {common_pb2.VERDICT_CORRECT, common_pb2.VERDICT_UNCERTAIN, common_pb2.VERDICT_UNSPECIFIED}

# Overall score weights: getting the letters right matters most, then the rules, then how
# sure the model is (documented in the README).
WEIGHT_ACCURACY = 0.6
WEIGHT_TAJWEED = 0.3
WEIGHT_CONFIDENCE = 0.1


@dataclass(frozen=True)
class FusionInput:
    reference: common_pb2.Reference
    decode: common_pb2.Decode | None
    alignment: common_pb2.Alignment | None
    findings: Sequence[common_pb2.Finding] | None
    content: gateway_pb2.ContentCheck
    rules_ran: bool
    include_correct: bool


@dataclass(frozen=True)
class FusionOutput:
    words: list[gateway_pb2.WordAssessment]
    errors: list[gateway_pb2.ErrorItem]
    findings: list[common_pb2.Finding]
    scores: gateway_pb2.Scores


def _kind(rule: int) -> str:
    if rule == common_pb2.RULE_PRONUNCIATION:
        return "pronunciation"
    if rule == common_pb2.RULE_TASHKEEL:
        return "tashkeel"
    return "tajweed"


def words_with_letter_errors(reference: common_pb2.Reference, decoded_phonemes: str) -> set[int]:
    """Words whose phoneme groups differ from the decode, from an edit alignment of the groups.

    Used when the tajweed stage (and its explain_error findings) is unavailable, so that the
    learner still sees which words went wrong."""
    ref_groups = [g.phonemes for g in reference.groups]
    decoded_groups = chunck_phonemes(decoded_phonemes)
    flagged: set[int] = set()
    for opcode in Levenshtein.opcodes(ref_groups, decoded_groups):
        tag, ref_start, ref_end = opcode.tag, opcode.src_start, opcode.src_end
        if tag == "equal":
            continue
        if ref_start == ref_end:
            # An insertion sits between two reference groups: blame the one before it.
            index = max(ref_start - 1, 0)
            if ref_groups:
                flagged.add(reference.groups[min(index, len(ref_groups) - 1)].word_index)
            continue
        for group in reference.groups[ref_start:ref_end]:
            flagged.add(group.word_index)
    return flagged


def _word_confidences(alignment: common_pb2.Alignment | None) -> dict[int, float]:
    """Per word, the share of its phoneme groups the alignment did not flag (one pass: a long
    target has thousands of groups)."""
    if alignment is None:
        return {}
    counts: dict[int, list[int]] = {}
    for group in alignment.groups:
        count = counts.setdefault(group.word_index, [0, 0])
        count[0] += 0 if group.flagged else 1
        count[1] += 1
    return {word: unflagged / total for word, (unflagged, total) in counts.items()}


def fuse(data: FusionInput) -> FusionOutput:
    reference = data.reference
    findings = list(data.findings or ())
    kept: list[common_pb2.Finding] = []
    by_word: dict[int, list[int]] = {}
    for finding in findings:
        if finding.verdict in {common_pb2.VERDICT_CORRECT} and not data.include_correct:
            continue
        by_word.setdefault(finding.word_index, []).append(len(kept))
        kept.append(finding)

    letter_errors: set[int] = set()
    if data.findings is None and data.decode is not None and data.rules_ran:
        letter_errors = words_with_letter_errors(reference, data.decode.phonemes)

    aligned_words = {w.word_index: w for w in data.alignment.words} if data.alignment is not None else {}
    confidences = _word_confidences(data.alignment)
    words: list[gateway_pb2.WordAssessment] = []
    for index, word in enumerate(reference.words):
        indexes = by_word.get(index, [])
        if not data.rules_ran or data.decode is None:
            verdict = gateway_pb2.WORD_VERDICT_NOT_ASSESSED
        elif data.findings is None:
            verdict = gateway_pb2.WORD_VERDICT_MISTAKE if index in letter_errors else gateway_pb2.WORD_VERDICT_CORRECT
        else:
            problems = [kept[i] for i in indexes if kept[i].verdict not in _NOT_A_PROBLEM]
            if any(f.rule in LETTER_RULES for f in problems):
                verdict = gateway_pb2.WORD_VERDICT_MISTAKE
            elif problems:
                verdict = gateway_pb2.WORD_VERDICT_TAJWEED_ISSUE
            else:
                verdict = gateway_pb2.WORD_VERDICT_CORRECT
        assessment = gateway_pb2.WordAssessment(
            word_index=index,
            uthmani=word.uthmani,
            surah=word.surah,
            ayah=word.ayah,
            verdict=verdict,
            confidence=confidences.get(index, 0.0),
            finding_indexes=indexes,
        )
        aligned = aligned_words.get(index)
        if aligned is not None:
            assessment.time_span.CopyFrom(common_pb2.TimeSpan(start_s=aligned.span.start_s, end_s=aligned.span.end_s))
        words.append(assessment)

    errors: list[gateway_pb2.ErrorItem] = []
    for position, finding in enumerate(kept):
        if finding.verdict in _NOT_A_PROBLEM:
            continue
        word_text = (
            reference.words[finding.word_index].uthmani if 0 <= finding.word_index < len(reference.words) else ""
        )
        errors.append(
            gateway_pb2.ErrorItem(
                word_index=finding.word_index,
                word=word_text,
                kind=_kind(finding.rule),
                rule=finding.rule,
                expected=finding.expected_phonemes or finding.expected.text,
                heard=finding.heard_phonemes or finding.measured.text,
                time_span=finding.time_span,
                message_ar=finding.message_ar,
                message_en=finding.message_en,
                finding_index=position,
            )
        )
    return FusionOutput(words=words, errors=errors, findings=kept, scores=_scores(data, findings))


def _scores(data: FusionInput, findings: Sequence[common_pb2.Finding]) -> gateway_pb2.Scores:
    return score(
        data.reference.phonemes,
        data.decode.phonemes if data.decode is not None else None,
        findings if data.findings is not None else None,
        data.alignment.confidence if data.alignment is not None else None,
    )


def score(
    reference_phonemes: str,
    decoded_phonemes: str | None,
    findings: Sequence[common_pb2.Finding] | None,
    confidence: float | None,
) -> gateway_pb2.Scores:
    """Scores from the phonemes expected and decoded, every rule checked (the passed ones too;
    None when the rules did not run) and the alignment's confidence in [0, 1] (None: no
    alignment). The recitation follower scores its composed words with it too."""
    accuracy = 0.0
    if decoded_phonemes is not None and reference_phonemes:
        accuracy = 100.0 * Levenshtein.normalized_similarity(reference_phonemes, decoded_phonemes)
    if findings is None:
        tajweed = 0.0
    else:
        judged = [
            f
            for f in findings
            if f.rule not in LETTER_RULES
            and f.verdict not in {common_pb2.VERDICT_UNCERTAIN, common_pb2.VERDICT_UNSPECIFIED}
        ]
        tajweed = (
            100.0 * sum(f.verdict == common_pb2.VERDICT_CORRECT for f in judged) / len(judged) if judged else 100.0
        )
    aligned = 100.0 * confidence if confidence is not None else 0.0
    overall = WEIGHT_ACCURACY * accuracy + WEIGHT_TAJWEED * tajweed + WEIGHT_CONFIDENCE * aligned
    return gateway_pb2.Scores(accuracy=accuracy, tajweed=tajweed, confidence=aligned, overall=overall)
