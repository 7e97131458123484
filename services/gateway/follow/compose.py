"""The final Assessment of a followed recitation, composed from its attempts.

Per word, the attempt the follower settled on (the latest recited one; the others listed as
its attempts), with that attempt's errors and findings only; the isti'adha and basmala as
preludes, never as errors; a skipped word as "not recited" on that word. The scores, the
content check and the stage reports are computed over the composition, so a live session's
final and Assess of the same audio agree, and both agree with the verdicts the learner saw.

Words no stretch ever reached are "not recited" when the recitation is the target (the content
check matched and every segment was heard), and not assessed otherwise (another passage was
recited, or the asr lost a segment that may have held them).

With include_details, several stretches have several references, decodes and alignments; the
Assessment gives the target's own reference (the words' indexes count its words), the decodes
of every segment joined in time order (tokens on the recording's frame clock), and, when one
stretch holds every word, that stretch's alignment on the recording's clock; otherwise the
aligned words and groups of the settled attempts (word indexes of the target, tokens left out:
their phoneme indexes count each stretch's own reference).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

from services.common.errors import FailedPrecondition
from services.common.pb import common_pb2, gateway_pb2
from services.gateway.follow import ledger as ledgers
from services.gateway.follow.attempts import Attempt, assemble, not_assessed, not_recited
from services.gateway.follow.follower import Followed, SegmentRecord
from services.gateway.follow.judgement import Judgement
from services.gateway.fusion import score
from services.gateway.stage_run import StageLedger
from services.gateway.verification import ContentVerifier, similarity, similarity_with_drops

Chosen = tuple[Attempt, Sequence[Attempt]]


@dataclass(frozen=True)
class Composition:
    assessment: gateway_pb2.Assessment
    # The words no live event gave a verdict, as the Assessment has them (None: there are none).
    unseen: gateway_pb2.LiveWords | None
    # What a prosody comparison pairs the learner's words by: a reference and its alignment on
    # the recording's clock (None: no one stretch holds every word; the comparison uses DTW).
    compared: tuple[common_pb2.Reference, common_pb2.Alignment | None]


async def compose(
    followed: Followed,
    verifier: ContentVerifier,
    model: common_pb2.ModelVersion | None,
    leading: Sequence[common_pb2.StageReport] = (),
) -> Composition:
    refusals = [r.refused for r in followed.records if r.refused is not None]
    if refusals and not any(r.judged is not None and r.judged.alignment is not None for r in followed.records):
        # Not one stretch could be aligned, and the aligner said why: the audio cannot hold
        # the passage. That is the caller's input, as in Assess of old, not a partial answer.
        raise FailedPrecondition(refusals[0])
    request, options = followed.request, followed.request.options
    target = followed.reference.reference
    words = list(target.words)
    phonemes = [target.phonemes[w.phoneme_start : w.phoneme_end] for w in words]
    records = followed.records
    ledger = StageLedger()
    heard = [r for r in records if r.decode is not None]
    settled = {k: followed.committer.settled(k) for k in range(len(words))}

    verify_started = time.perf_counter()
    expected = "".join(s[0].reference if s is not None else phonemes[k] for k, s in settled.items())
    recited = "".join((s[0].decoded or "") if s is not None else "" for s in settled.values())
    if not heard:
        content = gateway_pb2.ContentCheck(status=gateway_pb2.CONTENT_STATUS_UNKNOWN)
        ledger.record("verification", common_pb2.STAGE_STATUS_SKIPPED, message="no transcription")
    else:
        content = await _content(verifier, options, expected, recited, records)
        ledger.record("verification", common_pb2.STAGE_STATUS_OK, (time.perf_counter() - verify_started) * 1000)

    fusion_started = time.perf_counter()
    heard_all = all(not r.asr_failed and r.refused is None for r in records)
    absent_recited = content.status == gateway_pb2.CONTENT_STATUS_MATCH and heard_all
    chosen: list[Chosen] = []
    for k, found in settled.items():
        if found is not None:
            chosen.append(found)
        elif absent_recited:
            chosen.append((not_recited(k, words[k], phonemes[k], None, skipped=False), ()))
        else:
            chosen.append((not_assessed(k, words[k], phonemes[k]), ()))
    final_words, errors, findings = assemble(chosen)
    recited_attempts = [a for a, _ in chosen if a.stretch is not None]
    ruled = [a for a in recited_attempts if a.scored is not None]
    scored = [f for a, _ in chosen for f in (a.scored or ())] if ruled else None
    aligned = [a.confidence for a in recited_attempts if a.confidence is not None]
    scores = score(
        expected,
        recited if heard else None,
        scored,
        sum(aligned) / len(aligned) if aligned else None,
    )
    ledger.record("fusion", common_pb2.STAGE_STATUS_OK, (time.perf_counter() - fusion_started) * 1000)

    reports = ledgers.merged([*leading, *(r for record in records for r in record.ledger.reports), *ledger.reports])
    assessment = gateway_pb2.Assessment(
        target=request.target,
        content=content,
        words=final_words,
        errors=errors,
        findings=findings,
        scores=scores,
        stages=reports,
        cache_hit=followed.reference.cache_hit,
        degraded=ledgers.degraded(reports),
        audio_duration_s=followed.duration_s,
        uthmani=target.uthmani,
        segments=[_segment(r) for r in records],
        preludes=followed.preludes,
    )
    latest = heard[-1].decode if heard else None
    if latest is not None:
        assessment.model_version.CopyFrom(latest[1].model_version)
    elif model is not None:
        assessment.model_version.CopyFrom(model)
    stretches = _stretches(recited_attempts)
    tempo = _tempo(stretches)
    if tempo is not None:
        assessment.tempo.CopyFrom(tempo)
    whole = _whole(stretches, recited_attempts, len(words))
    if options.include_details:
        assessment.reference.CopyFrom(target)
        if heard:
            assessment.decode.CopyFrom(_joined_decode(heard))
        alignment = _alignment(stretches, recited_attempts, whole, followed.duration_s)
        if alignment is not None:
            assessment.alignment.CopyFrom(alignment)
    compared: tuple[common_pb2.Reference, common_pb2.Alignment | None] = (target, None)
    if whole is not None and whole.reference is not None and whole.alignment is not None:
        compared = (whole.reference, _shifted(whole.alignment, whole.offset_s))
    unseen = [c for c in chosen if c[0].index not in followed.committer.sent]
    event = None
    if unseen:
        unseen_words, unseen_errors, unseen_findings = assemble(unseen)
        event = gateway_pb2.LiveWords(
            segment_index=-1, words=unseen_words, errors=unseen_errors, findings=unseen_findings
        )
    return Composition(assessment, event, compared)


async def _content(
    verifier: ContentVerifier,
    options: gateway_pb2.AssessOptions,
    expected: str,
    recited: str,
    records: Sequence[SegmentRecord],
) -> gateway_pb2.ContentCheck:
    """Was the target recited? The settled attempts' decodes against the words as they were
    read; on a mismatch, what the unplaced stretches (or the whole decode) sound like."""
    threshold = options.content_threshold if options.HasField("content_threshold") else verifier.threshold
    value = similarity(recited, expected)
    if value < threshold:
        # Words left out are words not recited (reported on themselves), not another passage.
        value = max(value, similarity_with_drops(recited, expected))
    if value >= threshold:
        return gateway_pb2.ContentCheck(status=gateway_pb2.CONTENT_STATUS_MATCH, similarity=value, threshold=threshold)
    unplaced = "".join(
        r.decode[1].decode.phonemes for r in records if r.unplaced and not r.carried and r.decode is not None
    )
    query = unplaced or "".join(r.decode[1].decode.phonemes for r in records if r.decode is not None)
    passages = await asyncio.to_thread(verifier.finder.find, query) if query else []
    return gateway_pb2.ContentCheck(
        status=gateway_pb2.CONTENT_STATUS_MISMATCH,
        similarity=value,
        threshold=threshold,
        likely_recited=[p.to_proto() for p in passages],
    )


def _segment(record: SegmentRecord) -> gateway_pb2.LiveSegment:
    segment = record.segment
    return gateway_pb2.LiveSegment(
        index=segment.index,
        time_span=common_pb2.TimeSpan(start_s=segment.start_s, end_s=segment.end_s),
        closed_by_pause=segment.closed_by_pause,
    )


def _stretches(attempts: Sequence[Attempt]) -> list[Judgement]:
    """The judged stretches that hold at least one settled attempt, in order."""
    seen: dict[int, Judgement] = {}
    for attempt in attempts:
        if attempt.stretch is not None:
            seen.setdefault(id(attempt.stretch), attempt.stretch)
    return sorted(seen.values(), key=lambda j: (j.offset_s, j.segment_index))


def _whole(stretches: Sequence[Judgement], attempts: Sequence[Attempt], count: int) -> Judgement | None:
    """The one stretch every word's settled attempt comes from, if there is one."""
    if len(stretches) == 1 and len(attempts) == count:
        return stretches[0]
    return None


