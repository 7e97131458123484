"""The server interceptor every service runs: request id, deadline, trace span, metrics, access
log, and the mapping of core errors to gRPC statuses, so that servicers stay thin."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

import grpc

from services.common import context, metrics, rich_status, tracing
from services.common.errors import MeshError

log = logging.getLogger("muaalem.rpc")

# Health and reflection calls are counted but not logged: probes would drown the log.
_QUIET_PREFIXES = ("/grpc.health.", "/grpc.reflection.")

Behavior = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]
# A response-streaming handler: an async generator, or a coroutine that writes with ctx.write.
StreamBehavior = Callable[[Any, grpc.aio.ServicerContext], Any]


def _metadata_value(ctx: grpc.aio.ServicerContext, key: str) -> str | None:
    for item_key, value in ctx.invocation_metadata() or ():
        if item_key == key:
            return value.decode() if isinstance(value, bytes) else str(value)
    return None


def _code_name(ctx: grpc.aio.ServicerContext) -> str:
    code = ctx.code()
    if code is None:
        return "UNKNOWN"
    if isinstance(code, grpc.StatusCode):
        return code.name
    # grpc.aio returns the cygrpc integer code on some paths.
    for status in grpc.StatusCode:
        if status.value[0] == code:
            return status.name
    return "UNKNOWN"


class MeshServerInterceptor(grpc.aio.ServerInterceptor):
    """Wraps every handler: unary and client-streaming requests, and server- or bidirectional-
    streaming ones (a live session), each with one span, one log line and one count per call."""

    def __init__(self, service: str) -> None:
        self.service = service

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method
        quiet = method.startswith(_QUIET_PREFIXES)
        if handler.response_streaming:
            if quiet:
                # Health Watch and reflection streams pass through untouched: probes, not work.
                return handler
            stream_behavior = handler.stream_stream if handler.request_streaming else handler.unary_stream
            stream_factory = (
                grpc.stream_stream_rpc_method_handler
                if handler.request_streaming
                else grpc.unary_stream_rpc_method_handler
            )
            return stream_factory(
                self._wrap_stream(method, cast(StreamBehavior, stream_behavior)),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        behavior = handler.stream_unary if handler.request_streaming else handler.unary_unary
        wrapped = self._wrap(method, cast(Behavior, behavior), quiet)
        factory = (
            grpc.stream_unary_rpc_method_handler if handler.request_streaming else grpc.unary_unary_rpc_method_handler
        )
        return factory(
            wrapped,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _wrap(self, method: str, behavior: Behavior, quiet: bool) -> Behavior:
        async def wrapped(request: Any, ctx: grpc.aio.ServicerContext) -> Any:
            async with self._handled(method, ctx, quiet):
                try:
                    return await behavior(request, ctx)
                except MeshError as exc:
                    await abort(ctx, exc)
            raise AssertionError("unreachable")  # pragma: no cover

        return wrapped

    def _wrap_stream(self, method: str, behavior: StreamBehavior) -> StreamBehavior:
        async def wrapped(request: Any, ctx: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            async with self._handled(method, ctx, quiet=False):
                # A handler either yields its responses or writes them with ctx.write and returns.
                try:
                    result = behavior(request, ctx)
                    if inspect.isasyncgen(result):
                        async for response in result:
                            yield response
                    elif inspect.isawaitable(result):
                        await result
                    else:
                        for response in result:
                            yield response
                except MeshError as exc:
                    await abort(ctx, exc)

        return wrapped

    @contextlib.asynccontextmanager
    async def _handled(self, method: str, ctx: grpc.aio.ServicerContext, quiet: bool) -> AsyncIterator[None]:
        """Request id, deadline, span, metrics, access log and error mapping around one call."""
        service = self.service
        metadata = ctx.invocation_metadata()
        # Read while the call is alive: grpc core's peer of a call already cancelled can point at
        # a freed transport (grpc/grpc#29069); the access log asking for it at the end of a
        # cancelled call crashed a test process here once (SIGSEGV in ServicerContext.peer).
        peer = "" if quiet else ctx.peer()
        rid = _metadata_value(ctx, context.REQUEST_ID_HEADER)
        started = time.perf_counter()
        code = "OK"
        message = ""
        metrics.IN_FLIGHT.labels(service, method).inc()
        with (
            context.call_scope(rid, ctx.time_remaining()) as resolved_rid,
            # Probes get no span: they would outnumber the assessments in every trace store.
            tracing.server_span(method.lstrip("/"), metadata, _span_attributes(service, method, resolved_rid))
            if not quiet
            else contextlib.nullcontext(None) as span,
        ):
            try:
                if not quiet:
                    await ctx.send_initial_metadata(((context.REQUEST_ID_HEADER, resolved_rid),))
                yield
            except grpc.aio.AbortError:
                # A core error mapped by _abort, or the servicer's own abort.
                code = _code_name(ctx)
                message = ctx.details() or ""
                raise
            except asyncio.CancelledError:
                code = "CANCELLED"
                message = "the caller cancelled or its deadline passed"
                raise
            except Exception:
                code = "INTERNAL"
                message = f"internal error (request id {resolved_rid})"
                log.exception("unhandled error", extra={"method": method, "service": service})
                await ctx.abort(grpc.StatusCode.INTERNAL, message)
            finally:
                elapsed = time.perf_counter() - started
                metrics.IN_FLIGHT.labels(service, method).dec()
                metrics.REQUESTS.labels(service, method, code).inc()
                metrics.LATENCY.labels(service, method).observe(elapsed)
                if span is not None:
                    tracing.set_error(span, code, message)
                if not quiet:
                    level = logging.INFO if code in {"OK", "CANCELLED"} else logging.WARNING
                    log.log(
                        level,
                        "rpc",
                        extra={
                            "service": service,
                            "method": method,
                            "code": code,
                            "duration_ms": round(elapsed * 1000, 2),
                            "peer": peer,
                            **({"error": message} if message else {}),
                        },
                    )


async def abort(ctx: grpc.aio.ServicerContext, exc: MeshError) -> None:
    """Ends the call with the core error's status, and its retry hint as a google.rpc.RetryInfo
    in the status details. Done where the error is caught, not in the context manager: the
    AbortError keeps this error as its context, and grpc holds that until a garbage collection;
    without its traceback (which a context manager's __aexit__ would also hold) it pins no
    frame, and no frame's locals such as a refused 256 MiB upload, until then."""
    exc.__traceback__ = None
    trailers = rich_status.trailers(exc.code, exc.message, exc.retry_after_s)
    await ctx.abort(grpc.StatusCode[exc.code], exc.message, trailing_metadata=trailers)


def _span_attributes(service: str, method: str, request_id: str) -> dict[str, str]:
    rpc_service, _, rpc_method = method.lstrip("/").partition("/")
    return {
        "rpc.system": "grpc",
        "rpc.service": rpc_service,
        "rpc.method": rpc_method,
        "muaalem.service": service,
        tracing.REQUEST_ID: request_id,
    }


async def collect_stream(request_iterator: AsyncIterator[Any]) -> list[Any]:
    """Reads a whole client stream (helper for client-streaming servicers)."""
    return [item async for item in request_iterator]
