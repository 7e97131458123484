"""Security: mTLS between the gateway and the stages, API keys, per-key limits, no way for
input to become code, and Redis AUTH and TLS honoured."""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import grpc
import numpy as np
import pytest
import redis
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common.config import ConfigError
from services.common.pb import common_pb2, gateway_pb2, gateway_pb2_grpc
from services.common.settings import TlsFiles
from services.gateway.auth import hash_key, new_key
from services.gateway.reference.cache import RedisStore, StoreUnavailable
from services.gateway.reference.service import ReferenceService
from services.gateway.reference.settings import ReferenceCacheConfig
from tests.certs import CertSet, _leaf, make_certs
from tests.conftest import REPO, RedisServer, free_port
from tests.reliability import inputs
from tests.reliability.cluster import STAGES, Cluster, Service, client_channel
from tests.reliability.http_client import http_call
from tests.reliability.load import grpc_load
from tests.reliability.proxy import LatencyProxy
from tests.reliability.report import Report
from tests.reliability.scan import scan_source, scan_tree

SERVICES_DIR = REPO / "services"


@dataclass(frozen=True)
class Pki:
    certs: CertSet
    intruder_cert: Path  # a client certificate signed by another CA
    intruder_key: Path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    certs = make_certs(directory)
    other_ca = (certs.other_ca, directory / "other-ca.key")
    cert, key = _leaf(directory, "intruder", other_ca, "DNS:gateway")
    return Pki(certs, cert, key)


def _client_tls(pki: Pki, *, cert: bool = True, intruder: bool = False) -> TlsFiles:
    if intruder:
        return TlsFiles(cert=str(pki.intruder_cert), key=str(pki.intruder_key), ca=str(pki.certs.ca), server_name="")
    if not cert:
        return TlsFiles(cert="", key="", ca=str(pki.certs.ca), server_name="")
    return TlsFiles(
        cert=str(pki.certs.client_cert), key=str(pki.certs.client_key), ca=str(pki.certs.ca), server_name=""
    )


@pytest.fixture(scope="module")
def tls_mesh(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[Cluster]:
    """Stages that require client certificates from the mesh CA; a gateway that presents its
    own (MUAALEM_STAGE_TLS_*) and serves its public port in plaintext."""
    certs = pki.certs
    mesh = Cluster(
        tmp_path_factory.mktemp("tls-mesh"),
        stage_env={
            "MUAALEM_TLS_CERT": str(certs.server_cert),
            "MUAALEM_TLS_KEY": str(certs.server_key),
            "MUAALEM_TLS_CA": str(certs.ca),
        },
        gateway_env={
            "MUAALEM_STAGE_TLS_CA": str(certs.ca),
            "MUAALEM_STAGE_TLS_CERT": str(certs.client_cert),
            "MUAALEM_STAGE_TLS_KEY": str(certs.client_key),
            "MUAALEM_RATE_LIMIT_RPS": "0",
        },
        stage_client_tls=_client_tls(pki),
    )
    mesh.start()
    yield mesh
    mesh.stop()


def _health(address: str, tls: TlsFiles | None) -> str:
    with client_channel(address, tls) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=3)
        except grpc.RpcError as exc:
            return f"{exc.code().name}"
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


def _assess(gateway: Service, cluster: Cluster, timeout: float = 60) -> gateway_pb2.Assessment:
    with client_channel(gateway.address) as channel:
        return (
            gateway_pb2_grpc.GatewayServiceStub(channel)
            .Assess(inputs.assess_request(), metadata=cluster.metadata(), timeout=timeout)
            .assessment
        )


