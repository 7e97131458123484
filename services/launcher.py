"""`make serve`: the services as separate processes on loopback, until Ctrl-C.

Embedded defaults so that it runs on a bare machine: no Redis (in-process cache), CPU when
there is no GPU, a random-weight development checkpoint when the real weights cannot be
reached (said loudly), and a development API key written to the cache directory.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from services.common import settings as common_settings
from services.common.healthcheck import check
from services.common.settings import SERVICES
from services.gateway.config import HTTP_PORT

ORDER = ("asr", "alignment", "tajweed", "prosody", "gateway")
# A bind-all address is reached on loopback.
_ANY_HOST = {"", "0.0.0.0", "::"}


def dev_api_key(cache_dir: Path) -> tuple[str, Path]:
    """A development API key (kept in the cache dir) and the keys file holding its hash."""
    from services.gateway.auth import hash_key, new_key

    cache_dir.mkdir(parents=True, exist_ok=True)
    # The CLI reads it from there (services.client.connection) when it calls a loopback gateway.
    key_path = cache_dir / common_settings.DEV_KEY_FILE
    if not key_path.exists():
        key_path.write_text(new_key() + "\n")
        key_path.chmod(0o600)
    key = key_path.read_text().strip()
    keys_file = cache_dir / "dev-api-keys"
    keys_file.write_text(f"dev:{hash_key(key)}\n")
    return key, keys_file


@dataclass
class Mesh:
    """The mesh's processes. `ports` overrides any service's gRPC/metrics/HTTP port."""

    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    log_dir: Path | None = None
    start_timeout_s: float = 120.0
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    api_key: str = ""
    _logs: dict[str, IO[bytes]] = field(default_factory=dict)
    _env: dict[str, str] | None = field(default=None, init=False, repr=False)

    def service_env(self) -> dict[str, str]:
        """The environment every service process gets; built once (the first call writes the dev API key)."""
        return dict(self._service_env())

    def _service_env(self) -> dict[str, str]:
        if self._env is None:
            self._env = self._build_env()
        return self._env

    def _build_env(self) -> dict[str, str]:
        env = dict(self.env)
        # No real weights reachable: serve the committed demo checkpoint (it hears the synthetic reciter).
        env.setdefault("MUAALEM_ASR_DEV_FALLBACK", "demo")
        # The fastest path measured for this machine (services/asr/hardware.py: OpenVINO where the
        # CPU has native bfloat16, ONNX Runtime elsewhere, torch on CUDA), as the images run. The
        # graph is exported into MUAALEM_CACHE_DIR on the first start (tens of seconds) and reused.
        env.setdefault("MUAALEM_ASR_BACKEND", "auto")
        env.setdefault("PYTHONUNBUFFERED", "1")
        if not env.get("MUAALEM_API_KEYS_FILE") and not env.get("MUAALEM_API_KEYS"):
            self.api_key, keys_file = dev_api_key(common_settings.cache_dir(env))
            env["MUAALEM_API_KEYS_FILE"] = str(keys_file)
        for name in ("asr", "alignment", "tajweed", "prosody"):
            env.setdefault(f"MUAALEM_{name.upper()}_TARGET", _address(env, name))
        return env

    def address(self, service: str) -> str:
        return _address(self._service_env(), service)

    def start(self) -> None:
        env = self._service_env()
        for name in ORDER:
            stream: IO[bytes] | None = None
            if self.log_dir is not None:
                self.log_dir.mkdir(parents=True, exist_ok=True)
                stream = (self.log_dir / f"{name}.log").open("wb")
                self._logs[name] = stream
            self.processes[name] = subprocess.Popen(
                [sys.executable, "-m", f"services.{name}"], env=env, stdout=stream, stderr=stream
            )
        try:
            self.wait_serving()
        except BaseException:
            self.stop()
            raise

    def wait_serving(self) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        pending = set(ORDER)
        while pending:
            for name in sorted(pending):
                process = self.processes[name]
                if process.poll() is not None:
                    raise RuntimeError(
                        f"{name} exited with status {process.returncode} during start-up{self._tail(name)}"
                    )
                if check(self.address(name), timeout_s=1.0) == "SERVING":
                    pending.discard(name)
            if pending and time.monotonic() > deadline:
                raise TimeoutError(f"not SERVING after {self.start_timeout_s:.0f} s: {', '.join(sorted(pending))}")
            if pending:
                time.sleep(0.2)

    def _tail(self, name: str, lines: int = 20) -> str:
        if self.log_dir is None:
            return ""
        path = self.log_dir / f"{name}.log"
        text = path.read_text(errors="replace").splitlines()[-lines:] if path.exists() else []
        return ":\n" + "\n".join(text) if text else ""

    def stop(self, grace_s: float = 30.0) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for stream in self._logs.values():
            stream.close()
        self._logs.clear()

    def __enter__(self) -> Mesh:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _address(env: Mapping[str, str], service: str) -> str:
    """Where a service listens, as reached from this machine."""
    address = SERVICES[service]
    host = address.host.get(env)
    return f"{'127.0.0.1' if host in _ANY_HOST else host}:{address.port.get(env)}"


def first_start_note(env: Mapping[str, str]) -> str:
    """What a first start spends its time on (empty once the exported graph is cached)."""
    if env.get("MUAALEM_ASR_BACKEND", "torch") not in {"auto", "onnxruntime", "openvino"}:
        return ""
    if env.get("MUAALEM_ASR_ONNX_PATH"):
        return ""
    graphs = common_settings.cache_dir(env) / "onnx"
    if graphs.is_dir() and any(graphs.glob("*/model.onnx")):
        return ""
    return (
        f"first start: the asr exports its model graph into {graphs} for MUAALEM_ASR_BACKEND="
        f"{env.get('MUAALEM_ASR_BACKEND')} (up to a minute or two on a CPU, once; later starts reuse it)"
    )


def _asr_model(mesh: Mesh) -> str:
    """The asr's backend and precision as it reports them ('' if it does not answer)."""
    import grpc

    from services.common.pb import asr_pb2, asr_pb2_grpc

    if any(key.startswith("MUAALEM_TLS") and value for key, value in mesh.service_env().items()):
        return ""  # a plaintext channel would not reach it
    try:
        with grpc.insecure_channel(mesh.address("asr")) as channel:
            info = asr_pb2_grpc.AsrServiceStub(channel).GetModelInfo(asr_pb2.GetModelInfoRequest(), timeout=5)
    except grpc.RpcError:
        return ""
    version = info.model_version
    return f"{version.backend} {version.precision} on {version.device}"


