"""A real MeshServer process whose one RPC sleeps for as long as asked: the bootstrap's SIGTERM,
health and message-limit behaviour are tested through it, independent of any model."""

from __future__ import annotations

import asyncio
from typing import Any

from services.common.pb import tajweed_pb2, tajweed_pb2_grpc
from services.common.server import MeshServer, ServiceBinding, run
from services.common.settings import ServerSettings


class SleepyTajweed(tajweed_pb2_grpc.TajweedServiceServicer):
    """Validate sleeps audio_duration_s seconds, then answers with an empty response."""

    async def Validate(self, request: tajweed_pb2.ValidateRequest, context: Any) -> tajweed_pb2.ValidateResponse:
        await asyncio.sleep(request.audio_duration_s)
        return tajweed_pb2.ValidateResponse()


def build() -> MeshServer:
    servicer = SleepyTajweed()
    return MeshServer(
        ServerSettings.from_env("tajweed"),
        [
            ServiceBinding(
                "muaalem.v1.TajweedService",
                lambda s: tajweed_pb2_grpc.add_TajweedServiceServicer_to_server(servicer, s),
            )
        ],
    )


if __name__ == "__main__":
    run("tajweed", build)
