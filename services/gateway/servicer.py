"""GatewayService over gRPC: the caller's metadata in, the shared handlers of GatewayApp out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc

from services.common.errors import MeshError
from services.common.pb import gateway_pb2, gateway_pb2_grpc
from services.gateway.app import GatewayApp
from services.gateway.live.admission import retry_trailer


def _authorization(context: Any) -> str | None:
    if context is None:
        return None
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":
            return value.decode() if isinstance(value, bytes) else str(value)
    return None


class GatewayServicer(gateway_pb2_grpc.GatewayServiceServicer):
    def __init__(self, app: GatewayApp) -> None:
        self.app = app

    async def Assess(self, request: gateway_pb2.AssessRequest, context: Any) -> gateway_pb2.AssessResponse:
        return await self.app.assess(request, _authorization(context))

    async def AssessStream(
        self, request_iterator: AsyncIterator[gateway_pb2.AssessStreamRequest], context: Any
    ) -> gateway_pb2.AssessStreamResponse:
        return await self.app.assess_stream(request_iterator, _authorization(context))

    async def GetReference(
        self, request: gateway_pb2.GetReferenceRequest, context: Any
    ) -> gateway_pb2.GetReferenceResponse:
        return await self.app.get_reference(request, _authorization(context))

    async def GetServerInfo(
        self, request: gateway_pb2.GetServerInfoRequest, context: Any
    ) -> gateway_pb2.GetServerInfoResponse:
        return await self.app.get_server_info(_authorization(context))

    async def AddReferenceRecitation(
        self, request: gateway_pb2.AddReferenceRecitationRequest, context: Any
    ) -> gateway_pb2.AddReferenceRecitationResponse:
        return await self.app.recitation_api().add(request, _authorization(context))

    async def ListReferenceRecitations(
        self, request: gateway_pb2.ListReferenceRecitationsRequest, context: Any
    ) -> gateway_pb2.ListReferenceRecitationsResponse:
        return await self.app.recitation_api().list(request, _authorization(context))

    async def RemoveReferenceRecitation(
        self, request: gateway_pb2.RemoveReferenceRecitationRequest, context: Any
    ) -> gateway_pb2.RemoveReferenceRecitationResponse:
        return await self.app.recitation_api().remove(request, _authorization(context))
    async def AssessLive(
        self, request_iterator: AsyncIterator[gateway_pb2.AssessLiveRequest], context: Any
    ) -> AsyncIterator[gateway_pb2.AssessLiveResponse]:
        # Server-streaming calls pass the mesh interceptor untouched: errors get their status here.
        assert self.app.live is not None
        try:
            async for event in self.app.live.run(request_iterator, _authorization(context)):
                yield event
        except MeshError as exc:
            await context.abort(grpc.StatusCode[exc.code], exc.message, retry_trailer(exc))
