"""A stand-in for the three stages at the gateway's Stages boundary: each answers from what the
test set (a reply, or an error to raise) in microseconds, so the Assessor's branches run
without models or servers. The gateway's own parts (references, content check, fusion) are real.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import numpy as np

from services.common.errors import MeshError
from services.common.pb import alignment_pb2, asr_pb2, common_pb2, tajweed_pb2
from services.common.tensors import to_proto

MODEL = common_pb2.ModelVersion(name="stand-in", weights_digest="0" * 16, backend="none", precision="none")


def transcription(phonemes: str, *, log_probs: bool = True, frames: int = 50) -> asr_pb2.Transcription:
    """A transcription whose decode reads `phonemes` (with random log-probs when asked)."""
    reply = asr_pb2.Transcription(
        decode=common_pb2.Decode(phonemes=phonemes),
        num_frames=frames,
        frame_duration_s=0.04,
        model_version=MODEL,
    )
    if log_probs:
        values = np.log(np.full((frames, 8), 1 / 8, dtype=np.float32))
        reply.log_probs.append(asr_pb2.LevelLogProbs(level="phonemes", log_probs=to_proto(values, "float32")))
    return reply


@dataclass
class StandInStages:
    """Set `transcription`, `alignment`, `validation`, or put a MeshError in `errors[stage]`."""

    transcription: asr_pb2.Transcription | None = None
    alignment: common_pb2.Alignment = field(default_factory=common_pb2.Alignment)
    validation: tajweed_pb2.ValidateResponse = field(default_factory=tajweed_pb2.ValidateResponse)
    errors: dict[str, MeshError] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    # What a transcription asked for frame phases answers in Decode.phase_phonemes (the call is
    # "asr_phases" in `calls` and `errors`).
    phase_phonemes: tuple[str, ...] = ()
    validated: list[tajweed_pb2.ValidateRequest] = field(default_factory=list)

    def _answer(self, stage: str) -> None:
        self.calls.append(stage)
        error = self.errors.get(stage)
        if error is not None:
            raise error

    async def transcribe(self, request: asr_pb2.TranscribeRequest, timeout: float | None) -> asr_pb2.Transcription:
        phases = request.options.frame_phases > 1
        self._answer("asr_phases" if phases else "asr")
        assert self.transcription is not None, "the test set no transcription"
        if not phases:
            return self.transcription
        reply = asr_pb2.Transcription()
        reply.CopyFrom(self.transcription)
        reply.decode.phase_phonemes[:] = self.phase_phonemes
        return reply

    async def transcribe_stream(
        self, chunks: AsyncIterator[asr_pb2.TranscribeStreamRequest], timeout: float | None
    ) -> asr_pb2.Transcription:
        async for _ in chunks:
            pass
        return await self.transcribe(asr_pb2.TranscribeRequest(), timeout)

    async def model_info(self, timeout: float | None) -> asr_pb2.GetModelInfoResponse:
        self._answer("model_info")
        return asr_pb2.GetModelInfoResponse(model_version=MODEL)

    async def align(self, request: alignment_pb2.AlignRequest, timeout: float | None) -> alignment_pb2.AlignResponse:
        self._answer("alignment")
        return alignment_pb2.AlignResponse(alignment=self.alignment)

    async def validate(
        self, request: tajweed_pb2.ValidateRequest, timeout: float | None
    ) -> tajweed_pb2.ValidateResponse:
        self._answer("tajweed")
        self.validated.append(request)
        return self.validation

    async def health(self, timeout: float | None) -> dict[str, str]:
        return {"asr": "SERVING", "alignment": "SERVING", "tajweed": "SERVING"}

    @property
    def addresses(self) -> dict[str, str]:
        return {"asr": "stand-in", "alignment": "stand-in", "tajweed": "stand-in"}

    async def close(self) -> None:
        return None
