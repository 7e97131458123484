"""Protobuf <-> core objects for the alignment service (no grpc here)."""

from __future__ import annotations

from services.alignment.core import AlignmentResult, CallOptions, GroupRef, ReferenceInput, WordRef
from services.common.pb import alignment_pb2, common_pb2


def reference_from_proto(reference: common_pb2.Reference) -> ReferenceInput:
    return ReferenceInput(
        phonemes=reference.phonemes,
        ids=list(reference.phoneme_ids),
        groups=[
            GroupRef(g.phonemes, g.phoneme_start, g.phoneme_end, g.word_index) for g in reference.groups
        ],
        words=[WordRef(w.uthmani, w.phoneme_start, w.phoneme_end) for w in reference.words],
    )


def options_from_proto(request: alignment_pb2.AlignRequest) -> CallOptions:
    options = request.options
    return CallOptions(
        thresholds=dict(options.thresholds) or None,
        default_threshold=(
            options.default_threshold if options.HasField("default_threshold") else None
        ),
        band_frames=options.band_frames,
        vocabulary=list(request.vocabulary) or None,
    )


def _set_span(span: common_pb2.FrameSpan, start: int, end: int, frame_s: float) -> None:
    span.start_frame = start
    span.end_frame = end
    span.start_s = start * frame_s
    span.end_s = end * frame_s


def alignment_to_proto(result: AlignmentResult) -> common_pb2.Alignment:
    # Messages are appended in place with add(): about 1.7x faster than building each one and
    # copying it into the repeated field, which matters for a surah's thousands of tokens.
    frame_s = result.frame_duration_s
    vocabulary = result.vocabulary
    alignment = common_pb2.Alignment(
        num_frames=result.num_frames,
        frame_duration_s=frame_s,
        path_log_prob=result.path_log_prob,
        confidence=result.confidence,
    )
    tokens = result.tokens
    for index, (token, start, end, mean_log_prob, llr, gop, competitor, flagged, threshold) in enumerate(
        zip(
            tokens.ids.tolist(),
            tokens.spans.start.tolist(),
            tokens.spans.end.tolist(),
            tokens.mean_log_prob.tolist(),
            tokens.llr.tolist(),
            tokens.gop_posterior.tolist(),
            tokens.competitor.tolist(),
            tokens.flagged.tolist(),
            tokens.threshold.tolist(),
            strict=True,
        )
    ):
        aligned = alignment.tokens.add(
            phoneme=vocabulary[token],
            id=token,
            phoneme_index=index,
            mean_log_prob=mean_log_prob,
            llr=llr,
            gop_posterior=gop,
            competitor=vocabulary[competitor],
            flagged=flagged,
            threshold=threshold,
        )
        _set_span(aligned.span, start, end, frame_s)
    groups = result.groups
    for index, (group, start, end, min_llr, flagged) in enumerate(
        zip(
            result.reference.groups,
            groups.spans.start.tolist(),
            groups.spans.end.tolist(),
            groups.llr.tolist(),
            groups.flagged.tolist(),
            strict=True,
        )
    ):
        aligned_group = alignment.groups.add(
            phonemes=group.phonemes,
            group_index=index,
            word_index=group.word_index,
            min_llr=min_llr,
            flagged=flagged,
        )
        _set_span(aligned_group.span, start, end, frame_s)
    words = result.words
    for index, (word, start, end, mean_llr, flagged) in enumerate(
        zip(
            result.reference.words,
            words.spans.start.tolist(),
            words.spans.end.tolist(),
            words.llr.tolist(),
            words.flagged.tolist(),
            strict=True,
        )
    ):
        aligned_word = alignment.words.add(
            word_index=index, uthmani=word.uthmani, mean_llr=mean_llr, flagged=flagged
        )
        _set_span(aligned_word.span, start, end, frame_s)
    return alignment
