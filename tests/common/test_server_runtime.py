"""The shared server bootstrap, through real server processes and real gRPC clients."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common import context
from services.common.channels import create_channel
from services.common.pb import tajweed_pb2, tajweed_pb2_grpc
from tests.conftest import REPO, free_port
from tests.polling import eventually

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class ServerProcess:
    def __init__(self, log_path: Path, **env: str) -> None:
        self.port = free_port()
        self.metrics_port = free_port()
        self.log_path = log_path
        full_env = {
            **os.environ,
            "MUAALEM_TAJWEED_PORT": str(self.port),
            "MUAALEM_TAJWEED_METRICS_PORT": str(self.metrics_port),
            "MUAALEM_MAX_MESSAGE_MB": "1",
            **env,
        }
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.common.sleepy_server"],
            cwd=REPO,
            env=full_env,
            stdout=self._log,
            stderr=self._log,
        )

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def health(self, service: str = "") -> int:
        with grpc.insecure_channel(self.address) as channel:
            return int(
                health_pb2_grpc.HealthStub(channel)
                .Check(health_pb2.HealthCheckRequest(service=service), timeout=2)
                .status
            )

    def wait_serving(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.health() == SERVING:
                    return
            except grpc.RpcError:
                pass
            assert self.process.poll() is None, self.log_path.read_text()
            time.sleep(0.05)
        raise TimeoutError("server not SERVING")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._log.close()


def _in_flight(server: ServerProcess) -> float:
    """The server's own count of calls it is handling (its Prometheus gauge)."""
    body = urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=5).read().decode()
    for line in body.splitlines():
        if line.startswith("muaalem_grpc_in_flight_requests{") and "TajweedService/Validate" in line:
            return float(line.rpartition(" ")[2])
    return 0.0


@pytest.fixture
def sleepy(tmp_path: Path) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path / "server.log", MUAALEM_SHUTDOWN_DELAY_S="1.5", MUAALEM_SHUTDOWN_GRACE_S="10")
    server.wait_serving()
    yield server
    server.close()


async def test_sigterm_reports_not_serving_and_finishes_in_flight_calls(sleepy: ServerProcess) -> None:
    channel = grpc.aio.insecure_channel(sleepy.address)
    stub = tajweed_pb2_grpc.TajweedServiceStub(channel)
    health = health_pb2_grpc.HealthStub(channel)
    in_flight = asyncio.ensure_future(stub.Validate(tajweed_pb2.ValidateRequest(audio_duration_s=2.5), timeout=20))
    await eventually(lambda: _in_flight(sleepy) == 1, what="the call in flight on the server")
    sleepy.process.send_signal(signal.SIGTERM)

    async def reported() -> bool:
        reply = await health.Check(health_pb2.HealthCheckRequest(service="muaalem.v1.TajweedService"), timeout=2)
        return reply.status == NOT_SERVING

    await eventually(reported, what="NOT_SERVING after SIGTERM")
    overall = await health.Check(health_pb2.HealthCheckRequest(), timeout=2)
    assert overall.status == NOT_SERVING
    reply = await in_flight  # completes although the server is shutting down
    assert isinstance(reply, tajweed_pb2.ValidateResponse)
    await channel.close()
    assert sleepy.process.wait(timeout=15) == 0


async def test_oversize_message_is_refused_clearly_and_the_server_stays_up(sleepy: ServerProcess) -> None:
    # The server under test accepts 1 MiB (MUAALEM_MAX_MESSAGE_MB=1).
    channel = grpc.aio.insecure_channel(sleepy.address, options=[("grpc.max_send_message_length", 8 << 20)])
    stub = tajweed_pb2_grpc.TajweedServiceStub(channel)
    big = tajweed_pb2.ValidateRequest()
    big.energy.db.data = b"\0" * (2 << 20)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.Validate(big, timeout=10)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "larger than max" in (info.value.details() or "")
    assert sleepy.health() == SERVING
    assert isinstance(await stub.Validate(tajweed_pb2.ValidateRequest(), timeout=5), tajweed_pb2.ValidateResponse)
    await channel.close()


async def test_deadline_and_request_id_travel_downstream(sleepy: ServerProcess) -> None:
    channel = create_channel(sleepy.address, ["muaalem.v1.TajweedService"])
    stub = tajweed_pb2_grpc.TajweedServiceStub(channel)
    with context.call_scope("rid-travels-1", 0.3):
        started = time.monotonic()
        with pytest.raises(grpc.aio.AioRpcError) as info:
            # The call asks for 2 s of work; the caller has 0.3 s left, so the call gets no more.
            await stub.Validate(tajweed_pb2.ValidateRequest(audio_duration_s=2.0), timeout=30)
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert time.monotonic() - started < 1.0
    await channel.close()

    def logged() -> bool:
        lines = [json.loads(line) for line in sleepy.log_path.read_text().splitlines() if line.startswith("{")]
        rpc_lines = [line for line in lines if line.get("msg") == "rpc"]
        return any(line.get("request_id") == "rid-travels-1" and line["code"] == "CANCELLED" for line in rpc_lines)

    await eventually(logged, what="the cancelled call logged with its request id")


def test_metrics_endpoint_counts_calls_by_method_and_code(sleepy: ServerProcess) -> None:
    with grpc.insecure_channel(sleepy.address) as channel:
        tajweed_pb2_grpc.TajweedServiceStub(channel).Validate(tajweed_pb2.ValidateRequest(), timeout=5)
    body = urllib.request.urlopen(f"http://127.0.0.1:{sleepy.metrics_port}/metrics", timeout=5).read().decode()
    assert (
        'muaalem_grpc_requests_total{code="OK",method="/muaalem.v1.TajweedService/Validate",service="tajweed"}' in body
    )
    assert "muaalem_grpc_request_duration_seconds_bucket" in body
    assert "muaalem_grpc_in_flight_requests" in body
    assert 'muaalem_service_ready{service="tajweed"} 1.0' in body
