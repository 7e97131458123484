"""One stretch of a live session judged by the gateway's own stages.

The same calls Assess makes (reference service, the alignment and tajweed stages through
Assessor, fusion), on the stretch's audio and the stretch's own reference; the answer is then
put back in the session's terms (word indexes of the session's target, times on the session's
audio clock).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import numpy as np

from services.common.audio import DecodedAudio
from services.common.errors import MeshError
from services.common.pb import asr_pb2, common_pb2, gateway_pb2
from services.gateway.assess import Assessor
from services.gateway.follow.stretch import WordKey, stretch_target, word_key
from services.gateway.fusion import FusionInput, fuse
from services.gateway.stage_run import StageLedger
from services.tajweed.energy import energy_envelope


@dataclass
class Judgement:
    words: list[gateway_pb2.WordAssessment] = field(default_factory=list)
    errors: list[gateway_pb2.ErrorItem] = field(default_factory=list)
    findings: list[common_pb2.Finding] = field(default_factory=list)
    degraded: list[str] = field(default_factory=list)


def _shift(span: common_pb2.TimeSpan, offset_s: float) -> None:
    if span.end_s > 0 or span.start_s > 0:
        span.start_s += offset_s
        span.end_s += offset_s


async def judge_stretch(
    assessor: Assessor,
    session_words: list[common_pb2.ReferenceWord],
    first: int,
    end: int,
    request: gateway_pb2.AssessRequest,
    transcription: asr_pb2.Transcription,
    audio: DecodedAudio,
    offset_s: float,
) -> Judgement:
    """Verdicts of the session's words [first, end), recited in `audio` (which starts at
    `offset_s` on the session clock) and decoded in `transcription`."""
    ledger = StageLedger()
    moshaf = request.moshaf if request.HasField("moshaf") else None
    options = request.options
    reserve = assessor.config.fusion_reserve_s
    try:
        reference = (await assessor.reference(stretch_target(session_words, first, end), moshaf)).reference
    except MeshError:
        return Judgement(degraded=["reference"])
    alignment = await assessor._align(transcription, reference, options, ledger, reserve)
    findings: list[common_pb2.Finding] | None = None
    if alignment is not None:
        energy = await asyncio.to_thread(energy_envelope, audio.samples, audio.sample_rate)
        validated = await assessor._validate(
            reference, alignment, transcription, energy, audio, options, ledger, reserve
        )
        if validated is not None:
            findings = list(validated.findings)
    fused = fuse(
        FusionInput(
            reference=reference,
            decode=transcription.decode,
            alignment=alignment,
            findings=findings,
            content=gateway_pb2.ContentCheck(status=gateway_pb2.CONTENT_STATUS_MATCH),
            rules_ran=alignment is not None,
            include_correct=options.include_correct,
        )
    )
    index_of: dict[WordKey, int] = {word_key(w): first + k for k, w in enumerate(session_words[first:end])}
    stretch_index = [index_of.get(word_key(w), -1) for w in reference.words]
    judgement = Judgement(degraded=ledger.degraded())
    for word in fused.words:
        session_index = stretch_index[word.word_index] if word.word_index < len(stretch_index) else -1
        if session_index < 0:
            continue
        moved = gateway_pb2.WordAssessment()
        moved.CopyFrom(word)
        moved.word_index = session_index
        _shift(moved.time_span, offset_s)
        judgement.words.append(moved)
    for finding in fused.findings:
        moved_finding = common_pb2.Finding()
        moved_finding.CopyFrom(finding)
        if 0 <= finding.word_index < len(stretch_index):
            moved_finding.word_index = stretch_index[finding.word_index]
        _shift(moved_finding.time_span, offset_s)
        judgement.findings.append(moved_finding)
    for error in fused.errors:
        moved_error = gateway_pb2.ErrorItem()
        moved_error.CopyFrom(error)
        if 0 <= error.word_index < len(stretch_index):
            moved_error.word_index = stretch_index[error.word_index]
        _shift(moved_error.time_span, offset_s)
        judgement.errors.append(moved_error)
    return judgement


def window(samples: np.ndarray, start_s: float, end_s: float) -> DecodedAudio:
    lo = max(0, round(start_s * 16000))
    hi = max(lo, round(end_s * 16000))
    return DecodedAudio(
        samples=np.ascontiguousarray(samples[lo:hi], dtype=np.float32),
        source_rate=16000,
        source_channels=1,
        source_format="live",
    )
