"""The thin gRPC servicer of ProsodyService: protobuf in, the features or the comparison off the
event loop, protobuf out."""

from __future__ import annotations

import asyncio
import time

import grpc

from services.common.audio import decode_message
from services.common.errors import InvalidArgument
from services.common.pb import common_pb2, prosody_pb2, prosody_pb2_grpc
from services.prosody import metrics
from services.prosody.compare import compare
from services.prosody.config import ProsodyConfig
from services.prosody.convert import comparison_to_proto, features_to_proto, recitation_from_proto
from services.prosody.features import analyze
from services.prosody.pitch import PitchTracker

SERVICE_NAME = prosody_pb2.DESCRIPTOR.services_by_name["ProsodyService"].full_name


class ProsodyServicer(prosody_pb2_grpc.ProsodyServiceServicer):
    def __init__(self, config: ProsodyConfig, tracker: PitchTracker | None = None) -> None:
        self.config = config
        self.tracker = tracker or PitchTracker(threads=config.threads)

    def _analyze(self, request: prosody_pb2.AnalyzeRequest) -> prosody_pb2.AnalyzeResponse:
        started = time.perf_counter()
        if not request.HasField("audio"):
            raise InvalidArgument("audio is missing")
        audio = decode_message(
            request.audio, max_duration_s=self.config.max_audio_s, min_duration_s=self.config.min_audio_s
        )
        features = analyze(audio.samples, audio.sample_rate, self.tracker)
        response = prosody_pb2.AnalyzeResponse(features=features_to_proto(features))
        for name, ms in features.timings_ms.items():
            response.timings.append(common_pb2.StageTiming(stage=f"prosody.{name}", duration_ms=ms))
            metrics.observe_feature(name, ms)
        response.timings.append(
            common_pb2.StageTiming(stage="prosody", duration_ms=(time.perf_counter() - started) * 1000)
        )
        return response

    def _compare(self, request: prosody_pb2.CompareRequest) -> prosody_pb2.CompareResponse:
        started = time.perf_counter()
        if not request.HasField("learner") or not request.HasField("reference"):
            raise InvalidArgument("both learner and reference recitations are required")
        learner = recitation_from_proto(request.learner, name="learner")
        reference = recitation_from_proto(request.reference, name="reference")
        result = compare(learner, reference)
        elapsed = (time.perf_counter() - started) * 1000
        metrics.observe_feature("compare", elapsed)
        metrics.SIMILARITY.observe(result.similarity)
        return prosody_pb2.CompareResponse(
            comparison=comparison_to_proto(result, request.reciter),
            timings=[common_pb2.StageTiming(stage="prosody.compare", duration_ms=elapsed)],
        )

    async def Analyze(
        self, request: prosody_pb2.AnalyzeRequest, context: grpc.aio.ServicerContext | None = None
    ) -> prosody_pb2.AnalyzeResponse:
        return await asyncio.to_thread(self._analyze, request)

    async def Compare(
        self, request: prosody_pb2.CompareRequest, context: grpc.aio.ServicerContext | None = None
    ) -> prosody_pb2.CompareResponse:
        return await asyncio.to_thread(self._compare, request)