def test_mtls_between_gateway_and_stages(tls_mesh: Cluster, pki: Pki, report: Report) -> None:
    rows = []
    assessment = _assess(tls_mesh.gateway, tls_mesh)
    stages = {s.stage: s.status for s in assessment.stages}
    rows.append(
        [
            "gateway (certificate from the mesh CA)",
            "all three",
            "assessed in full" if not assessment.degraded else str(list(assessment.degraded)),
        ]
    )
    assert not assessment.degraded, [(s.stage, s.message) for s in assessment.stages]
    assert all(stages[s] == common_pb2.STAGE_STATUS_OK for s in STAGES)

    clients = {
        "client with the mesh CA's certificate": _client_tls(pki),
        "plaintext client": None,
        "TLS client without a certificate": _client_tls(pki, cert=False),
        "client certificate from another CA": _client_tls(pki, intruder=True),
    }
    for label, tls in clients.items():
        results = {stage: _health(tls_mesh.stage(stage).address, tls) for stage in STAGES}
        outcome = ", ".join(f"{stage} {status}" for stage, status in results.items())
        rows.append([label, "each stage, grpc.health.v1 Check", outcome])
        expected = "SERVING" if label.startswith("client with the mesh") else "UNAVAILABLE"
        assert set(results.values()) == {expected}, (label, results)

    # Gateways that cannot prove themselves get no stage, and do not fall back to plaintext.
    for label, env in {
        "gateway trusting another CA": {"MUAALEM_STAGE_TLS_CA": str(pki.certs.other_ca)},
        "gateway without TLS settings": {
            "MUAALEM_STAGE_TLS_CA": "",
            "MUAALEM_STAGE_TLS_CERT": "",
            "MUAALEM_STAGE_TLS_KEY": "",
        },
        "gateway with a certificate from another CA": {
            "MUAALEM_STAGE_TLS_CERT": str(pki.intruder_cert),
            "MUAALEM_STAGE_TLS_KEY": str(pki.intruder_key),
        },
    }.items():
        gateway = tls_mesh.new_gateway("gateway-" + label.replace(" ", "-"), env=env)
        gateway.start()
        try:
            gateway.wait_serving(60)
            partial = _assess(gateway, tls_mesh, timeout=20)
            ready = http_call(gateway.http_port, "GET", "/readyz")
        finally:
            gateway.stop()
        stage_status = {s.stage: common_pb2.StageStatus.Name(s.status) for s in partial.stages}
        rows.append([label, "asr (then nothing else runs)", f"asr {stage_status['asr']}; /readyz {ready.status}"])
        assert partial.degraded == ["asr"], stage_status
        assert stage_status["asr"] == "STAGE_STATUS_UNAVAILABLE"
        assert ready.status == 503
    report.add(
        "security",
        "mTLS between the gateway and the stages (certificates made by the test with openssl)",
        ["client", "called", "outcome"],
        rows,
        note="Stages run with MUAALEM_TLS_CERT/KEY and MUAALEM_TLS_CA (client certificates required); the "
        "gateway presents its own with MUAALEM_STAGE_TLS_CERT/KEY/CA.",
    )


KEY_CASES = {
    "no authorization": [],
    "wrong key": [("authorization", "Bearer mua_wrong")],
    "Basic scheme": [("authorization", "Basic bXVhOnB3")],
    "key in another header": [("x-api-key", "KEY")],
    "empty bearer": [("authorization", "Bearer ")],
}


def _live_requests() -> Iterator[gateway_pb2.AssessLiveRequest]:
    """A short live session: the config, then 3 s of the recitation as S16LE."""
    layout = common_pb2.RawPcm(sample_rate_hz=16_000, channels=1, encoding=common_pb2.PCM_ENCODING_S16LE)
    yield gateway_pb2.AssessLiveRequest(config=gateway_pb2.LiveConfig(target=inputs.target(), pcm=layout))
    pcm = (inputs.recitation()[: 3 * 16_000] * 32767).astype("<i2").tobytes()
    for offset in range(0, len(pcm), 32_000):
        yield gateway_pb2.AssessLiveRequest(audio=pcm[offset : offset + 32_000])


