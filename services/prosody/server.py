"""Builds the prosody server: config, servicer, and the pitch model's warm-up before SERVING."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping

import grpc
import numpy as np

from services.common.pb import prosody_pb2_grpc
from services.common.server import MeshServer, ServiceBinding
from services.common.settings import ServerSettings
from services.prosody.config import ProsodyConfig
from services.prosody.features import analyze
from services.prosody.servicer import SERVICE_NAME, ProsodyServicer

log = logging.getLogger(__name__)


def build_server(environ: Mapping[str, str] | None = None) -> MeshServer:
    """The server for `environ` (the process environment when None); bad settings fail here."""
    servicer = ProsodyServicer(ProsodyConfig.from_env(environ))

    def register(server: grpc.aio.Server) -> None:
        prosody_pb2_grpc.add_ProsodyServiceServicer_to_server(servicer, server)

    async def on_start() -> None:
        # The first call builds the onnxruntime session: pay it before the first learner does.
        started = time.perf_counter()
        tone = (0.3 * np.sin(2 * np.pi * 150 * np.arange(16000) / 16000)).astype(np.float32)
        await asyncio.to_thread(analyze, tone, 16000, servicer.tracker)
        log.info("prosody ready", extra={"duration_ms": round((time.perf_counter() - started) * 1000, 1)})

    return MeshServer(
        ServerSettings.from_env("prosody", environ),
        [ServiceBinding(SERVICE_NAME, register)],
        on_start=on_start,
    )
