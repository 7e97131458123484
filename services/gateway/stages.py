"""How the gateway reaches the stages: over gRPC (the mesh) or in-process (one box, and the
benchmark's baseline). Both take and return the same protobuf messages, so the assessment
logic does not know which it is talking to, and the difference between the two is exactly
the mesh's overhead (serialisation, HTTP/2, loopback)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import grpc

from services.common import context
from services.common.channels import create_channel
from services.common.errors import (
    Cancelled,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    MeshError,
    ResourceExhausted,
    Unavailable,
)
from services.common.pb import (
    alignment_pb2,
    alignment_pb2_grpc,
    asr_pb2,
    asr_pb2_grpc,
    tajweed_pb2,
    tajweed_pb2_grpc,
)
from services.common.settings import TlsFiles

ASR_SERVICE = "muaalem.v1.AsrService"
ALIGNMENT_SERVICE = "muaalem.v1.AlignmentService"
TAJWEED_SERVICE = "muaalem.v1.TajweedService"

_STATUS_TO_ERROR: dict[grpc.StatusCode, type[MeshError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.CANCELLED: Cancelled,
}


def stage_error(stage: str, exc: grpc.aio.AioRpcError) -> MeshError:
    """A stage's gRPC failure as the core error type, keeping its message."""
    error_type = _STATUS_TO_ERROR.get(exc.code(), Unavailable)
    return error_type(f"{stage}: {exc.details() or exc.code().name}")


class Stages(Protocol):
    """What the assessment needs from the other services."""

    async def transcribe(self, request: asr_pb2.TranscribeRequest, timeout: float | None) -> asr_pb2.Transcription: ...

    async def transcribe_stream(
        self, chunks: AsyncIterator[asr_pb2.TranscribeStreamRequest], timeout: float | None
    ) -> asr_pb2.Transcription: ...

    def transcribe_live(
        self, requests: AsyncIterator[asr_pb2.TranscribeLiveRequest], timeout: float | None
    ) -> AsyncIterator[asr_pb2.TranscribeLiveResponse]: ...

    async def model_info(self, timeout: float | None) -> asr_pb2.GetModelInfoResponse: ...

    async def align(
        self, request: alignment_pb2.AlignRequest, timeout: float | None
    ) -> alignment_pb2.AlignResponse: ...

    async def validate(
        self, request: tajweed_pb2.ValidateRequest, timeout: float | None
    ) -> tajweed_pb2.ValidateResponse: ...

    async def health(self, timeout: float | None) -> dict[str, str]: ...

    @property
    def addresses(self) -> dict[str, str]: ...

    async def close(self) -> None: ...


@dataclass
class GrpcStages:
    """The mesh: one channel per stage, round-robin over every address a name resolves to."""

    asr_target: str
    alignment_target: str
    tajweed_target: str
    tls: TlsFiles | None = None
    max_message_bytes: int = 10 * 1024 * 1024

    def __post_init__(self) -> None:
        def channel(target: str, service: str) -> grpc.aio.Channel:
            return create_channel(target, [service], tls=self.tls, max_message_bytes=self.max_message_bytes)

        self._channels = {
            "asr": channel(self.asr_target, ASR_SERVICE),
            "alignment": channel(self.alignment_target, ALIGNMENT_SERVICE),
            "tajweed": channel(self.tajweed_target, TAJWEED_SERVICE),
        }
        self._asr = asr_pb2_grpc.AsrServiceStub(self._channels["asr"])
        self._alignment = alignment_pb2_grpc.AlignmentServiceStub(self._channels["alignment"])
        self._tajweed = tajweed_pb2_grpc.TajweedServiceStub(self._channels["tajweed"])

    @staticmethod
    async def _call(stage: str, call: Callable[[], Awaitable[Any]]) -> Any:
        try:
            return await call()
        except grpc.aio.AioRpcError as exc:
            raise stage_error(stage, exc) from exc

    async def transcribe(self, request: asr_pb2.TranscribeRequest, timeout: float | None) -> asr_pb2.Transcription:
        reply = await self._call("asr", lambda: self._asr.Transcribe(request, timeout=timeout))
        return reply.transcription

    async def transcribe_stream(
        self, chunks: AsyncIterator[asr_pb2.TranscribeStreamRequest], timeout: float | None
    ) -> asr_pb2.Transcription:
        reply = await self._call("asr", lambda: self._asr.TranscribeStream(chunks, timeout=timeout))
        return reply.transcription

    async def transcribe_live(
        self, requests: AsyncIterator[asr_pb2.TranscribeLiveRequest], timeout: float | None
    ) -> AsyncIterator[asr_pb2.TranscribeLiveResponse]:
        call = self._asr.TranscribeLive(requests, timeout=timeout)
        try:
            async for response in call:
                yield response
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                raise NotImplementedError(f"asr: {exc.details()}") from exc
            raise stage_error("asr", exc) from exc
        finally:
            # Only a call still running (the caller stopped reading early) is cancelled.
            if not call.done():
                call.cancel()

    async def model_info(self, timeout: float | None) -> asr_pb2.GetModelInfoResponse:
        request = asr_pb2.GetModelInfoRequest()
        return await self._call("asr", lambda: self._asr.GetModelInfo(request, timeout=timeout))

    async def align(self, request: alignment_pb2.AlignRequest, timeout: float | None) -> alignment_pb2.AlignResponse:
        return await self._call("alignment", lambda: self._alignment.Align(request, timeout=timeout))

    async def validate(
        self, request: tajweed_pb2.ValidateRequest, timeout: float | None
    ) -> tajweed_pb2.ValidateResponse:
        return await self._call("tajweed", lambda: self._tajweed.Validate(request, timeout=timeout))

    async def health(self, timeout: float | None) -> dict[str, str]:
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        async def one(name: str, channel: grpc.aio.Channel) -> tuple[str, str]:
            try:
                reply = await health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=timeout
                )
            except grpc.aio.AioRpcError as exc:
                return name, exc.code().name
            return name, health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)

        results = await asyncio.gather(*(one(n, c) for n, c in self._channels.items()))
        return dict(results)

    @property
    def addresses(self) -> dict[str, str]:
        return {"asr": self.asr_target, "alignment": self.alignment_target, "tajweed": self.tajweed_target}

    async def close(self) -> None:
        await asyncio.gather(*(c.close(None) for c in self._channels.values()))