def test_api_keys_guard_every_gateway_call(cluster: Cluster, report: Report) -> None:
    rows = []
    with client_channel(cluster.gateway.address) as channel:
        stub = gateway_pb2_grpc.GatewayServiceStub(channel)
        calls = {
            "Assess": lambda md: stub.Assess(inputs.assess_request(), metadata=md, timeout=30),
            "AssessStream": lambda md: stub.AssessStream(inputs.pcm_stream(9), metadata=md, timeout=30),
            "GetReference": lambda md: stub.GetReference(
                gateway_pb2.GetReferenceRequest(target=inputs.target()), metadata=md, timeout=30
            ),
            "GetServerInfo": lambda md: stub.GetServerInfo(gateway_pb2.GetServerInfoRequest(), metadata=md, timeout=30),
            "AssessLive": lambda md: list(stub.AssessLive(_live_requests(), metadata=md, timeout=60)),
        }
        for case, template in KEY_CASES.items():
            metadata = [(k, v.replace("KEY", cluster.api_key)) for k, v in template]
            codes = {}
            for name, call in calls.items():
                try:
                    call(metadata)
                    codes[name] = "OK"
                except grpc.RpcError as exc:
                    codes[name] = exc.code().name
            rows.append([f"gRPC, {case}", ", ".join(f"{n} {c}" for n, c in codes.items())])
            assert set(codes.values()) == {"UNAUTHENTICATED"}, (case, codes)
        for call in calls.values():
            call(cluster.metadata())  # the valid key passes every one
        # Probes need no key: health and reflection carry nothing of a user's.
        assert _health(cluster.gateway.address, None) == "SERVING"
    for path, method in (("/v1/assess", "POST"), ("/v1/reference/1/1", "GET"), ("/v1/info", "GET")):
        body = b"{}" if method == "POST" else None
        statuses = [
            http_call(cluster.gateway.http_port, method, path, body, authorization=header).status
            for header in ("", "Bearer mua_wrong", "Basic bXVhOnB3")
        ]
        rows.append([f"HTTP {method} {path}, no / wrong / Basic key", ", ".join(map(str, statuses))])
        assert statuses == [401, 401, 401]
    assert (
        http_call(cluster.gateway.http_port, "GET", "/v1/info", authorization=f"Bearer {cluster.api_key}").status == 200
    )
    assert cluster.keys_file is not None
    stored = cluster.keys_file.read_text()
    assert cluster.api_key not in stored and hash_key(cluster.api_key) in stored
    rows.append(["keys file", "holds sha256 digests only (the key itself is not in it)"])
    report.add("security", "API keys at the gateway", ["call", "outcome"], rows)


@dataclass
class Limited:
    gateway: Service
    keys: dict[str, str]  # name -> key
    redis: RedisServer

    def metadata(self, name: str) -> list[tuple[str, str]]:
        return [("authorization", f"Bearer {self.keys[name]}")]


@pytest.fixture(scope="module")
def limited(cluster: Cluster, mesh_redis: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Limited]:
    """A gateway with tight limits; asr behind a 0.5 s proxy so that assessments stay in flight."""
    keys = {name: new_key() for name in ("rate", "concurrency", "sizes", "other")}
    keys_file = tmp_path_factory.mktemp("limited") / "keys"
    keys_file.write_text("".join(f"{name}:{hash_key(key)}\n" for name, key in keys.items()))
    proxy = LatencyProxy("127.0.0.1", cluster.stage("asr").port, latency_s=0.5).start()
    gateway = cluster.new_gateway(
        "gateway-limited",
        targets={"asr": proxy.address},
        MUAALEM_API_KEYS_FILE=str(keys_file),
        MUAALEM_RATE_LIMIT_RPS="1",
        MUAALEM_RATE_LIMIT_BURST="6",
        MUAALEM_MAX_CONCURRENT_PER_KEY="2",
        MUAALEM_MAX_AUDIO_S="10",
        MUAALEM_MAX_STREAM_AUDIO_S="30",
        MUAALEM_MAX_STREAM_MB="2",
        MUAALEM_MAX_HTTP_BODY_MB="1",
        MUAALEM_MAX_MESSAGE_MB="2",
    )
    gateway.start()
    gateway.wait_serving(60)
    yield Limited(gateway, keys, mesh_redis)
    gateway.stop()
    proxy.stop()


