"""The mesh as real processes that a test can kill, restart, slow down and measure.

Unlike the launcher's `Mesh`, every process here has its own environment (a gateway with its
client certificate, stages with their server certificates, a second gateway behind a proxy)
and can be signalled on its own; health checks speak TLS when the process does.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common.settings import TlsFiles
from services.common.tls import channel_credentials
from services.launcher import dev_api_key
from tests.conftest import REPO, free_port

STAGES = ("asr", "alignment", "tajweed")
# Only Assess with compare_to and the reference recitations call it: a mesh starts it on demand.
PROSODY = "prosody"
# The development key (dev_api_key) is the admin of reference recitations in a mesh with prosody.
DEV_KEY_NAME = "dev"


def base_environment(cache_dir: Path) -> dict[str, str]:
    """The caller's environment without any MUAALEM_* variable (the tests decide all of them),
    plus the tiny development checkpoint and short shutdown delays."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MUAALEM_")}
    env.update(
        {
            "PYTHONUNBUFFERED": "1",
            "MUAALEM_CACHE_DIR": str(cache_dir),
            "MUAALEM_ASR_MODEL": str(cache_dir / "no-such-model"),
            "MUAALEM_ASR_DEV_FALLBACK": "tiny",
            "MUAALEM_SEGMENTER_MODEL": "",
            "MUAALEM_LOG_FORMAT": "json",
            "MUAALEM_SHUTDOWN_DELAY_S": "0",
            "MUAALEM_SHUTDOWN_GRACE_S": "5",
        }
    )
    return env


def client_channel(address: str, tls: TlsFiles | None = None) -> grpc.Channel:
    """A blocking channel for the test's own calls: plaintext, or TLS with the given files
    (`server_name` overrides the name expected in the server's certificate)."""
    options = [("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20)]
    credentials = channel_credentials(tls) if tls is not None else None
    if credentials is None:
        return grpc.insecure_channel(address, options=options)
    assert tls is not None
    if tls.server_name:
        options.append(("grpc.ssl_target_name_override", tls.server_name))  # type: ignore[arg-type]
    return grpc.secure_channel(address, credentials, options=options)


def health(address: str, tls: TlsFiles | None = None, timeout_s: float = 1.0) -> str:
    """SERVING / NOT_SERVING, or the gRPC code name when the server does not answer."""
    with client_channel(address, tls) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=timeout_s)
        except grpc.RpcError as exc:
            return str(exc.code().name)
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


def status_kb(pid: int, field: str) -> int:
    """A kB field of /proc/<pid>/status: VmRSS (resident now), VmHWM (resident at its peak)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for pid {pid}")


def rss_kb(pid: int) -> int:
    return status_kb(pid, "VmRSS")


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@dataclass
class Service:
    """One `python -m services.<name>` process with the environment it was given."""

    name: str
    env: dict[str, str]
    log_dir: Path
    client_tls: TlsFiles | None = None
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def module(self) -> str:
        return "gateway" if self.name.startswith("gateway") else self.name

    @property
    def port(self) -> int:
        return int(self.env[f"MUAALEM_{self.module.upper()}_PORT"])

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def http_port(self) -> int:
        return int(self.env["MUAALEM_GATEWAY_HTTP_PORT"])

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"{self.name}.{self.starts}.log"

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None, f"{self.name} is running"
        self.starts += 1
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", f"services.{self.module}"],
            cwd=REPO,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def health(self, timeout_s: float = 1.0) -> str:
        return health(self.address, self.client_tls, timeout_s)

    def poll_serving(self) -> bool:
        """Whether it reports SERVING now; raises with the log's tail when the process died."""
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.tail()}")
        return self.health(timeout_s=0.5) == "SERVING"

    def wait_serving(self, timeout_s: float = 120.0) -> float:
        """Seconds it took; raises with the log's tail when the process dies or is late."""
        started = time.monotonic()
        while not self.poll_serving():
            if time.monotonic() - started > timeout_s:
                raise TimeoutError(f"{self.name} not SERVING after {timeout_s:.0f} s:\n{self.tail()}")
            time.sleep(0.05)
        return time.monotonic() - started

    def tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def wait(self, timeout_s: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout_s)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)

    def stop(self, grace_s: float = 15.0) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                self.kill()
        if self._log is not None:
            self._log.close()
            self._log = None

    def rss_kb(self) -> int:
        return rss_kb(self.pid)

    def peak_rss_kb(self) -> int:
        return status_kb(self.pid, "VmHWM")

    def reset_peak_rss(self) -> None:
        """Starts VmHWM afresh from the current RSS (Linux: 5 > /proc/<pid>/clear_refs)."""
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")

    def fd_count(self) -> int:
        return fd_count(self.pid)


