"""Protobuf <-> ASR core objects. Every function here is a pure conversion (no I/O but decoding
audio bytes), so the servicer stays a thin sequence of convert, call, convert."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from services.asr.decode import LOG_PROB_FLOOR, DecodeReference, DecodeResult
from services.asr.results import (
    ModelInfo,
    ModelVersion,
    SegmentResult,
    TranscribeOptions,
    Transcription,
)
from services.asr.segmenter import SegmentOptions
from services.common import tensors
from services.common.errors import InvalidArgument
from services.common.pb import asr_pb2, common_pb2
from services.common.sifat import SIFA_LEVELS

_SIFA_SET = frozenset(SIFA_LEVELS)


def transcribe_options(message: asr_pb2.TranscribeOptions) -> TranscribeOptions:
    return TranscribeOptions(
        include_log_probs=message.include_log_probs,
        levels=tuple(message.levels),
        force_segmentation=message.force_segmentation,
        skip_sifat=message.skip_sifat,
        detect_completeness=message.detect_completeness,
        reference=reference_from_proto(message),
        frame_phases=message.frame_phases,
    )


def segment_options(message: asr_pb2.SegmentOptions) -> SegmentOptions:
    defaults = SegmentOptions()
    options = SegmentOptions(
        min_silence_duration_ms=message.min_silence_duration_ms
        if message.HasField("min_silence_duration_ms")
        else defaults.min_silence_duration_ms,
        min_speech_duration_ms=message.min_speech_duration_ms
        if message.HasField("min_speech_duration_ms")
        else defaults.min_speech_duration_ms,
        pad_duration_ms=message.pad_duration_ms if message.HasField("pad_duration_ms") else defaults.pad_duration_ms,
    )
    options.validate()
    return options


def model_version(version: ModelVersion | None) -> common_pb2.ModelVersion:
    if version is None:
        return common_pb2.ModelVersion()
    return common_pb2.ModelVersion(
        name=version.name,
        weights_digest=version.weights_digest,
        dev_weights=version.dev_weights,
        backend=version.backend,
        precision=version.precision,
        precision_reason=version.precision_reason,
        device=version.device,
        demo_weights=version.demo_weights,
    )


def log_probs_tensor(values: np.ndarray) -> common_pb2.Tensor:
    return tensors.to_proto(np.maximum(values, LOG_PROB_FLOOR), "float16")


def transcription(result: Transcription, *, before: Sequence[tuple[str, float]] = ()) -> asr_pb2.Transcription:
    """`before`: stages that ran ahead of the engine (audio decoding in the servicer)."""
    message = asr_pb2.Transcription(
        decode=decode_to_proto(result.decode),
        log_probs=[
            asr_pb2.LevelLogProbs(level=level, log_probs=log_probs_tensor(values))
            for level, values in result.log_probs.items()
        ],
        num_frames=result.num_frames,
        frame_duration_s=result.frame_duration_s,
        audio_duration_s=result.audio_duration_s,
        model_version=model_version(result.model_version),
        timings=[common_pb2.StageTiming(stage=stage, duration_ms=ms) for stage, ms in (*before, *result.timings)],
        chunking=result.chunking,
        segments=[common_pb2.SpeechInterval(start_s=s, end_s=e) for s, e in result.segments],
        batch_size=result.batch_size,
        queue_ms=result.queue_ms,
    )
    if result.is_complete is not None:
        message.is_complete = result.is_complete
    return message


def segment_response(result: SegmentResult) -> asr_pb2.SegmentResponse:
    return asr_pb2.SegmentResponse(
        intervals=[common_pb2.SpeechInterval(start_s=s, end_s=e) for s, e in result.segmentation.seconds()],
        is_complete=result.segmentation.is_complete,
        model_version=model_version(result.model_version),
        audio_duration_s=result.audio_duration_s,
        frame_duration_s=result.frame_duration_s,
    )


def model_info(info: ModelInfo) -> asr_pb2.GetModelInfoResponse:
    return asr_pb2.GetModelInfoResponse(
        model_version=model_version(info.model_version),
        vocabularies=[
            asr_pb2.LevelVocabulary(level=level, tokens=list(tokens)) for level, tokens in info.vocabularies.items()
        ],
        frame_duration_s=info.frame_duration_s,
        sample_rate_hz=info.sample_rate_hz,
        max_audio_s=info.max_audio_s,
        window_s=info.window_s,
        window_overlap_s=info.window_overlap_s,
        segment_above_s=info.segment_above_s,
        segmenter_loaded=info.segmenter_version is not None,
        segmenter_version=model_version(info.segmenter_version),
        max_batch_size=info.max_batch_size,
        max_queue_delay_ms=info.max_queue_delay_ms,
        max_queue_size=info.max_queue_size,
        parameters=info.parameters,
        tajweed_calibration_json=info.tajweed_calibration_json,
    )


def reference_from_proto(message: asr_pb2.TranscribeOptions) -> DecodeReference | None:
    """The optional reference sifat; labels are checked against quran-transcript's names."""
    if not message.reference_sifat:
        return None
    groups: list[str] = []
    labels: list[dict[str, str]] = []
    for index, sifat in enumerate(message.reference_sifat):
        if not sifat.phonemes_group:
            raise InvalidArgument(f"reference_sifat[{index}] has no phonemes_group")
        row: dict[str, str] = {}
        for level in SIFA_LEVELS:
            value = getattr(sifat, level)
            if not sifat.HasField(level) or not value.label:
                raise InvalidArgument(f"reference_sifat[{index}] has no {level} label")
            row[level] = value.label
        groups.append(sifat.phonemes_group)
        labels.append(row)
    return DecodeReference(groups=tuple(groups), labels=tuple(labels))


def decode_to_proto(decode: DecodeResult) -> common_pb2.Decode:
    sifat = []
    for group in decode.groups:
        message = common_pb2.Sifat(phonemes_group=group.phonemes)
        for level, value in group.sifat.items():
            if value is not None and level in _SIFA_SET:
                getattr(message, level).CopyFrom(common_pb2.SifaValue(label=value.label, prob=value.prob))
        sifat.append(message)
    return common_pb2.Decode(
        phonemes=decode.phonemes,
        tokens=[
            common_pb2.DecodedToken(
                phoneme=t.phoneme, id=t.id, prob=t.prob, start_frame=t.start_frame, end_frame=t.end_frame
            )
            for t in decode.tokens
        ],
        sifat=sifat,
        phase_phonemes=decode.phase_phonemes,
    )