def _code(call: object) -> tuple[str, str]:
    try:
        call()  # type: ignore[operator]
    except grpc.RpcError as exc:
        return exc.code().name, exc.details() or ""
    return "OK", ""


async def test_per_key_concurrency_limit(limited: Limited, report: Report) -> None:
    outcomes = await grpc_load(
        limited.gateway.address,
        lambda client, sequence: inputs.assess_request(),
        clients=4,
        per_client=1,
        metadata=limited.metadata("concurrency"),
        timeout_s=30,
    )
    other = await grpc_load(
        limited.gateway.address,
        lambda client, sequence: inputs.assess_request(),
        clients=1,
        per_client=1,
        metadata=limited.metadata("other"),
        timeout_s=30,
    )
    codes = sorted(o.code for o in outcomes)
    refused = [o.message for o in outcomes if o.code != "OK"]
    report.add(
        "security",
        "Per-key concurrency (MUAALEM_MAX_CONCURRENT_PER_KEY=2; each assessment held ~1 s by a slow asr)",
        ["sent at once", "outcomes", "refusal message", "another key meanwhile"],
        [["4 with one key", ", ".join(codes), refused[0] if refused else "-", other[0].code]],
    )
    assert codes == ["OK", "OK", "RESOURCE_EXHAUSTED", "RESOURCE_EXHAUSTED"]
    assert all("already has 2 assessments in flight" in m for m in refused)
    assert other[0].code == "OK"


def test_per_key_rate_limit_is_shared_through_redis(limited: Limited, report: Report) -> None:
    """Burst 6 at 1 per second: the 7th call in a row is refused (gRPC and HTTP), another key is
    not, a second later one more passes; the bucket lives in Redis (shared by replicas)."""
    cheap = gateway_pb2.AssessRequest()  # refused as invalid after it is counted: fast
    rows = []
    with client_channel(limited.gateway.address) as channel:
        stub = gateway_pb2_grpc.GatewayServiceStub(channel)
        results = [_code(lambda: stub.Assess(cheap, metadata=limited.metadata("rate"), timeout=10)) for _ in range(7)]
        http = http_call(
            limited.gateway.http_port, "POST", "/v1/assess", b"{}", authorization=f"Bearer {limited.keys['rate']}"
        )
        other = _code(lambda: stub.Assess(cheap, metadata=limited.metadata("other"), timeout=10))
        time.sleep(1.1)
        later = _code(lambda: stub.Assess(cheap, metadata=limited.metadata("rate"), timeout=10))
    codes = [code for code, _ in results]
    rows.append(["7 calls in a row, one key", ", ".join(codes)])
    rows.append(["the 7th's message", results[-1][1]])
    rows.append(["then over HTTP", f"{http.status}: {http.message}"])
    rows.append(["another key at the same moment", other[0]])
    rows.append(["the first key 1.1 s later", later[0]])
    bucket = cast("dict[bytes, bytes]", redis.Redis.from_url(limited.redis.url).hgetall("muaalem:ratelimit:rate"))
    rows.append(
        ["Redis key muaalem:ratelimit:rate", ", ".join(f"{k.decode()}={v.decode()[:8]}" for k, v in bucket.items())]
    )
    report.add(
        "security",
        "Per-key rate limit (MUAALEM_RATE_LIMIT_RPS=1, MUAALEM_RATE_LIMIT_BURST=6)",
        ["what", "outcome"],
        rows,
    )
    assert codes == ["INVALID_ARGUMENT"] * 6 + ["RESOURCE_EXHAUSTED"]
    assert "rate limit" in results[-1][1]
    assert http.status == 429 and "rate limit" in http.message
    assert other[0] == "INVALID_ARGUMENT"
    assert later[0] == "INVALID_ARGUMENT"
    assert set(bucket) == {b"tokens", b"ts"}


