"""Client channels to the stages: round-robin over every resolved address, TLS when
configured, and an interceptor that forwards the request id, the trace context (W3C traceparent)
and the caller's deadline."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import grpc

from services.common import context, tracing
from services.common.settings import TlsFiles
from services.common.tls import channel_credentials


def service_config(service_names: Sequence[str]) -> str:
    """round_robin spreads calls over all addresses a headless Service resolves to (a plain
    ClusterIP Service would pin one HTTP/2 connection to one pod). UNAVAILABLE is retried on
    another address: the calls are pure functions of their input, so retrying is safe."""
    return json.dumps(
        {
            "loadBalancingConfig": [{"round_robin": {}}],
            "methodConfig": [
                {
                    "name": [{"service": name} for name in service_names],
                    "retryPolicy": {
                        "maxAttempts": 3,
                        "initialBackoff": "0.05s",
                        "maxBackoff": "0.5s",
                        "backoffMultiplier": 2,
                        "retryableStatusCodes": ["UNAVAILABLE"],
                    },
                }
            ],
        }
    )


def _with_context(details: Any) -> Any:
    metadata = list(details.metadata or ())
    rid = context.request_id()
    if rid and not any(key == context.REQUEST_ID_HEADER for key, _ in metadata):
        metadata.append((context.REQUEST_ID_HEADER, rid))
    tracing.inject(metadata)
    return details._replace(
        metadata=grpc.aio.Metadata(*metadata),
        timeout=context.bound_timeout(details.timeout),
    )


class _UnaryUnary(grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return await continuation(_with_context(client_call_details), request)


class _StreamUnary(grpc.aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(self, continuation: Any, client_call_details: Any, request_iterator: Any) -> Any:
        return await continuation(_with_context(client_call_details), request_iterator)


class _UnaryStream(grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return await continuation(_with_context(client_call_details), request)


class _StreamStream(grpc.aio.StreamStreamClientInterceptor):
    async def intercept_stream_stream(self, continuation: Any, client_call_details: Any, request_iterator: Any) -> Any:
        return await continuation(_with_context(client_call_details), request_iterator)


def normalise_target(address: str) -> str:
    """`host:port` becomes `dns:///host:port` so every A record is a round-robin backend."""
    if "://" in address or address.startswith(("unix:", "dns:", "ipv4:", "ipv6:")):
        return address
    return f"dns:///{address}"


def create_channel(
    address: str,
    service_names: Sequence[str],
    *,
    tls: TlsFiles | None = None,
    max_message_bytes: int = 10 * 1024 * 1024,
) -> grpc.aio.Channel:
    options: list[tuple[str, Any]] = [
        ("grpc.service_config", service_config(service_names)),
        ("grpc.enable_retries", 1),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
        # Reconnect fast when a stage restarts (the default backoff grows to 120 s).
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", 1_000),
    ]
    credentials = channel_credentials(tls) if tls is not None else None
    if credentials is not None and tls is not None and tls.server_name:
        options.append(("grpc.ssl_target_name_override", tls.server_name))
    interceptors: list[Any] = [_UnaryUnary(), _StreamUnary(), _UnaryStream(), _StreamStream()]
    target = normalise_target(address)
    if credentials is None:
        return grpc.aio.insecure_channel(target, options=options, interceptors=interceptors)
    return grpc.aio.secure_channel(target, credentials, options=options, interceptors=interceptors)
