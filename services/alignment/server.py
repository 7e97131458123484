"""Builds the alignment server: config, aligner, servicer, and the JIT warm-up before SERVING."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping

import grpc

from services.alignment.config import AlignmentConfig
from services.alignment.core import Aligner
from services.alignment.servicer import SERVICE_NAME, AlignmentServicer
from services.common.pb import alignment_pb2_grpc
from services.common.server import MeshServer, ServiceBinding
from services.common.settings import ServerSettings

log = logging.getLogger(__name__)


def build_server(environ: Mapping[str, str] | None = None) -> MeshServer:
    """The server for `environ` (the process environment when None). A bad threshold file
    fails here, before anything listens."""
    aligner = Aligner.from_config(AlignmentConfig.from_env(environ))
    servicer = AlignmentServicer(aligner)

    def register(server: grpc.aio.Server) -> None:
        alignment_pb2_grpc.add_AlignmentServiceServicer_to_server(servicer, server)

    async def warm_up() -> None:
        started = time.perf_counter()
        await asyncio.to_thread(aligner.warm_up)
        log.info("viterbi kernel ready", extra={"duration_ms": round((time.perf_counter() - started) * 1000, 1)})

    return MeshServer(
        ServerSettings.from_env("alignment", environ),
        [ServiceBinding(SERVICE_NAME, register)],
        on_start=warm_up,
    )
