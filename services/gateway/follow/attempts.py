"""One attempt at one word, and the words/errors/findings lists built from attempts.

Both a live `words` event and the final Assessment are built by `assemble` from attempts, so a
verdict the learner saw and the final verdict of the same attempt cannot differ.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from rapidfuzz.distance import Levenshtein

from services.common.pb import common_pb2, gateway_pb2
from services.gateway.follow.judgement import Judgement

NOT_RECITED_EN = "not recited: the recitation went on past this word"
NOT_RECITED_AR = "لم تُقرأ هذه الكلمة"


@dataclass(frozen=True)
class Attempt:
    """A word as one stretch judged it. `word.finding_indexes` and each error's finding_index
    point into `findings`, the findings about this word alone."""

    index: int  # the word, in the target's words
    segment_index: int | None  # None: the word was never recited
    word: gateway_pb2.WordAssessment
    errors: tuple[gateway_pb2.ErrorItem, ...] = ()
    findings: tuple[common_pb2.Finding, ...] = ()
    # Every rule checked on the word, passed ones too (the tajweed score counts them); None
    # when the tajweed stage did not judge the word.
    scored: tuple[common_pb2.Finding, ...] | None = None
    # The word's phonemes as its stretch was read (a stop makes the waqf form), and those decoded
    # for it; None when nothing was decoded.
    reference: str = ""
    decoded: str | None = None
    confidence: float | None = None
    skipped: bool = False
    stretch: Judgement | None = field(default=None, compare=False)

    def summary(self) -> gateway_pb2.WordAttempt:
        summary = gateway_pb2.WordAttempt(
            segment_index=self.segment_index if self.segment_index is not None else -1,
            verdict=self.word.verdict,
            skipped=self.skipped,
        )
        if self.word.HasField("time_span"):
            summary.time_span.CopyFrom(self.word.time_span)
        return summary


def attempts_of(judgement: Judgement, below: int) -> list[Attempt]:
    """One attempt per judged word with a target index under `below` (a held-back last word is
    judged again with the next stretch). Findings about no word of the stretch (and their
    errors) go with its first word."""
    words = [w for w in judgement.words if w.word_index < below]
    if not words:
        return []
    first = words[0].word_index
    ours = set(judgement.target_index) - {-1}

    def about(finding: common_pb2.Finding, k: int) -> bool:
        return finding.word_index == k or (k == first and finding.word_index not in ours)

    confidence = judgement.alignment.confidence if judgement.alignment is not None else None
    out = []
    for word in words:
        k = word.word_index
        own = [i for i, f in enumerate(judgement.findings) if about(f, k)]
        renumber = {old: new for new, old in enumerate(own)}
        moved = gateway_pb2.WordAssessment()
        moved.CopyFrom(word)
        del moved.finding_indexes[:]
        moved.finding_indexes.extend(renumber[i] for i in word.finding_indexes if i in renumber)
        errors = []
        for error in judgement.errors:
            if error.finding_index in renumber:
                copy = gateway_pb2.ErrorItem()
                copy.CopyFrom(error)
                copy.finding_index = renumber[error.finding_index]
                errors.append(copy)
        scored = None if judgement.scored is None else tuple(f for f in judgement.scored if about(f, k))
        out.append(
            Attempt(
                index=k,
                segment_index=judgement.segment_index,
                word=moved,
                errors=tuple(errors),
                findings=tuple(judgement.findings[i] for i in own),
                scored=scored,
                reference=judgement.judged_phonemes.get(k, ""),
                decoded=judgement.decoded.get(k, ""),
                confidence=confidence,
                stretch=judgement,
            )
        )
    return out


def not_recited(
    index: int, word: common_pb2.ReferenceWord, phonemes: str, segment_index: int | None, *, skipped: bool
) -> Attempt:
    """A word the reciter left out: a letter mistake on the word (all its letters missing), said
    as such, never as another word's extra letters."""
    finding = common_pb2.Finding(
        rule=common_pb2.RULE_PRONUNCIATION,
        rule_name="not recited",
        word_index=index,
        verdict=common_pb2.VERDICT_MISSING,
        expected_phonemes=phonemes,
        message_en=NOT_RECITED_EN,
        message_ar=NOT_RECITED_AR,
        source="follower",
        confidence=1.0,
    )
    error = gateway_pb2.ErrorItem(
        word_index=index,
        word=word.uthmani,
        kind="pronunciation",
        rule=common_pb2.RULE_PRONUNCIATION,
        expected=phonemes,
        message_en=NOT_RECITED_EN,
        message_ar=NOT_RECITED_AR,
        finding_index=0,
    )
    assessment = _stub(index, word, gateway_pb2.WORD_VERDICT_MISTAKE)
    assessment.finding_indexes.append(0)
    return Attempt(index, segment_index, assessment, (error,), (finding,), (finding,), phonemes, "", skipped=skipped)