def _tempo(stretches: Sequence[Judgement]) -> common_pb2.Tempo | None:
    """The reciter's pace over the stretches, each weighted by the vowels it was measured on."""
    tempos = [j.tempo for j in stretches if j.tempo is not None]
    measured = [t for t in tempos if not t.from_prior and t.samples > 0]
    if not measured:
        return tempos[0] if tempos else None
    samples = sum(t.samples for t in measured)
    return common_pb2.Tempo(
        haraka_s=sum(t.haraka_s * t.samples for t in measured) / samples,
        consonant_s=sum(t.consonant_s * t.samples for t in measured) / samples,
        samples=samples,
        from_prior=False,
    )


def _joined_decode(heard: Sequence[SegmentRecord]) -> common_pb2.Decode:
    joined = common_pb2.Decode()
    for record in heard:
        assert record.decode is not None
        offset_s, transcription = record.decode
        frame_s = transcription.frame_duration_s or 0.04
        shift = round(offset_s / frame_s)
        joined.phonemes += transcription.decode.phonemes
        for token in transcription.decode.tokens:
            moved = joined.tokens.add()
            moved.CopyFrom(token)
            moved.start_frame += shift
            moved.end_frame += shift
        joined.sifat.extend(transcription.decode.sifat)
    return joined


def _shift_span(span: common_pb2.FrameSpan, offset_s: float, frames: int) -> None:
    span.start_s += offset_s
    span.end_s += offset_s
    span.start_frame += frames
    span.end_frame += frames