def test_audio_length_and_size_limits(limited: Limited, report: Report) -> None:
    rows = []
    eleven_seconds = inputs.wav(np.resize(inputs.recitation(), 11 * 16_000), 16_000)
    with client_channel(limited.gateway.address) as channel:
        stub = gateway_pb2_grpc.GatewayServiceStub(channel)
        md = limited.metadata("sizes")
        checks = {
            "11 s unary (MUAALEM_MAX_AUDIO_S=10)": (
                lambda: stub.Assess(inputs.assess_request(eleven_seconds), metadata=md, timeout=30),
                "INVALID_ARGUMENT",
                "over the limit of 10 s",
            ),
            "31 s streamed as PCM (MUAALEM_MAX_STREAM_AUDIO_S=30)": (
                lambda: stub.AssessStream(inputs.pcm_stream(31), metadata=md, timeout=30),
                "INVALID_ARGUMENT",
                "passed 30 s",
            ),
            "3 MiB streamed as a file (MUAALEM_MAX_STREAM_MB=2)": (
                lambda: stub.AssessStream(inputs.wav_file_stream(16, 48_000, 2), metadata=md, timeout=30),
                "RESOURCE_EXHAUSTED",
                "passed 2 mib",
            ),
            "3 MB message (MUAALEM_MAX_MESSAGE_MB=2)": (
                lambda: stub.Assess(
                    inputs.assess_request(
                        inputs.wav(np.repeat(inputs.resampled(48_000)[: 48_000 * 8, None], 2, axis=1), 48_000, "FLOAT")
                    ),
                    metadata=md,
                    timeout=30,
                ),
                "RESOURCE_EXHAUSTED",
                "larger than max",
            ),
        }
        for label, (call, expected, words) in checks.items():
            code, message = _code(call)
            rows.append([label, code, message[:120]])
            assert code == expected and words in message.lower(), (label, code, message)
    body = b"{" + b" " * (3 << 19) + b"}"
    reply = http_call(
        limited.gateway.http_port, "POST", "/v1/assess", body, authorization=f"Bearer {limited.keys['sizes']}"
    )
    rows.append(["1.5 MiB HTTP body (MUAALEM_MAX_HTTP_BODY_MB=1)", str(reply.status), reply.message[:120]])
    assert reply.status == 413
    report.add(
        "security", "Audio length and size limits (a gateway configured tight)", ["input", "status", "message"], rows
    )


def test_no_pickle_eval_or_unsafe_loading_in_the_services(report: Report) -> None:
    # The scanner first proves it finds what it looks for, and passes what is safe.
    planted = """
import pickle, yaml, torch, subprocess, os
import numpy as np
from marshal import loads
pickle.loads(b"")
eval("1")
exec("x = 1")
yaml.load(text)
yaml.load(text, Loader=yaml.FullLoader)
torch.load("w.pt")
torch.load("w.pt", weights_only=False)
np.load("a.npy", allow_pickle=True)
subprocess.run("ls", shell=True)
os.system("ls")
"""
    safe = """
import yaml, torch
import numpy as np
model.eval()
yaml.safe_load(text)
yaml.load(text, Loader=yaml.SafeLoader)
torch.load("w.pt", weights_only=True)
np.load("a.npy")
"""
    found = scan_source(planted)
    # Every line but the numpy import is one finding.
    assert [f.line for f in found] == [2, *range(4, 15)], "\n".join(map(str, found))
    assert scan_source(safe) == []
    files, findings = scan_tree(SERVICES_DIR)
    report.add(
        "security",
        "No way for input to become code: AST scan of services/",
        ["files scanned", "findings"],
        [[str(files), "; ".join(map(str, findings)) or "none"]],
        note="Flagged if present: pickle/cPickle/dill/cloudpickle/joblib/shelve/marshal use, the builtins "
        "eval/exec/compile, yaml.load without a safe Loader, torch.load without weights_only=True, "
        "numpy.load(allow_pickle=True), subprocess with shell=True, os.system/os.popen. Weights load through "
        "safetensors; cached references are zlib-compressed protobuf behind a magic header.",
    )
    assert files > 50
    assert findings == [], "\n".join(map(str, findings))


