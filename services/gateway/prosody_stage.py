"""How the gateway reaches the prosody stage: over gRPC (the mesh) or in-process (local mode).

Kept beside `stages.Stages` rather than in it: the prosody stage is optional (no target: no
comparison), and a failure of it never fails an assessment, only drops the comparison. Both are
listed together in the stage registry (registry.py)."""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

import grpc

from services.common.channels import create_channel
from services.common.errors import DeadlineExceeded
from services.common.pb import prosody_pb2, prosody_pb2_grpc
from services.common.settings import TlsFiles
from services.gateway.stages import stage_error

PROSODY_SERVICE = "muaalem.v1.ProsodyService"


class ProsodyStage(Protocol):
    async def analyze(
        self, request: prosody_pb2.AnalyzeRequest, timeout: float | None
    ) -> prosody_pb2.AnalyzeResponse: ...

    async def compare(
        self, request: prosody_pb2.CompareRequest, timeout: float | None
    ) -> prosody_pb2.CompareResponse: ...

    async def health(self, timeout: float | None) -> str: ...

    @property
    def address(self) -> str: ...

    async def close(self) -> None: ...


class GrpcProsody:
    def __init__(self, target: str, tls: TlsFiles | None = None, max_message_bytes: int = 10 * 1024 * 1024) -> None:
        self.target = target
        self._channel = create_channel(target, [PROSODY_SERVICE], tls=tls, max_message_bytes=max_message_bytes)
        self._stub = prosody_pb2_grpc.ProsodyServiceStub(self._channel)

    async def analyze(self, request: prosody_pb2.AnalyzeRequest, timeout: float | None) -> prosody_pb2.AnalyzeResponse:
        try:
            return await self._stub.Analyze(request, timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            raise stage_error("prosody", exc) from exc

    async def compare(self, request: prosody_pb2.CompareRequest, timeout: float | None) -> prosody_pb2.CompareResponse:
        try:
            return await self._stub.Compare(request, timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            raise stage_error("prosody", exc) from exc

    async def health(self, timeout: float | None) -> str:
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        try:
            reply = await health_pb2_grpc.HealthStub(self._channel).Check(
                health_pb2.HealthCheckRequest(), timeout=timeout
            )
        except grpc.aio.AioRpcError as exc:
            return str(exc.code().name)
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))

    @property
    def address(self) -> str:
        return self.target

    async def close(self) -> None:
        await self._channel.close(None)


class LocalProsody:
    """The prosody servicer in this process."""

    def __init__(self, servicer: Any) -> None:
        self._servicer = servicer

    @staticmethod
    async def _bounded(awaitable: Any, timeout: float | None) -> Any:
        try:
            return await asyncio.wait_for(awaitable, timeout)
        except TimeoutError as exc:
            raise DeadlineExceeded(f"prosody: no answer within {timeout:.3f} s") from exc

    async def analyze(self, request: prosody_pb2.AnalyzeRequest, timeout: float | None) -> prosody_pb2.AnalyzeResponse:
        return await self._bounded(self._servicer.Analyze(request, None), timeout)

    async def compare(self, request: prosody_pb2.CompareRequest, timeout: float | None) -> prosody_pb2.CompareResponse:
        return await self._bounded(self._servicer.Compare(request, None), timeout)

    async def health(self, timeout: float | None) -> str:
        return "SERVING"

    @property
    def address(self) -> str:
        return "in-process"

    async def close(self) -> None:
        return None
