"""OpenTelemetry traces of one assessment across the stages.

Off by default: with nothing configured every span is a no-op (the API's default tracer), and
only the W3C `traceparent` of an incoming call is passed on, so a trace started by a caller
stays whole across the mesh. A process exports spans when the standard variables say so:
`OTEL_TRACES_EXPORTER=otlp` (or `console`), or an `OTEL_EXPORTER_OTLP_ENDPOINT` /
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set. Everything else (endpoint, headers, TLS,
`OTEL_TRACES_SAMPLER`, `OTEL_BSP_*`, `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`) is read
by the OpenTelemetry SDK itself. `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none` turn
it off.

Spans carry sizes, targets, timings and outcomes, never audio, transcripts, metadata values or
keys: `set_attributes` takes only scalars and lists of strings, and callers pass only the named
attributes below.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

log = logging.getLogger(__name__)

TRACER_NAME = "muaalem"
TRACEPARENT_HEADER = "traceparent"

# Attribute names used across the services (one place, so dashboards and queries agree).
AUDIO_SECONDS = "muaalem.audio_seconds"
TARGET = "muaalem.target"
BATCH_SIZE = "muaalem.asr.batch_size"
QUEUE_MS = "muaalem.asr.queue_ms"
MODEL_MS = "muaalem.asr.model_ms"
CACHE_HIT = "muaalem.reference.cache_hit"
CACHE_STORE = "muaalem.reference.store"
DEGRADED = "muaalem.degraded_stages"
STAGE = "muaalem.stage"
STAGE_STATUS = "muaalem.stage_status"
REQUEST_ID = "muaalem.request_id"


class _State:
    provider: Any = None


_state = _State()

Scalar = str | bool | int | float


def exporters_from_env(environ: Mapping[str, str]) -> list[str]:
    """The span exporters the environment asks for ([] = tracing off)."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    names = [n.strip().lower() for n in environ.get("OTEL_TRACES_EXPORTER", "").split(",") if n.strip()]
    if names:
        return [n for n in names if n != "none"]
    # The specification's default exporter is otlp; the mesh only exports when an endpoint is named.
    if environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return ["otlp"]
    return []


def configure(service: str, environ: Mapping[str, str] | None = None) -> bool:
    """Installs an SDK tracer provider for this process when the environment asks for one.
    Returns whether spans are exported. Call once per process, before serving."""
    env = os.environ if environ is None else environ
    names = exporters_from_env(env)
    if not names or _state.provider is not None:
        return _state.provider is not None
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

    attributes = {} if env.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: f"muaalem-{service}"}
    provider = TracerProvider(resource=Resource.create(attributes))
    added = 0
    for name in names:
        exporter: SpanExporter
        if name == "otlp":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter()
        elif name == "console":
            exporter = ConsoleSpanExporter()
        else:
            log.warning("unknown OTEL_TRACES_EXPORTER %r ignored (this build has otlp and console)", name)
            continue
        provider.add_span_processor(BatchSpanProcessor(exporter))
        added += 1
    if not added:
        return False
    trace.set_tracer_provider(provider)
    _state.provider = provider
    log.info("tracing on", extra={"service": service, "exporters": ",".join(names)})
    return True


def shutdown() -> None:
    """Flushes and stops the exporters (end of process)."""
    if _state.provider is not None:
        _state.provider.shutdown()
        _state.provider = None


# A proxy until configure() installs a provider, then that provider's tracer: one lookup per process.
_TRACER = trace.get_tracer(TRACER_NAME)


def tracer() -> trace.Tracer:
    return _TRACER


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def extract(metadata: Iterable[tuple[str, str | bytes]] | None) -> otel_context.Context:
    """The trace context a caller sent in its gRPC metadata (W3C traceparent/tracestate)."""
    carrier = {key: _text(value) for key, value in metadata or () if not key.endswith("-bin")}
    return propagate.extract(carrier)


def inject(metadata: list[tuple[str, str]]) -> None:
    """Adds the current trace context to outgoing gRPC metadata (unless already there)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    present = {key for key, _ in metadata}
    metadata.extend((key, value) for key, value in carrier.items() if key not in present)


@contextmanager
def server_span(
    name: str, metadata: Iterable[tuple[str, str | bytes]] | None, attributes: Mapping[str, Scalar]
) -> Iterator[Span]:
    """A SERVER span for one incoming call, child of the caller's trace context, made current."""
    parent = extract(metadata)
    with tracer().start_as_current_span(
        name,
        context=parent,
        kind=SpanKind.SERVER,
        attributes=dict(attributes),
        # The interceptor sets the status from the gRPC code (an abort is not always an error).
        record_exception=False,
        set_status_on_exception=False,
    ) as current:
        yield current


@contextmanager
def http_server_span(
    method: str, route: str, headers: Iterable[tuple[str, str]], request_id: str
) -> Iterator[Span]:
    """The span of one HTTP request: the web framework's own when it made one (FastAPI does once
    a tracer provider is installed), else a SERVER span of ours that joins the caller's trace."""
    current = trace.get_current_span()
    if current.get_span_context().is_valid:
        current.set_attribute(REQUEST_ID, request_id)
        yield current
        return
    attributes = {"http.request.method": method, "http.route": route, REQUEST_ID: request_id}
    with server_span(f"{method} {route}", headers, attributes) as created:
        yield created


@contextmanager
def span(name: str, **attributes: Any) -> Iterator[Span]:
    """An INTERNAL span, child of the current one, made current for the block."""
    with tracer().start_as_current_span(name, attributes=_clean(attributes)) as current:
        yield current


def set_attributes(**attributes: Any) -> None:
    """Sets attributes on the current span (None values are left out)."""
    current = trace.get_current_span()
    if current.is_recording():
        current.set_attributes(_clean(attributes))


def set_error(current: Span, code: str, message: str) -> None:
    current.set_attribute("rpc.grpc.status_code", code)
    if code not in {"OK"}:
        current.set_status(Status(StatusCode.ERROR, f"{code}: {message}"[:256]))


def _clean(attributes: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in attributes.items():
        if value is None:
            continue
        if isinstance(value, (str, bool, int, float)):
            out[_KEYS.get(key, key)] = value
        elif isinstance(value, (list, tuple)):
            out[_KEYS.get(key, key)] = [str(v) for v in value]
        else:
            raise TypeError(f"span attribute {key}: {type(value).__name__} is not a scalar or a list of strings")
    return out


# Keyword spellings of the attribute names (keywords cannot hold dots).
_KEYS = {
    "audio_seconds": AUDIO_SECONDS,
    "target": TARGET,
    "batch_size": BATCH_SIZE,
    "queue_ms": QUEUE_MS,
    "model_ms": MODEL_MS,
    "cache_hit": CACHE_HIT,
    "cache_store": CACHE_STORE,
    "degraded": DEGRADED,
    "stage": STAGE,
    "stage_status": STAGE_STATUS,
    "request_id": REQUEST_ID,
}