def test_a_pickle_planted_in_the_cache_is_never_unpickled(
    cluster: Cluster, mesh_redis: RedisServer, tmp_path: Path, report: Report
) -> None:
    """Whoever can write to Redis cannot make the gateway run code: a value that would run a
    command when unpickled is read as a bad value, recomputed and overwritten."""
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return os.system, (f"touch {marker}",)

    request = gateway_pb2.GetReferenceRequest(target=inputs.target(113, 1, None))
    with client_channel(cluster.gateway.address) as channel:
        stub = gateway_pb2_grpc.GatewayServiceStub(channel)
        first = stub.GetReference(request, metadata=cluster.metadata(), timeout=30)
        store = redis.Redis.from_url(mesh_redis.url)
        for payload in (pickle.dumps(Exploit()), b"MQR\x01" + pickle.dumps(Exploit())):
            store.set(first.cache_key, payload)
            again = stub.GetReference(request, metadata=cluster.metadata(), timeout=30)
            assert not again.cache_hit
            assert again.reference == first.reference
            stored = cast("bytes | None", store.get(first.cache_key))
            assert stored is not None and stored.startswith(b"MQR\x01") and b"posix" not in stored
    assert not marker.exists()
    report.add(
        "security",
        "A pickle planted in the reference cache",
        ["planted under", "outcome"],
        [[first.cache_key, "read as an invalid value, recomputed, overwritten; the command in it never ran"]],
    )