def _shifted(alignment: common_pb2.Alignment, offset_s: float) -> common_pb2.Alignment:
    """The alignment on the recording's clock."""
    moved = common_pb2.Alignment()
    moved.CopyFrom(alignment)
    frames = round(offset_s / alignment.frame_duration_s) if alignment.frame_duration_s > 0 else 0
    for token in moved.tokens:
        _shift_span(token.span, offset_s, frames)
    for group in moved.groups:
        _shift_span(group.span, offset_s, frames)
    for word in moved.words:
        _shift_span(word.span, offset_s, frames)
    return moved


def _alignment(
    stretches: Sequence[Judgement], attempts: Sequence[Attempt], whole: Judgement | None, duration_s: float
) -> common_pb2.Alignment | None:
    if whole is not None:
        return _shifted(whole.alignment, whole.offset_s) if whole.alignment is not None else None
    aligned = [j for j in stretches if j.alignment is not None]
    if not aligned:
        return None
    frame_s = next(j.alignment.frame_duration_s for j in aligned if j.alignment is not None)
    composed = common_pb2.Alignment(frame_duration_s=frame_s, num_frames=round(duration_s / frame_s) if frame_s else 0)
    settled = {(a.stretch.segment_index, a.index) for a in attempts if a.stretch is not None}
    confidences = []
    for judgement in aligned:
        assert judgement.alignment is not None
        moved = _shifted(judgement.alignment, judgement.offset_s)
        index = judgement.target_index
        confidences.append(judgement.alignment.confidence)
        for word in moved.words:
            target = index[word.word_index] if 0 <= word.word_index < len(index) else -1
            if (judgement.segment_index, target) in settled:
                word.word_index = target
                composed.words.append(word)
        for group in moved.groups:
            target = index[group.word_index] if 0 <= group.word_index < len(index) else -1
            if (judgement.segment_index, target) in settled:
                group.word_index = target
                composed.groups.append(group)
    composed.words.sort(key=lambda w: w.word_index)
    composed.confidence = sum(confidences) / len(confidences)
    return composed
