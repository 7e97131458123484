"""The thin gRPC servicer of TajweedService: protobuf in, the core off the event loop, protobuf out."""

from __future__ import annotations

import asyncio
import time

import grpc

from services.common import tracing
from services.common.pb import common_pb2, tajweed_pb2, tajweed_pb2_grpc
from services.tajweed.convert import request_from_proto, response_to_proto
from services.tajweed.core import TajweedValidator

SERVICE_NAME = tajweed_pb2.DESCRIPTOR.services_by_name["TajweedService"].full_name


class TajweedServicer(tajweed_pb2_grpc.TajweedServiceServicer):
    def __init__(self, validator: TajweedValidator) -> None:
        self.validator = validator

    def _validate(self, request: tajweed_pb2.ValidateRequest) -> tajweed_pb2.ValidateResponse:
        started = time.perf_counter()
        validator = self.validator.for_calibration(request.calibration_json)
        parsed = request_from_proto(request, validator.config)
        response = response_to_proto(validator.validate(parsed))
        response.timings.append(
            common_pb2.StageTiming(stage="tajweed", duration_ms=(time.perf_counter() - started) * 1000)
        )
        return response

    async def Validate(
        self,
        request: tajweed_pb2.ValidateRequest,
        context: grpc.aio.ServicerContext | None = None,
    ) -> tajweed_pb2.ValidateResponse:
        # Conversion (the energy tensor, the checks) and validation are CPU work: off the loop.
        response = await asyncio.to_thread(self._validate, request)
        tracing.set_attributes(
            audio_seconds=round(request.audio_duration_s, 3),
            **{
                "muaalem.tajweed.validators": list(request.options.validators) or ["all"],
                "muaalem.tajweed.findings": len(response.findings),
            },
        )
        return response
