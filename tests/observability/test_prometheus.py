"""The rules and the dashboard against a running mesh and a real Prometheus.

One mesh (four processes, a real redis-server as the reference cache) serves the module: first
every metric the rules and the dashboard name is found on the services' /metrics; then a real
Prometheus (Debian's) on loopback scrapes the mesh every second and evaluates the same rules with
every duration divided by 60 (rules.Timing: 5m windows become 5s, `for: 5m` 5s), while a client
assesses in a loop, the tajweed stage is stopped and Redis is killed; the recording rules and
the firing alerts are read back through Prometheus's HTTP API.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml

from deploy.k8s.monitoring import dashboard, rules
from services.launcher import ORDER, Mesh
from tests.conftest import RedisServer, free_port
from tests.observability.meshes import assess, assess_request, metrics_port, scrape, start_mesh

pytestmark = pytest.mark.slow

# A metric name, not a recording rule (those have colons) nor part of one.
_METRIC = re.compile(r"(?<![\w:])(muaalem_[a-z0-9_]+)(?![\w:])")
_RECORDED = re.compile(r"(?<![\w])([a-z_]+:[a-z0-9_]+:[a-z0-9_]+)")
_SUFFIXES = {"counter": ("", "_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created")}


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory, redis: RedisServer) -> Iterator[Mesh]:
    # No per-key rate limit: the load below is one client assessing as fast as the mesh answers.
    instance = start_mesh(
        tmp_path_factory.mktemp("mesh"), {"MUAALEM_REDIS_URL": redis.url, "MUAALEM_RATE_LIMIT_RPS": "0"}
    )
    yield instance
    instance.stop()


def _exposed(text: str) -> set[str]:
    """Every series name a /metrics page can hold, from its TYPE lines and its samples."""
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            base = name.removesuffix("_total") if kind == "counter" else name
            names.update(base + suffix for suffix in _SUFFIXES.get(kind, ("",)))
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def _named() -> tuple[set[str], set[str]]:
    """The metrics and recording rules that the rules and the dashboard read."""
    exprs = [rule["expr"] for group in rules.groups() for rule in group["rules"]] + dashboard.expressions()
    metrics = {m for expr in exprs for m in _METRIC.findall(expr)}
    recorded = {m for expr in exprs for m in _RECORDED.findall(expr)}
    return metrics, recorded


def test_every_metric_the_rules_and_the_dashboard_name_is_exported(mesh: Mesh) -> None:
    assess(mesh, assess_request())
    exposed = set().union(*(_exposed(scrape(mesh, service)) for service in ORDER))
    metrics, recorded = _named()
    assert len(metrics) > 15
    missing = sorted(metrics - exposed)
    assert not missing, f"named by the rules or the dashboard but exported by no service: {missing}"
    records = {rule["record"] for group in rules.groups() for rule in group["rules"] if "record" in rule}
    assert recorded <= records, sorted(recorded - records)


class Prometheus:
    """A Prometheus server process on a free loopback port with its own config and storage."""

    def __init__(self, root: Path, targets: list[str]) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            pytest.fail("prometheus is not installed: `make test` installs Debian's prometheus package")
        self.port = free_port()
        rules_path = root / "rules.yaml"
        rules_path.write_text(yaml.safe_dump(rules.rules_file(rules.Timing(scale=1 / 60))))
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "900ms"},
            "rule_files": [str(rules_path)],
            "scrape_configs": [{"job_name": "muaalem", "static_configs": [{"targets": targets}]}],
        }
        (root / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log = (root / "prometheus.log").open("wb")
        self.process = subprocess.Popen(
            [
                binary,
                f"--config.file={root / 'prometheus.yml'}",
                f"--storage.tsdb.path={root / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.root = root

    def get(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}{query}", timeout=5) as response:
            return json.loads(response.read())

    def wait_ready(self, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            assert self.process.poll() is None, (self.root / "prometheus.log").read_text()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            assert time.monotonic() < deadline, "Prometheus not ready"
            time.sleep(0.2)

    def query(self, expr: str) -> list[dict[str, Any]]:
        reply = self.get("/api/v1/query", query=expr)
        assert reply["status"] == "success", reply
        return list(reply["data"]["result"])

    def firing(self) -> list[dict[str, str]]:
        alerts = self.get("/api/v1/alerts")["data"]["alerts"]
        return [a["labels"] for a in alerts if a["state"] == "firing"]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        self.log.close()


def _until(what: str, probe: Callable[[], Any], timeout_s: float = 30) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value:
            return value
        assert time.monotonic() < deadline, f"not within {timeout_s} s: {what}"
        time.sleep(0.5)


class Load:
    """Assessments one after another in a thread until stopped; counts their outcomes."""

    def __init__(self, mesh: Mesh) -> None:
        self.mesh = mesh
        self.stop_event = threading.Event()
        self.degraded: list[list[str]] = []
        self.errors: list[str] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        request = assess_request()
        while not self.stop_event.is_set():
            try:
                self.degraded.append(list(assess(self.mesh, request).degraded))
            except grpc.RpcError as exc:
                self.errors.append(str(exc.code()))
            # Leaves the shared CPUs some room; a few assessments a second are plenty of samples.
            self.stop_event.wait(0.1)

    def __enter__(self) -> Load:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_event.set()
        self.thread.join(timeout=60)


def _value(series: list[dict[str, Any]]) -> float:
    return float(series[0]["value"][1]) if series else float("nan")


def test_real_prometheus_records_the_stages_and_fires_on_faults(
    mesh: Mesh, redis: RedisServer, tmp_path: Path
) -> None:
    prometheus = Prometheus(tmp_path, [f"127.0.0.1:{metrics_port(mesh, s)}" for s in ORDER])
    try:
        prometheus.wait_ready()
        with Load(mesh) as load:
            # Healthy: every stage has a rate and latency quantiles; no alert fires.
            asr_rate = _until(
                "an asr Transcribe rate",
                lambda: prometheus.query(
                    'service_method:muaalem_grpc_requests:rate5m{service="asr",'
                    'method="/muaalem.v1.AsrService/Transcribe"} > 0'
                ),
            )
            assert _value(asr_rate) > 0
            for service in ("gateway", "asr", "alignment", "tajweed"):
                p95 = _until(
                    f"{service} p95",
                    lambda s=service: prometheus.query(
                        "service_method:muaalem_grpc_request_duration_seconds:quantile_rate5m"
                        f'{{service="{s}",quantile="0.95"}} > 0'
                    ),
                )
                assert 0 < _value(p95) < 60
            errors = prometheus.query('service_method:muaalem_grpc_errors:ratio_rate5m{service="gateway"}')
            assert errors and all(float(s["value"][1]) == 0 for s in errors), errors
            hits = _until("cache hits", lambda: prometheus.query("muaalem:reference_cache_hits:ratio_rate5m > 0"))
            assert _value(hits) > 0.5
            # The recording rule needs two scrapes of the batch histogram: wait for it, as above.
            batch = _until(
                "a mean asr batch size", lambda: prometheus.query("queue:muaalem_asr_batch_size:mean_rate5m > 0")
            )
            assert _value(batch) >= 1
            assert not [a for a in prometheus.firing() if a["alertname"].startswith("Muaalem")], prometheus.firing()
            # Every dashboard query is valid PromQL to this Prometheus (query() asserts success).
            for expr in dashboard.expressions():
                prometheus.query(expr)

            # The tajweed stage stops: answers come back without it, and the alert names the stage.
            mesh.processes["tajweed"].terminate()
            mesh.processes["tajweed"].wait(timeout=30)
            fired = _until(
                "MuaalemDegradedAnswers for tajweed",
                lambda: [
                    a
                    for a in prometheus.firing()
                    if a["alertname"] == "MuaalemDegradedAnswers" and a.get("stage") == "tajweed"
                ],
            )
            assert fired[0]["severity"] == "warning"
            assert ["tajweed"] in load.degraded
            share = prometheus.query('stage:muaalem_assessment_degraded:ratio_rate5m{stage="tajweed"}')
            assert _value(share) > rules.DEGRADED_SHARE
            assert _value(prometheus.query(f'up{{instance="127.0.0.1:{metrics_port(mesh, "tajweed")}"}}')) == 0

            # Redis dies: the gateway's breaker opens and the alert fires.
            redis.kill()
            _until(
                "MuaalemRedisCircuitOpen",
                lambda: [a for a in prometheus.firing() if a["alertname"] == "MuaalemRedisCircuitOpen"],
            )
            assert _value(prometheus.query("max(muaalem_reference_cache_breaker_state)")) >= 1
        # Fail-open: neither fault turned into an error for the caller.
        assert not load.errors, load.errors[:5]
    finally:
        prometheus.stop()
        if redis.process is None:
            redis.start()
