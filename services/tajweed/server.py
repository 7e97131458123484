"""Builds the tajweed server: config, validator, servicer, and a warm-up before SERVING."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping

import grpc

from services.common.pb import tajweed_pb2_grpc
from services.common.server import MeshServer, ServiceBinding
from services.common.settings import ServerSettings
from services.tajweed.config import TajweedConfig
from services.tajweed.core import TajweedValidator
from services.tajweed.servicer import SERVICE_NAME, TajweedServicer
from services.tajweed.warmup import warm_up

log = logging.getLogger(__name__)


def build_server(environ: Mapping[str, str] | None = None) -> MeshServer:
    """The server for `environ` (the process environment when None); bad settings fail here."""
    validator = TajweedValidator(TajweedConfig.from_env(environ))
    servicer = TajweedServicer(validator)

    def register(server: grpc.aio.Server) -> None:
        tajweed_pb2_grpc.add_TajweedServiceServicer_to_server(servicer, server)

    async def on_start() -> None:
        started = time.perf_counter()
        await asyncio.to_thread(warm_up)
        log.info("tajweed ready", extra={"duration_ms": round((time.perf_counter() - started) * 1000, 1)})

    return MeshServer(
        ServerSettings.from_env("tajweed", environ),
        [ServiceBinding(SERVICE_NAME, register)],
        on_start=on_start,
    )
