"""Service processes for the benchmark: each stage as its own `python -m services.<name>` on a
free loopback port (the way `make serve` and Kubernetes run them), their memory from /proc,
and small gRPC and Prometheus clients."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import ROOT
from services.common.healthcheck import check
from services.common.ports import free_port

# Client-side message limits: a 30 s WAV and the log-prob replies are far below them.
CHANNEL_OPTIONS = [("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20)]


def base_env(checkpoint: Path, cache_dir: Path) -> dict[str, str]:
    """Every process's environment: the benchmark's checkpoint, quiet logs, no segmenter, and no
    API keys, rate limits or short deadlines that would turn load into refusals."""
    env = dict(os.environ)
    env.update(
        {
            "MUAALEM_ASR_MODEL": str(checkpoint),
            "MUAALEM_ASR_DEV_FALLBACK": "",
            "MUAALEM_SEGMENTER_MODEL": "",
            "MUAALEM_CACHE_DIR": str(cache_dir),
            "MUAALEM_LOG_LEVEL": "WARNING",
            "MUAALEM_LOG_FORMAT": "json",
            "MUAALEM_SHUTDOWN_DELAY_S": "0",
            "MUAALEM_SHUTDOWN_GRACE_S": "5",
            "MUAALEM_GATEWAY_HTTP_PORT": "-1",
            "MUAALEM_API_KEYS": "",
            "MUAALEM_API_KEYS_FILE": "",
            "MUAALEM_REDIS_URL": "",
            "MUAALEM_RATE_LIMIT_RPS": "0",
            "MUAALEM_MAX_CONCURRENT_PER_KEY": "0",
            "MUAALEM_ASSESS_TIMEOUT_S": "900",
            "MUAALEM_ASR_MAX_QUEUE_SIZE": "256",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def status_kib(pid: int, key: str) -> int | None:
    """A `VmHWM`/`VmRSS` line of /proc/PID/status in KiB (None when the process is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def peak_rss_mib(pid: int) -> float:
    """VmHWM: the largest resident set the process has had (start-up included); NaN once it is gone."""
    value = status_kib(pid, "VmHWM")
    return float("nan") if value is None else value / 1024


@dataclass
class Proc:
    label: str
    service: str
    process: subprocess.Popen[bytes]
    address: str
    metrics_port: int
    log_path: Path

    def rss_mib(self) -> float:
        value = status_kib(self.process.pid, "VmRSS")
        return float("nan") if value is None else value / 1024

    def tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as reply:
            return str(reply.read().decode())


def metric_value(text: str, name: str, labels: Mapping[str, str]) -> float:
    """One sample of a Prometheus text exposition (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}{{{wanted}}} ") or (not wanted and line.startswith(f"{name} ")):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@dataclass
class Cluster:
    """Processes started by one section; all stopped on exit, whatever happened."""

    env: dict[str, str]
    log_dir: Path
    start_timeout_s: float = 900.0
    procs: list[Proc] = field(default_factory=list)

    def start(self, service: str, label: str, overrides: Mapping[str, str] | None = None) -> Proc:
        env = {**self.env, **(overrides or {})}
        prefix = f"MUAALEM_{service.upper()}"
        port = free_port()
        metrics_port = free_port() if service == "asr" else -1
        env[f"{prefix}_PORT"] = str(port)
        env[f"{prefix}_HOST"] = "127.0.0.1"
        env[f"{prefix}_METRICS_PORT"] = str(metrics_port)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{label.replace(' ', '_').replace('/', '_')}.log"
        with log_path.open("wb") as stream:
            process = subprocess.Popen(
                [sys.executable, "-m", f"services.{service}"], env=env, cwd=ROOT, stdout=stream, stderr=stream
            )
        proc = Proc(label, service, process, f"127.0.0.1:{port}", metrics_port, log_path)
        self.procs.append(proc)
        return proc

    def wait_serving(self) -> float:
        """Blocks until every process reports SERVING; returns the seconds waited."""
        started = time.monotonic()
        pending = {p.label: p for p in self.procs}
        while pending:
            for label, proc in list(pending.items()):
                if proc.process.poll() is not None:
                    raise RuntimeError(
                        f"{label} exited with status {proc.process.returncode} during start-up:\n{proc.tail()}"
                    )
                if check(proc.address, timeout_s=1.0) == "SERVING":
                    del pending[label]
            if pending:
                if time.monotonic() - started > self.start_timeout_s:
                    raise TimeoutError(f"not SERVING after {self.start_timeout_s:.0f} s: {', '.join(pending)}")
                time.sleep(0.3)
        return time.monotonic() - started

    def stop(self, procs: list[Proc] | None = None) -> None:
        chosen = self.procs if procs is None else procs
        for proc in chosen:
            if proc.process.poll() is None:
                proc.process.send_signal(signal.SIGTERM)
        for proc in chosen:
            try:
                proc.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.process.kill()
                proc.process.wait()
        self.procs = [p for p in self.procs if p not in chosen]

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def stage_targets(asr: Proc, alignment: Proc, tajweed: Proc) -> dict[str, str]:
    """A mesh gateway's environment: where its three stages are."""
    return {
        "MUAALEM_GATEWAY_MODE": "mesh",
        "MUAALEM_ASR_TARGET": asr.address,
        "MUAALEM_ALIGNMENT_TARGET": alignment.address,
        "MUAALEM_TAJWEED_TARGET": tajweed.address,
    }
