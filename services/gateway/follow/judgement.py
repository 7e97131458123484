"""A judged stretch: what the stages said about one stretch of the recitation, in the target's
terms (word indexes of the target, times on the recording's clock), kept for the attempts cut
from it and for the final Assessment (its details, tempo and comparison)."""

from __future__ import annotations

from dataclasses import dataclass, field

from services.common.pb import asr_pb2, common_pb2, gateway_pb2


@dataclass
class Judgement:
    segment_index: int
    offset_s: float  # where the stretch's audio starts on the recording's clock
    transcription: asr_pb2.Transcription
    reference: common_pb2.Reference | None = None
    alignment: common_pb2.Alignment | None = None  # in the stretch's own terms
    tempo: common_pb2.Tempo | None = None
    # The target's index of each of the stretch reference's words (-1: none).
    target_index: list[int] = field(default_factory=list)
    words: list[gateway_pb2.WordAssessment] = field(default_factory=list)
    errors: list[gateway_pb2.ErrorItem] = field(default_factory=list)
    findings: list[common_pb2.Finding] = field(default_factory=list)
    scored: list[common_pb2.Finding] | None = None
    decoded: dict[int, str] = field(default_factory=dict)
    judged_phonemes: dict[int, str] = field(default_factory=dict)
