"""Retry hints over gRPC: RESOURCE_EXHAUSTED and UNAVAILABLE carry a google.rpc.RetryInfo in the
status details (the `grpc-status-details-bin` trailer), read back by an independent parse here,
and the command line honours it. A real gateway server on loopback, stand-in stages."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import code_pb2, error_details_pb2, status_pb2
from prometheus_client import REGISTRY

from services.cli import main as cli_main
from services.client.retry import RetryPolicy, call_with_retries
from services.common import rich_status
from services.common.errors import (
    InvalidArgument,
    ResourceExhausted,
    TooLarge,
    Unauthenticated,
    Unavailable,
)
from services.common.pb import common_pb2, gateway_pb2, gateway_pb2_grpc
from services.gateway.auth import hash_key
from services.gateway.live.admission import IdleTimeout, SessionRefused, rejection_reason
from services.gateway.live.settings import LiveSettings
from services.gateway.metrics import LIVE_REJECT_REASONS
from services.gateway.server import build
from tests.conftest import AUDIO_DIR, loopback_env, serving
from tests.gateway.standin import StandInStages
from tests.polling import eventually

KEY = "mua_retry-hints-test-key"
METADATA = (("authorization", f"Bearer {KEY}"),)
TARGET = common_pb2.Target(ayah=common_pb2.AyahTarget(surah=1, ayah=2))


@pytest.fixture(scope="module")
async def address() -> AsyncIterator[str]:
    environ = {
        **loopback_env("gateway"),
        "MUAALEM_GATEWAY_HTTP_PORT": "-1",
        "MUAALEM_API_KEYS": f"tester:{hash_key(KEY)}",
        # An empty bucket refills one token in 1 / 0.5 = 2 s.
        "MUAALEM_RATE_LIMIT_RPS": "0.5",
        "MUAALEM_RATE_LIMIT_BURST": "1",
        "MUAALEM_LIVE_MAX_SESSIONS_PER_KEY": "1",
        "MUAALEM_LIVE_VAD": "energy",
    }
    stages = StandInStages(errors={"asr": Unavailable("asr is a stand-in that is down")})
    server, _, _ = build(environ, stages=stages)
    async with serving(server, ready_timeout=120, grace=0) as mesh:
        yield f"127.0.0.1:{mesh.port}"


def _request() -> gateway_pb2.AssessRequest:
    return gateway_pb2.AssessRequest(
        audio=common_pb2.Audio(content=(AUDIO_DIR / "test.wav").read_bytes(), name_hint="test.wav"), target=TARGET
    )


def _retry_info(error: grpc.aio.AioRpcError) -> tuple[int, float]:
    """(google.rpc code, RetryInfo delay in s), parsed without the code under test."""
    metadata: Any = error.trailing_metadata() or ()
    trailers: dict[str, Any] = dict(metadata)
    packed = trailers["grpc-status-details-bin"]
    status = status_pb2.Status.FromString(packed)
    assert status.message == error.details()
    info = error_details_pb2.RetryInfo()
    assert len(status.details) == 1 and status.details[0].Unpack(info)
    return status.code, info.retry_delay.seconds + info.retry_delay.nanos / 1e9


async def _exhaust(stub: gateway_pb2_grpc.GatewayServiceStub) -> grpc.aio.AioRpcError:
    """Calls until the rate limit refuses one; that refusal."""
    for _ in range(5):
        try:
            await stub.Assess(_request(), metadata=METADATA, timeout=30)
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, exc
            return exc
    raise AssertionError("the rate limit never refused a call")


async def test_a_rate_limited_call_carries_retry_info(address: str) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        refused = await _exhaust(gateway_pb2_grpc.GatewayServiceStub(channel))
    code, delay = _retry_info(refused)
    assert code == code_pb2.RESOURCE_EXHAUSTED
    assert 0.5 < delay <= 2.0 + 0.05, delay
    assert rich_status.retry_delay_s(refused.trailing_metadata()) == pytest.approx(delay)


async def test_invalid_argument_carries_no_retry_hint(address: str) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = gateway_pb2_grpc.GatewayServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.GetReference(
                gateway_pb2.GetReferenceRequest(target=common_pb2.Target(ayah=common_pb2.AyahTarget(surah=2**31 - 1))),
                metadata=METADATA,
                timeout=30,
            )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "1..114" in (refused.value.details() or "")
    metadata: Any = refused.value.trailing_metadata() or ()
    assert "grpc-status-details-bin" not in dict(metadata)


def _sample(name: str, **labels: str) -> float:
    value = REGISTRY.get_sample_value(name, labels)
    return 0.0 if value is None else value


async def test_a_live_session_over_the_keys_limit_carries_retry_info_and_is_counted(address: str) -> None:
    rejected_before = _sample("muaalem_live_sessions_rejected_total", reason="limit")
    config = gateway_pb2.LiveConfig(
        target=TARGET, pcm=common_pb2.RawPcm(sample_rate_hz=16000, encoding=common_pb2.PCM_ENCODING_S16LE)
    )
    held = asyncio.Event()

    async def first() -> AsyncIterator[gateway_pb2.AssessLiveRequest]:
        yield gateway_pb2.AssessLiveRequest(config=config)
        await held.wait()

    async def second() -> AsyncIterator[gateway_pb2.AssessLiveRequest]:
        yield gateway_pb2.AssessLiveRequest(config=config)

    async with grpc.aio.insecure_channel(address) as channel:
        stub = gateway_pb2_grpc.GatewayServiceStub(channel)
        await asyncio.sleep(2.1)  # a token for each session
        open_session = stub.AssessLive(first(), metadata=METADATA, timeout=60)
        assert (await open_session.read()).WhichOneof("kind") == "started"
        assert _sample("muaalem_live_sessions_active") == 1
        await asyncio.sleep(2.1)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            async for _ in stub.AssessLive(second(), metadata=METADATA, timeout=30):
                pass
        held.set()
        open_session.cancel()
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert _retry_info(refused.value) == (code_pb2.RESOURCE_EXHAUSTED, LiveSettings().retry_after_s)
    # The metrics the live alert and dashboard read are fed (they were declared, never set).
    assert _sample("muaalem_live_sessions_rejected_total", reason="limit") == rejected_before + 1
    await eventually(lambda: _sample("muaalem_live_sessions_active") == 0, what="the session closed")


def test_each_way_a_session_ends_badly_has_its_reason() -> None:
    assert rejection_reason(SessionRefused("full", reason="capacity"), draining=False) == "capacity"
    assert rejection_reason(SessionRefused("key", reason="limit"), draining=False) == "limit"
    assert rejection_reason(ResourceExhausted("rate"), draining=False) == "limit"
    assert rejection_reason(Unavailable("down"), draining=True) == "draining"
    assert rejection_reason(Unavailable("down"), draining=False) == "unavailable"
    assert rejection_reason(InvalidArgument("bad"), draining=False) == "invalid"
    assert rejection_reason(Unauthenticated("who"), draining=False) == "unauthenticated"
    assert rejection_reason(IdleTimeout("idle"), draining=False) == "idle"
    assert set(LIVE_REJECT_REASONS) >= {"capacity", "limit", "invalid", "idle", "internal"}


def test_only_retryable_refusals_with_a_hint_are_packed() -> None:
    assert rich_status.details("INVALID_ARGUMENT", "no", InvalidArgument("no").retry_after_s) is None
    assert TooLarge("big").retry_after_s is None  # the same payload never passes
    assert ResourceExhausted("full").retry_after_s == Unavailable("down").retry_after_s == 1.0
    assert rich_status.retry_delay_s([("grpc-status-details-bin", b"\xff not a status")]) is None


async def test_the_cli_waits_as_told_and_says_so(address: str, capsys: pytest.CaptureFixture[str]) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        await _exhaust(gateway_pb2_grpc.GatewayServiceStub(channel))
    argv = ["assess", str(AUDIO_DIR / "test.wav"), "--surah", "1", "--ayah", "2", "--json"]
    argv += ["--address", address, "--api-key", KEY]
    # Blocking, in a thread: the server runs on this test's event loop.
    assert await asyncio.to_thread(cli_main, argv) == 0
    err = capsys.readouterr().err
    assert "assess: RESOURCE_EXHAUSTED: rate limit" in err and "retrying in" in err and "(attempt 2 of 5)" in err


async def test_the_cli_gives_up_after_its_retries(address: str, tmp_path: Path) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        await _exhaust(gateway_pb2_grpc.GatewayServiceStub(channel))
    slept: list[float] = []
    stderr = io.StringIO()

    def call() -> object:
        with grpc.insecure_channel(address) as channel:
            return gateway_pb2_grpc.GatewayServiceStub(channel).Assess(_request(), metadata=METADATA, timeout=30)

    # No real wait: the bucket stays empty, every attempt is refused, the third refusal is raised.
    with pytest.raises(grpc.RpcError) as last:
        await asyncio.to_thread(
            call_with_retries, call, what="assess", policy=RetryPolicy(attempts=3), stderr=stderr, sleep=slept.append
        )
    assert last.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert len(slept) == 2 and all(0 < s <= 30 * 1.1 for s in slept)
    assert stderr.getvalue().count("retrying in") == 2
