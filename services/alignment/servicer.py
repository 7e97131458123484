"""The thin gRPC servicer of AlignmentService: protobuf in, core call off the loop, protobuf out."""

from __future__ import annotations

import asyncio
import logging
import time

import grpc

from services.alignment.convert import alignment_to_proto, options_from_proto, reference_from_proto
from services.alignment.core import Aligner
from services.common import tensors, tracing
from services.common.pb import alignment_pb2, alignment_pb2_grpc, common_pb2

log = logging.getLogger(__name__)

SERVICE_NAME = alignment_pb2.DESCRIPTOR.services_by_name["AlignmentService"].full_name


class AlignmentServicer(alignment_pb2_grpc.AlignmentServiceServicer):
    def __init__(self, aligner: Aligner) -> None:
        self.aligner = aligner

    async def Align(
        self,
        request: alignment_pb2.AlignRequest,
        context: grpc.aio.ServicerContext | None = None,
    ) -> alignment_pb2.AlignResponse:
        started = time.perf_counter()
        log_probs = tensors.from_proto(request.phoneme_log_probs, name="phoneme_log_probs", ndim=2)
        reference = reference_from_proto(request.reference)
        options = options_from_proto(request)
        result = await asyncio.to_thread(
            self.aligner.align, log_probs, request.frame_duration_s, reference, options
        )
        if result.touched_band_edge:
            log.warning(
                "alignment path ran along the edge of its band",
                extra={"band_frames": result.band_frames, "frames": result.num_frames},
            )
        tracing.set_attributes(
            **{
                "muaalem.alignment.frames": result.num_frames,
                "muaalem.alignment.band_frames": result.band_frames,
                "muaalem.alignment.band_edge": result.touched_band_edge,
            }
        )
        alignment = alignment_to_proto(result)
        timings = [
            common_pb2.StageTiming(stage=stage, duration_ms=ms) for stage, ms in result.timings_ms.items()
        ]
        timings.append(
            common_pb2.StageTiming(stage="alignment", duration_ms=(time.perf_counter() - started) * 1000)
        )
        return alignment_pb2.AlignResponse(alignment=alignment, timings=timings)