class TlsRedis:
    """redis-server with TLS only (client certificates required) and a password."""

    def __init__(self, workdir: Path, certs: CertSet, password: str) -> None:
        binary = shutil.which("redis-server")
        assert binary is not None
        self.port = free_port()
        self.password = password
        self.certs = certs
        self.process = subprocess.Popen(
            [
                binary,
                "--port", "0",
                "--tls-port", str(self.port),
                "--bind", "127.0.0.1",
                "--tls-cert-file", str(certs.server_cert),
                "--tls-key-file", str(certs.server_key),
                "--tls-ca-cert-file", str(certs.ca),
                "--tls-auth-clients", "yes",
                "--requirepass", password,
                "--save", "",
                "--appendonly", "no",
                "--dir", str(workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while True:
            try:
                if self.client().ping():
                    return
            except redis.RedisError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise
                time.sleep(0.05)

    def client(self) -> redis.Redis:
        return redis.Redis(
            host="127.0.0.1",
            port=self.port,
            password=self.password,
            ssl=True,
            ssl_ca_certs=str(self.certs.ca),
            ssl_certfile=str(self.certs.client_cert),
            ssl_keyfile=str(self.certs.client_key),
            socket_timeout=2,
        )

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[TlsRedis]:
    server = TlsRedis(tmp_path_factory.mktemp("tls-redis"), pki.certs, password="s3cret-Pa55")
    yield server
    server.stop()


REDIS_TIMEOUT_MS = "1000"  # a TLS handshake on a busy 2-core machine can pass the 40 ms default


def _redis_env(server: TlsRedis, **overrides: str) -> dict[str, str]:
    certs = server.certs
    env = {
        "MUAALEM_REDIS_URL": f"rediss://127.0.0.1:{server.port}/0",
        "MUAALEM_REDIS_PASSWORD": server.password,
        "MUAALEM_REDIS_TLS_CA": str(certs.ca),
        "MUAALEM_REDIS_TLS_CERT": str(certs.client_cert),
        "MUAALEM_REDIS_TLS_KEY": str(certs.client_key),
        "MUAALEM_REDIS_TIMEOUT_MS": REDIS_TIMEOUT_MS,
    }
    env.update(overrides)
    return {k: v for k, v in env.items() if v != "-"}


async def _store_outcome(env: dict[str, str]) -> str:
    """What one read of the cache store does with these settings: OK, or the failure."""
    service = ReferenceService.from_config(ReferenceCacheConfig.from_env(env))
    try:
        assert isinstance(service.store, RedisStore)
        await service.store.get("probe")
        return "OK"
    except StoreUnavailable as exc:
        return str(exc)
    finally:
        await service.close()


async def test_redis_auth_and_tls_settings_are_honoured(tls_redis: TlsRedis, report: Report) -> None:
    cases = {
        "rediss://, password, CA, client certificate": ({}, "OK"),
        "wrong password": ({"MUAALEM_REDIS_PASSWORD": "guess"}, "invalid username-password"),
        "no password": ({"MUAALEM_REDIS_PASSWORD": "-"}, "AuthenticationError"),
        "no client certificate": ({"MUAALEM_REDIS_TLS_CERT": "-", "MUAALEM_REDIS_TLS_KEY": "-"}, "ConnectionError"),
        "CA that did not sign the server": (
            {"MUAALEM_REDIS_TLS_CA": str(tls_redis.certs.other_ca)},
            "certificate verify failed",
        ),
    }
    rows = []
    for label, (overrides, expected) in cases.items():
        outcome = await _store_outcome(_redis_env(tls_redis, **overrides))
        rows.append([label, outcome[:140]])
        assert expected in outcome, (label, outcome)
        assert (outcome == "OK") == (expected == "OK"), (label, outcome)
    with pytest.raises(ConfigError, match="not rediss://"):
        ReferenceService.from_env(_redis_env(tls_redis, MUAALEM_REDIS_URL=f"redis://127.0.0.1:{tls_redis.port}/0"))
    rows.append(["TLS files with a redis:// URL", "refused at start-up (ConfigError: not rediss://)"])
    plain = await _store_outcome(
        {
            "MUAALEM_REDIS_URL": f"redis://:{tls_redis.password}@127.0.0.1:{tls_redis.port}/0",
            "MUAALEM_REDIS_TIMEOUT_MS": REDIS_TIMEOUT_MS,
        }
    )
    rows.append(["plaintext client on the TLS port", plain[:140]])
    assert plain != "OK"
    report.add(
        "security",
        "Redis AUTH and TLS options (redis-server with --tls-port, --tls-auth-clients yes, --requirepass)",
        ["gateway cache settings", "a cache read"],
        rows,
    )


def test_gateway_process_uses_redis_over_tls_with_auth(cluster: Cluster, tls_redis: TlsRedis) -> None:
    """The whole path in a gateway process: references land in the TLS Redis, and come back."""
    gateway = cluster.new_gateway("gateway-tls-redis", env=_redis_env(tls_redis))
    gateway.start()
    try:
        gateway.wait_serving(60)
        request = gateway_pb2.GetReferenceRequest(target=inputs.target(1, 3, None))
        with client_channel(gateway.address) as channel:
            stub = gateway_pb2_grpc.GatewayServiceStub(channel)
            info = stub.GetServerInfo(gateway_pb2.GetServerInfoRequest(), metadata=cluster.metadata(), timeout=10)
            first = stub.GetReference(request, metadata=cluster.metadata(), timeout=30)
            second = stub.GetReference(request, metadata=cluster.metadata(), timeout=30)
    finally:
        gateway.stop()
    assert info.cache_backend == "redis"
    assert (first.cache_hit, second.cache_hit) == (False, True)
    assert tls_redis.client().exists(first.cache_key) == 1