class LocalStages:
    """Every stage in this process: the servicers called directly, no serialisation, no network.
    Deadlines are enforced with asyncio timeouts instead of gRPC's."""

    def __init__(self, asr: Any, alignment: Any, tajweed: Any) -> None:
        self._asr = asr
        self._alignment = alignment
        self._tajweed = tajweed

    @staticmethod
    async def _bounded(awaitable: Awaitable[Any], timeout: float | None, stage: str) -> Any:
        try:
            return await asyncio.wait_for(awaitable, timeout)
        except TimeoutError as exc:
            raise DeadlineExceeded(f"{stage}: no answer within {timeout:.3f} s") from exc

    async def transcribe(self, request: asr_pb2.TranscribeRequest, timeout: float | None) -> asr_pb2.Transcription:
        reply = await self._bounded(self._asr.Transcribe(request, None), timeout, "asr")
        return reply.transcription

    async def transcribe_stream(
        self, chunks: AsyncIterator[asr_pb2.TranscribeStreamRequest], timeout: float | None
    ) -> asr_pb2.Transcription:
        reply = await self._bounded(self._asr.TranscribeStream(chunks, None), timeout, "asr")
        return reply.transcription

    async def transcribe_live(
        self, requests: AsyncIterator[asr_pb2.TranscribeLiveRequest], timeout: float | None
    ) -> AsyncIterator[asr_pb2.TranscribeLiveResponse]:
        # In process the call's own limits (idle, ahead) bound it; the caller bounds the wait
        # for its last answer.
        async for response in self._asr.TranscribeLive(requests, None):
            yield response

    async def model_info(self, timeout: float | None) -> asr_pb2.GetModelInfoResponse:
        return await self._bounded(self._asr.GetModelInfo(asr_pb2.GetModelInfoRequest(), None), timeout, "asr")

    async def align(self, request: alignment_pb2.AlignRequest, timeout: float | None) -> alignment_pb2.AlignResponse:
        return await self._bounded(self._alignment.Align(request, None), timeout, "alignment")

    async def validate(
        self, request: tajweed_pb2.ValidateRequest, timeout: float | None
    ) -> tajweed_pb2.ValidateResponse:
        return await self._bounded(self._tajweed.Validate(request, None), timeout, "tajweed")

    async def health(self, timeout: float | None) -> dict[str, str]:
        return {"asr": "SERVING", "alignment": "SERVING", "tajweed": "SERVING"}

    @property
    def addresses(self) -> dict[str, str]:
        return {"asr": "in-process", "alignment": "in-process", "tajweed": "in-process"}

    async def close(self) -> None:
        return None


def stage_timeout(reserve_s: float) -> float | None:
    """The time a stage call may take: what the caller has left, minus the fusion reserve."""
    left = context.remaining(reserve_s)
    return None if left is None else max(left, 0.001)
