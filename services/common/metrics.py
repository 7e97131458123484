"""Prometheus metrics every server exports, and the per-process /metrics endpoint.

Metric objects are module-level (one registry per process); the `service` label keeps
several servers apart when a test runs them in one process.
"""

from __future__ import annotations

import logging
import threading
from wsgiref.simple_server import WSGIServer

from prometheus_client import Counter, Gauge, Histogram, start_http_server

log = logging.getLogger(__name__)

# Buckets from 1 ms to 60 s: stage calls are milliseconds, an assessment on CPU seconds.
LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)

REQUESTS = Counter(
    "muaalem_grpc_requests_total",
    "gRPC calls handled, by method and final status code.",
    ["service", "method", "code"],
)
LATENCY = Histogram(
    "muaalem_grpc_request_duration_seconds",
    "Time from receiving a call to its final status.",
    ["service", "method"],
    buckets=LATENCY_BUCKETS,
)
IN_FLIGHT = Gauge(
    "muaalem_grpc_in_flight_requests",
    "Calls being handled now.",
    ["service", "method"],
)
READY = Gauge(
    "muaalem_service_ready",
    "1 when the service reports SERVING.",
    ["service"],
)


class MetricsEndpoint:
    """The /metrics HTTP server of one process (a daemon thread)."""

    def __init__(self, server: WSGIServer, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread

    @property
    def port(self) -> int:
        return int(self._server.server_port)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def start_endpoint(host: str, port: int) -> MetricsEndpoint | None:
    """Starts /metrics on host:port (0 picks a free port, negative disables it)."""
    if port < 0:
        return None
    server, thread = start_http_server(port, addr=host)
    endpoint = MetricsEndpoint(server, thread)
    log.info("metrics endpoint listening", extra={"metrics_port": endpoint.port})
    return endpoint