@dataclass
class Cluster:
    """Three stages (four with prosody) and one gateway (more gateways on demand), each its own process."""

    root: Path
    redis_url: str = ""
    gateway_env: Mapping[str, str] = field(default_factory=dict)
    stage_env: Mapping[str, str] = field(default_factory=dict)
    # TLS the test's own clients (and health checks) use towards the stages.
    stage_client_tls: TlsFiles | None = None
    services: dict[str, Service] = field(default_factory=dict)
    api_key: str = ""
    keys_file: Path | None = None
    # Also the prosody stage, the recitations' store and the admin key (compare_to works).
    prosody: bool = False

    @property
    def stage_names(self) -> tuple[str, ...]:
        return (*STAGES, PROSODY) if self.prosody else STAGES

    def __post_init__(self) -> None:
        cache = self.root / "cache"
        self.env = base_environment(cache)
        self.api_key, self.keys_file = dev_api_key(cache)
        for name in self.stage_names:
            env = {**self.env, **self.stage_env}
            env[f"MUAALEM_{name.upper()}_PORT"] = str(free_port())
            env[f"MUAALEM_{name.upper()}_METRICS_PORT"] = "-1"
            self.services[name] = Service(name, env, self.root / "logs", client_tls=self.stage_client_tls)
        self.services["gateway"] = self.new_gateway("gateway")

    def stage(self, name: str) -> Service:
        return self.services[name]

    @property
    def gateway(self) -> Service:
        return self.services["gateway"]

    def new_gateway(
        self,
        name: str,
        targets: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
        **overrides: str,
    ) -> Service:
        """A gateway process (not started) on fresh ports; `targets` replaces stage addresses
        (a proxy in front of a stage), `env` and `overrides` override any setting."""
        gateway_env = {
            **self.env,
            "MUAALEM_GATEWAY_PORT": str(free_port()),
            "MUAALEM_GATEWAY_HTTP_PORT": str(free_port()),
            "MUAALEM_GATEWAY_METRICS_PORT": "-1",
            "MUAALEM_API_KEYS_FILE": str(self.keys_file),
            "MUAALEM_REDIS_URL": self.redis_url,
        }
        for stage in self.stage_names:
            address = (targets or {}).get(stage, self.services[stage].address)
            gateway_env[f"MUAALEM_{stage.upper()}_TARGET"] = address
        if self.prosody:
            gateway_env["MUAALEM_RECITATIONS_DIR"] = str(self.root / "recitations")
            gateway_env["MUAALEM_ADMIN_KEY_NAMES"] = DEV_KEY_NAME
        gateway_env.update(self.gateway_env)
        gateway_env.update(env or {})
        gateway_env.update(overrides)
        return Service(name, gateway_env, self.root / "logs")

    def start(self, timeout_s: float = 180.0) -> dict[str, float]:
        """Starts every service at once; the seconds each took to report SERVING."""
        started = time.monotonic()
        for service in self.services.values():
            service.start()
        serving: dict[str, float] = {}
        try:
            while len(serving) < len(self.services):
                for name, service in self.services.items():
                    if name not in serving and service.poll_serving():
                        serving[name] = time.monotonic() - started
                if time.monotonic() - started > timeout_s:
                    late = [name for name in self.services if name not in serving]
                    raise TimeoutError(f"not SERVING after {timeout_s:.0f} s: {late}")
                time.sleep(0.05)
        except BaseException:
            self.stop()
            raise
        return {name: serving[name] for name in self.services}

    def stop(self) -> None:
        for service in self.services.values():
            service.stop()

    def metadata(self, key: str | None = None) -> list[tuple[str, str]]:
        return [("authorization", f"Bearer {self.api_key if key is None else key}")]
