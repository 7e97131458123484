"""The server interceptor on response-streaming calls (a live session is a bidirectional stream):
one span, one count and one log line per call, the request id and the caller's trace context
honoured, core errors mapped to statuses; whether the handler yields or writes with ctx.write."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from services.common import metrics, tracing
from services.common.errors import InvalidArgument
from services.common.server import MeshServer, ServiceBinding
from services.common.settings import ServerSettings
from tests.conftest import loopback_env, serving

SERVICE = "test.v1.Live"
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT = "b7ad6b7169203331"


def _bytes(value: bytes) -> bytes:
    return value


async def chat(requests: AsyncIterator[bytes], ctx: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
    """Echoes each message upper-cased; a message "bad" is the caller's mistake."""
    async for message in requests:
        if message == b"bad":
            raise InvalidArgument("chat: the message 'bad' is not accepted")
        tracing.set_attributes(**{"test.last": message.decode()})
        yield message.upper()


class _Upload:
    """Stands in for a large refused upload held in a servicer's locals."""


_uploads: list[weakref.ref[_Upload]] = []


async def refuse(request: bytes, ctx: grpc.aio.ServicerContext) -> bytes:
    upload = _Upload()
    _uploads.append(weakref.ref(upload))
    raise InvalidArgument("refuse: too large")


async def refuse_stream(requests: AsyncIterator[bytes], ctx: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
    upload = _Upload()
    _uploads.append(weakref.ref(upload))
    async for _ in requests:
        raise InvalidArgument("refuse: too large")
    yield b""


async def countdown(request: bytes, ctx: grpc.aio.ServicerContext) -> None:
    """A handler that writes its responses itself and returns nothing."""
    for i in range(int(request), 0, -1):
        await ctx.write(str(i).encode())


def _register(server: grpc.aio.Server) -> None:
    handlers = {
        "Chat": grpc.stream_stream_rpc_method_handler(chat, request_deserializer=_bytes, response_serializer=_bytes),
        "Countdown": grpc.unary_stream_rpc_method_handler(
            countdown, request_deserializer=_bytes, response_serializer=_bytes
        ),
        "Refuse": grpc.unary_unary_rpc_method_handler(refuse, request_deserializer=_bytes, response_serializer=_bytes),
        "RefuseStream": grpc.stream_stream_rpc_method_handler(
            refuse_stream, request_deserializer=_bytes, response_serializer=_bytes
        ),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))


@pytest.fixture(scope="module")
def spans() -> Iterator[InMemorySpanExporter]:
    """An SDK provider for this process (the API allows one per process; no other test sets one)."""
    exporter = InMemorySpanExporter()
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        current.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
    yield exporter
    # The provider stays for the rest of the session; the spans of later tests are not kept.
    exporter.shutdown()


def _count(method: str, code: str) -> float:
    value = metrics.REQUESTS.labels("tajweed", method, code)._value.get()
    return float(value)


def _named(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name == name]


async def test_a_bidirectional_stream_gets_a_span_a_count_and_the_request_id(spans: InMemorySpanExporter) -> None:
    mesh = MeshServer(ServerSettings.from_env("tajweed", loopback_env("tajweed")), [ServiceBinding(SERVICE, _register)])
    method = f"/{SERVICE}/Chat"
    before_ok, before_bad = _count(method, "OK"), _count(method, "INVALID_ARGUMENT")
    async with serving(mesh), grpc.aio.insecure_channel(mesh.address) as channel:
        call = channel.stream_stream(method, request_serializer=_bytes, response_deserializer=_bytes)

        async def messages(*items: bytes) -> AsyncIterator[bytes]:
            for item in items:
                yield item

        metadata = (("x-request-id", "live-0001"), ("traceparent", f"00-{TRACE_ID}-{PARENT}-01"))
        stream: Any = call(messages(b"a", b"b", b"c"), metadata=metadata, timeout=10)
        assert [reply async for reply in stream] == [b"A", b"B", b"C"]
        assert ("x-request-id", "live-0001") in tuple(await stream.initial_metadata())

        failing: Any = call(messages(b"a", b"bad", b"c"), timeout=10)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            _ = [reply async for reply in failing]
        assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert "'bad' is not accepted" in (caught.value.details() or "")

    assert _count(method, "OK") == before_ok + 1
    assert _count(method, "INVALID_ARGUMENT") == before_bad + 1
    chats = _named(spans, f"{SERVICE}/Chat")
    assert len(chats) == 2
    ok = next(s for s in chats if s.attributes and s.attributes.get(tracing.REQUEST_ID) == "live-0001")
    assert ok.kind is SpanKind.SERVER
    assert ok.context is not None and format(ok.context.trace_id, "032x") == TRACE_ID
    assert ok.parent is not None and format(ok.parent.span_id, "016x") == PARENT
    assert ok.attributes is not None and ok.attributes["test.last"] == "c"
    assert ok.attributes["rpc.grpc.status_code"] == "OK"
    bad = next(s for s in chats if s is not ok)
    assert bad.status.status_code is StatusCode.ERROR
    assert bad.attributes is not None and bad.attributes["rpc.grpc.status_code"] == "INVALID_ARGUMENT"


async def test_a_server_stream_written_with_ctx_write_is_wrapped_too(spans: InMemorySpanExporter) -> None:
    mesh = MeshServer(ServerSettings.from_env("tajweed", loopback_env("tajweed")), [ServiceBinding(SERVICE, _register)])
    method = f"/{SERVICE}/Countdown"
    before = _count(method, "OK")
    async with serving(mesh), grpc.aio.insecure_channel(mesh.address) as channel:
        call = channel.unary_stream(method, request_serializer=_bytes, response_deserializer=_bytes)
        assert [reply async for reply in call(b"3", timeout=10)] == [b"3", b"2", b"1"]
    assert _count(method, "OK") == before + 1
    assert _named(spans, f"{SERVICE}/Countdown")


async def test_a_refused_call_pins_none_of_the_servicers_locals() -> None:
    """The status of a core error is set where it is caught, its traceback dropped: nothing keeps
    the servicer's frame (a refused upload) alive until the next garbage collection."""
    mesh = MeshServer(ServerSettings.from_env("tajweed", loopback_env("tajweed")), [ServiceBinding(SERVICE, _register)])
    _uploads.clear()
    gc.disable()
    try:
        async with serving(mesh), grpc.aio.insecure_channel(mesh.address) as channel:
            unary = channel.unary_unary(f"/{SERVICE}/Refuse", request_serializer=_bytes, response_deserializer=_bytes)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await unary(b"x", timeout=10)
            assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT

            async def one() -> AsyncIterator[bytes]:
                yield b"x"

            stream: Any = channel.stream_stream(
                f"/{SERVICE}/RefuseStream", request_serializer=_bytes, response_deserializer=_bytes
            )(one(), timeout=10)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                _ = [reply async for reply in stream]
            assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
            await asyncio.sleep(0.1)
            assert len(_uploads) == 2
            assert [ref() for ref in _uploads] == [None, None]
    finally:
        gc.enable()