def not_assessed(index: int, word: common_pb2.ReferenceWord, phonemes: str) -> Attempt:
    """A word nobody can say was recited or not (no decode, or another passage was recited)."""
    return Attempt(index, None, _stub(index, word, gateway_pb2.WORD_VERDICT_NOT_ASSESSED), reference=phonemes)


def _stub(index: int, word: common_pb2.ReferenceWord, verdict: int) -> gateway_pb2.WordAssessment:
    return gateway_pb2.WordAssessment(
        word_index=index,
        uthmani=word.uthmani,
        surah=word.surah,
        ayah=word.ayah,
        verdict=verdict,  # type: ignore[arg-type]
    )


def assemble(
    chosen: Sequence[tuple[Attempt, Sequence[Attempt]]],
) -> tuple[list[gateway_pb2.WordAssessment], list[gateway_pb2.ErrorItem], list[common_pb2.Finding]]:
    """Words, errors and findings of (attempt, the attempts it replaced) pairs, in order, with
    the indexes between them renumbered."""
    words: list[gateway_pb2.WordAssessment] = []
    errors: list[gateway_pb2.ErrorItem] = []
    findings: list[common_pb2.Finding] = []
    for attempt, replaced in chosen:
        base = len(findings)
        findings.extend(attempt.findings)
        word = gateway_pb2.WordAssessment()
        word.CopyFrom(attempt.word)
        del word.finding_indexes[:]
        word.finding_indexes.extend(base + i for i in attempt.word.finding_indexes)
        word.attempts.extend(r.summary() for r in replaced)
        if attempt.segment_index is not None:
            word.segment_index = attempt.segment_index
        words.append(word)
        for error in attempt.errors:
            moved = gateway_pb2.ErrorItem()
            moved.CopyFrom(error)
            moved.finding_index = base + error.finding_index
            errors.append(moved)
    return words, errors, findings


def decoded_by_word(reference: common_pb2.Reference, decoded: str) -> list[str]:
    """The decoded phonemes each reference word took, by an edit alignment of the two strings:
    a decoded phoneme equal to (or in place of) a reference phoneme goes to that phoneme's word,
    an extra one to the word before it. Joined in order, they give `decoded` back."""
    count = len(reference.words)
    out = [""] * count
    if count == 0:
        return out
    owner = [-1] * len(reference.phonemes)
    for k, word in enumerate(reference.words):
        for i in range(word.phoneme_start, min(word.phoneme_end, len(owner))):
            owner[i] = k
    last = 0
    for i, k in enumerate(owner):  # phonemes of no word go with the word before them
        owner[i] = last = k if k >= 0 else last

    def word_at(i: int) -> int:
        return owner[min(max(i, 0), len(owner) - 1)] if owner else 0

    for op in Levenshtein.opcodes(reference.phonemes, decoded):
        if op.tag in ("equal", "replace"):
            for offset, j in enumerate(range(op.dest_start, op.dest_end)):
                out[word_at(min(op.src_start + offset, op.src_end - 1))] += decoded[j]
        elif op.tag == "insert":
            out[word_at(op.src_start - 1)] += decoded[op.dest_start : op.dest_end]
    return out
