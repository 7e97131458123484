"""The grpc.aio server bootstrap shared by the four services.

What every server gets, in one place: message limits, keepalive and max connection age,
a concurrency cap, the interceptor (request id, deadline, metrics, access log, error
mapping), grpc.health.v1 for the whole server and per service (NOT_SERVING until the
service's start-up hook, e.g. model loading, has finished), server reflection, a
Prometheus endpoint, optional TLS/mTLS, and a SIGTERM path that reports NOT_SERVING
first and then lets in-flight calls finish within the grace period.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from services.common import logs, metrics, tracing
from services.common.interceptors import MeshServerInterceptor
from services.common.settings import LOG_FORMAT, LOG_LEVEL, ServerSettings
from services.common.tls import server_credentials

log = logging.getLogger(__name__)

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@dataclass(frozen=True)
class ServiceBinding:
    """A gRPC service to serve: its full name (for health and reflection) and how to add it."""

    name: str
    register: Callable[[grpc.aio.Server], None]


def server_options(settings: ServerSettings) -> list[tuple[str, int]]:
    ms = 1000
    return [
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.max_message_bytes),
        ("grpc.keepalive_time_ms", int(settings.keepalive_time_s * ms)),
        ("grpc.keepalive_timeout_ms", int(settings.keepalive_timeout_s * ms)),
        ("grpc.keepalive_permit_without_calls", 1),
        # Clients may ping every 10 s without being told off (GOAWAY too_many_pings).
        ("grpc.http2.min_ping_interval_without_data_ms", 10 * ms),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.max_connection_age_ms", int(settings.max_connection_age_s * ms)),
        ("grpc.max_connection_age_grace_ms", int(settings.max_connection_age_grace_s * ms)),
        # Without this a second server on a taken port binds silently and never gets a call.
        ("grpc.so_reuseport", 0),
    ]


class MeshServer:
    """One service process's gRPC server."""

    def __init__(
        self,
        settings: ServerSettings,
        bindings: Sequence[ServiceBinding],
        *,
        on_start: Callable[[], Awaitable[None]] | None = None,
        on_stop: Callable[[], Awaitable[None]] | None = None,
        on_drain: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.settings = settings
        self.bindings = list(bindings)
        self._on_start = on_start
        self._on_stop = on_stop
        # Called when the server stops taking calls, before the grace period: long-lived
        # streams (live sessions) wind down within it instead of being cut at its end.
        self._on_drain = on_drain
        self.health = health.aio.HealthServicer()  # type: ignore[attr-defined]
        self._server: grpc.aio.Server | None = None
        self._health_server: grpc.aio.Server | None = None
        self._metrics: metrics.MetricsEndpoint | None = None
        self._ready = asyncio.Event()
        self._stopped = asyncio.Event()
        self._startup_error: BaseException | None = None
        self._startup_task: asyncio.Task[None] | None = None
        self._stopping = False
        self.port = 0
        self.health_port = 0

    @property
    def service(self) -> str:
        return self.settings.service

    @property
    def metrics_port(self) -> int | None:
        return self._metrics.port if self._metrics else None

    @property
    def address(self) -> str:
        return f"{self.settings.host}:{self.port}"

    async def start(self) -> None:
        """Binds and starts serving health at once; the start-up hook runs in the background."""
        server = grpc.aio.server(
            interceptors=[MeshServerInterceptor(self.service)],
            options=server_options(self.settings),
            maximum_concurrent_rpcs=self.settings.max_concurrent_rpcs,
        )
        for binding in self.bindings:
            binding.register(server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        names = [b.name for b in self.bindings]
        reflection.enable_server_reflection(
            [*names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME],
            server,
        )
        for name in ["", *names]:
            await self.health.set(name, NOT_SERVING)

        target = f"{self.settings.host}:{self.settings.port}"
        credentials = server_credentials(self.settings.tls)
        if credentials is None:
            self.port = server.add_insecure_port(target)
        else:
            self.port = server.add_secure_port(target, credentials)
        if self.port == 0:
            raise OSError(f"{self.service}: cannot bind {target} (in use?)")
        await server.start()
        self._server = server
        if self.settings.health_port >= 0:
            await self._start_health_listener()
        self._metrics = metrics.start_endpoint(self.settings.host, self.settings.metrics_port)
        log.info(
            "listening",
            extra={
                "service": self.service,
                "address": self.address,
                "tls": credentials is not None,
                "mtls": bool(self.settings.tls.ca),
            },
        )
        self._startup_task = asyncio.create_task(self._run_startup())

    async def _start_health_listener(self) -> None:
        """grpc.health.v1 alone, in plaintext: the kubelet's gRPC probes have no client certificate
        to offer a port that requires mTLS. It shares the health servicer, so it says what the
        main port says."""
        probe = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        health_pb2_grpc.add_HealthServicer_to_server(self.health, probe)
        target = f"{self.settings.host}:{self.settings.health_port}"
        self.health_port = probe.add_insecure_port(target)
        if self.health_port == 0:
            raise OSError(f"{self.service}: cannot bind the health port {target} (in use?)")
        await probe.start()
        self._health_server = probe

    async def _run_startup(self) -> None:
        try:
            if self._on_start is not None:
                await self._on_start()
        except Exception as exc:
            self._startup_error = exc
            log.critical("start-up failed: %s", exc, extra={"service": self.service})
            self._ready.set()
            return
        if not self._stopping:
            await self.set_serving(True)
        self._ready.set()

    async def wait_ready(self, timeout: float | None = None) -> None:
        """Returns once SERVING; raises the start-up hook's error if it failed."""
        await asyncio.wait_for(self._ready.wait(), timeout)
        if self._startup_error is not None:
            raise self._startup_error

    async def set_serving(self, serving: bool) -> None:
        status = SERVING if serving else NOT_SERVING
        for name in ["", *[b.name for b in self.bindings]]:
            await self.health.set(name, status)
        metrics.READY.labels(self.service).set(1 if serving else 0)

    async def stop(self, grace: float | None = None) -> None:
        """NOT_SERVING first (load balancers stop sending), then drain in-flight calls."""
        if self._stopping:
            await self._stopped.wait()
            return
        self._stopping = True
        grace = self.settings.shutdown_grace_s if grace is None else grace
        log.info("shutting down", extra={"service": self.service, "grace_s": grace})
        await self.health.enter_graceful_shutdown()
        metrics.READY.labels(self.service).set(0)
        if self.settings.shutdown_delay_s > 0:
            await asyncio.sleep(self.settings.shutdown_delay_s)
        if self._on_drain is not None:
            await self._on_drain()
        if self._server is not None:
            await self._server.stop(grace)
        if self._health_server is not None:
            await self._health_server.stop(None)
        if self._startup_task is not None and not self._startup_task.done():
            self._startup_task.cancel()
        if self._on_stop is not None:
            await self._on_stop()
        if self._metrics is not None:
            self._metrics.close()
        self._stopped.set()
        log.info("stopped", extra={"service": self.service})

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda: asyncio.ensure_future(self.stop()))

    async def wait_for_termination(self) -> None:
        await self._stopped.wait()


async def serve_forever(server: MeshServer) -> int:
    """Runs a server until SIGTERM/SIGINT; exit status 1 when start-up failed."""
    await server.start()
    server.install_signal_handlers()
    ready = asyncio.create_task(server.wait_ready())
    stopped = asyncio.create_task(server.wait_for_termination())
    done, _ = await asyncio.wait({ready, stopped}, return_when=asyncio.FIRST_COMPLETED)
    if ready in done and ready.exception() is not None:
        await server.stop(grace=0)
        return 1
    await stopped
    return 0


def configure_logging(service: str) -> None:
    logs.configure(service, LOG_LEVEL.get(), LOG_FORMAT.get())


def run(service: str, build: Callable[[], MeshServer]) -> None:
    """Entry point of `python -m services.<name>`: logs, server, signals, exit status."""
    configure_logging(service)
    tracing.configure(service)
    try:
        status = asyncio.run(_main(build))
    finally:
        # Spans still batched in memory are sent before the process ends.
        tracing.shutdown()
    raise SystemExit(status)


async def _main(build: Callable[[], MeshServer]) -> int:
    return await serve_forever(build())