def _banner(mesh: Mesh) -> str:
    env = mesh.service_env()
    lines = ["", "the Muaalem mesh is SERVING:"]
    for name in ORDER:
        metrics = SERVICES[name].metrics_port.get(env)
        lines.append(f"  {name:<10} gRPC {mesh.address(name):<22} metrics :{metrics}/metrics")
    http_port = HTTP_PORT.get(env)
    if http_port >= 0:
        lines.append(f"  {'gateway':<10} HTTP http://127.0.0.1:{http_port}  (OpenAPI: /openapi.json)")
    model = _asr_model(mesh)
    if model:
        lines.append(f"  asr runs {model} (MUAALEM_ASR_BACKEND={env.get('MUAALEM_ASR_BACKEND', 'torch')})")
    if mesh.api_key:
        lines.append(f"  dev API key: {mesh.api_key}   (`muaalem assess` on loopback uses it by itself)")
    lines.append("press Ctrl-C to stop")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="run the mesh's services on loopback")
    parser.add_argument("--log-dir", type=Path, help="write each service's log to DIR/<service>.log")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for SERVING")
    args = parser.parse_args(argv)
    env = dict(os.environ)
    env.setdefault("MUAALEM_LOG_FORMAT", "text")
    mesh = Mesh(env=env, log_dir=args.log_dir, start_timeout_s=args.timeout)
    note = first_start_note(mesh.service_env())
    if note:
        print(note, flush=True)
    started = time.monotonic()
    try:
        mesh.start()
    except (RuntimeError, TimeoutError) as exc:
        print(f"the mesh did not start: {exc}", file=sys.stderr)
        return 1
    print(_banner(mesh) + f"\n(started in {time.monotonic() - started:.1f} s)", flush=True)
    stop = False

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        while not stop:
            for name, process in mesh.processes.items():
                if process.poll() is not None:
                    print(f"{name} exited with status {process.returncode}; stopping the mesh", file=sys.stderr)
                    stop = True
            time.sleep(0.5)
    finally:
        print("stopping...", flush=True)
        mesh.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
