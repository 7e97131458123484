"""Timed calls to the services, and what one assessment says about where its time went."""

from __future__ import annotations

import time
from dataclasses import dataclass

from services.common.pb import asr_pb2, asr_pb2_grpc, gateway_pb2, gateway_pb2_grpc

CALL_TIMEOUT_S = 900.0


@dataclass(frozen=True)
class AssessSample:
    """One assessment: the client's round trip, the gateway's total, each stage's duration as
    the gateway saw it (`stages`) and the stages' own timings (`timings`, "asr/model"...)."""

    wall_ms: float
    total_ms: float
    stages: dict[str, float]
    timings: dict[str, float]
    degraded: tuple[str, ...]
    content_status: int
    decode: str = ""

    def hop_ms(self, stage: str) -> float | None:
        """A stage call's time outside the stage's own work: request and reply conversion,
        serialisation, HTTP/2 and loopback in the mesh; conversion alone in process."""
        own = {
            "asr": ["asr/decode_audio", "asr/total"],
            "alignment": ["alignment/alignment"],
            "tajweed": ["tajweed/tajweed"],
        }[stage]
        if stage not in self.stages or any(k not in self.timings for k in own):
            return None
        return self.stages[stage] - sum(self.timings[k] for k in own)

    def value(self, key: str) -> float | None:
        """`total`, `wall`, `stage:<name>`, `timing:<stage>/<name>`, `hop:<stage>`, `rules` (the
        verification, alignment and tajweed stages together) or `outside-model` (the total less
        the asr model's forward passes)."""
        if key == "total":
            return self.total_ms
        if key == "wall":
            return self.wall_ms
        kind, _, name = key.partition(":")
        if kind == "stage":
            return self.stages.get(name)
        if kind == "timing":
            return self.timings.get(name)
        if kind == "hop":
            return self.hop_ms(name)
        if key == "outside-model":
            model = self.timings.get("asr/model")
            return None if model is None else self.total_ms - model
        if key == "rules":
            parts = [self.stages.get(s) for s in ("verification", "alignment", "tajweed")]
            return None if any(p is None for p in parts) else sum(p for p in parts if p is not None)
        raise KeyError(key)


def assess_sample(assessment: gateway_pb2.Assessment, wall_ms: float) -> AssessSample:
    stages: dict[str, float] = {}
    timings: dict[str, float] = {}
    for report in assessment.stages:
        stages[report.stage] = report.duration_ms
        for timing in report.timings:
            timings[f"{report.stage}/{timing.stage}"] = timing.duration_ms
    return AssessSample(
        wall_ms=wall_ms,
        total_ms=assessment.total_ms,
        stages=stages,
        timings=timings,
        degraded=tuple(assessment.degraded),
        content_status=assessment.content.status,
        decode=assessment.decode.phonemes,
    )


async def assess(stub: gateway_pb2_grpc.GatewayServiceStub, request: gateway_pb2.AssessRequest) -> AssessSample:
    started = time.perf_counter()
    reply = await stub.Assess(request, timeout=CALL_TIMEOUT_S)
    return assess_sample(reply.assessment, (time.perf_counter() - started) * 1000)


@dataclass(frozen=True)
class TranscribeSample:
    wall_ms: float
    phonemes: str


async def transcribe(stub: asr_pb2_grpc.AsrServiceStub, request: asr_pb2.TranscribeRequest) -> TranscribeSample:
    started = time.perf_counter()
    reply = await stub.Transcribe(request, timeout=CALL_TIMEOUT_S)
    wall = (time.perf_counter() - started) * 1000
    transcription = reply.transcription
    return TranscribeSample(
        wall_ms=wall,
        phonemes=transcription.decode.phonemes,
    )
