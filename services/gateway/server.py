"""The gateway process: GatewayService over gRPC and the partner HTTP API, in one event loop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

import uvicorn

from services.common.pb import gateway_pb2_grpc
from services.common.server import MeshServer, ServiceBinding
from services.common.settings import ServerSettings
from services.gateway.app import GatewayApp
from services.gateway.config import GatewayConfig
from services.gateway.http import create_http_app
from services.gateway.servicer import GatewayServicer
from services.gateway.stages import Stages

log = logging.getLogger(__name__)
SERVICE_NAME = "muaalem.v1.GatewayService"


class HttpFrontEnd:
    """uvicorn run as a task of the gateway's loop (no second process, same handlers)."""

    def __init__(self, app: GatewayApp, host: str, port: int) -> None:
        config = uvicorn.Config(
            create_http_app(app), host=host, port=port, log_config=None, access_log=False, lifespan="off"
        )
        self.server = uvicorn.Server(config)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self.server.serve())
        while not self.server.started:
            if self._task.done():
                await self._task
                raise OSError("the HTTP server stopped during start-up")
            await asyncio.sleep(0.01)

    @property
    def port(self) -> int:
        sockets = [s for server in self.server.servers for s in server.sockets]
        return int(sockets[0].getsockname()[1]) if sockets else 0

    async def stop(self) -> None:
        self.server.should_exit = True
        if self._task is not None:
            await self._task


def build(
    environ: Mapping[str, str] | None = None, *, stages: Stages | None = None
) -> tuple[MeshServer, GatewayApp, HttpFrontEnd | None]:
    settings = ServerSettings.from_env("gateway", environ)
    config = GatewayConfig.from_env(environ)
    local = None
    if stages is None and config.mode == "local":
        # Imported here: the gateway image of the mesh carries no torch.
        from services.gateway.local import LocalMesh

        local = LocalMesh.build(environ)
        stages = local.stages
    app = GatewayApp.build(config, stages=stages, environ=environ, prosody=local.prosody if local else None)
    if app.live is not None:
        settings = app.live.connection_settings(settings)
    http = HttpFrontEnd(app, settings.host, config.http_port) if config.http_port >= 0 else None
    servicer = GatewayServicer(app)
    warming: list[asyncio.Task[None]] = []

    async def on_start() -> None:
        if local is not None:
            await local.start()
        await asyncio.to_thread(app.warm_up)
        locator = app.assessor.locator
        if locator is not None and locator.config.warm:
            # In the background: serving starts now, and the first locate target waits for it.
            warming.append(asyncio.create_task(locator.warm()))
        # The phoneme vocabularies must agree before the first Assess (asr may not be up yet in
        # a mesh: then the first transcription's model version triggers the check).
        app.assessor.versions.vocabulary.on_change = server.set_serving
        await app.assessor.versions.current()
        app.assessor.versions.vocabulary.require()
        if not app.guard.keys.enabled:
            log.warning("no API keys are configured: the gateway accepts unauthenticated calls")
        if http is not None:
            await http.start()
            log.info("http listening", extra={"service": "gateway", "http_port": http.port})

    async def on_stop() -> None:
        if http is not None:
            await http.stop()
        await app.close()
        if local is not None:
            await local.close()

    server = MeshServer(
        settings,
        [ServiceBinding(SERVICE_NAME, lambda s: gateway_pb2_grpc.add_GatewayServiceServicer_to_server(servicer, s))],
        on_start=on_start,
        on_stop=on_stop,
        on_drain=app.live.drain if app.live is not None else None,
    )
    return server, app, http
