"""Security: API keys on every gateway call, per-key concurrency and rate limits (shared through
Redis), audio length and size limits."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import cast

import grpc
import numpy as np
import pytest
import redis

from services.common.pb import common_pb2, gateway_pb2, gateway_pb2_grpc
from services.gateway.auth import hash_key, new_key
from tests.conftest import RedisServer
from tests.polling import wait_until
from tests.reliability import inputs
from tests.reliability.cluster import Cluster, Service, client_channel, health
from tests.reliability.http_client import http_call
from tests.reliability.load import grpc_load
from tests.reliability.proxy import LatencyProxy
from tests.reliability.report import Report

# Each run brings up a mesh and drives it for a while: part of `make test`, not `make test-fast`.
pytestmark = pytest.mark.slow


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
            "AssessLive": lambda md: list(stub.AssessLive(_live_requests(), metadata=md, timeout=60)),
            "GetReference": lambda md: stub.GetReference(
                gateway_pb2.GetReferenceRequest(target=inputs.target()), metadata=md, timeout=30
            ),
            "GetServerInfo": lambda md: stub.GetServerInfo(gateway_pb2.GetServerInfoRequest(), metadata=md, timeout=30),
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
        assert health(cluster.gateway.address, None, timeout_s=3) == "SERVING"
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
        clients=6,
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
        "Per-key concurrency (MUAALEM_MAX_CONCURRENT_PER_KEY=2, as many may wait for a place; each "
        "assessment held ~1 s by a slow asr)",
        ["sent at once", "outcomes", "refusal message", "another key meanwhile"],
        [["6 with one key", ", ".join(codes), refused[0] if refused else "-", other[0].code]],
    )
    # Two in flight, two waiting in line (then assessed), two refused: the line is full too.
    assert codes == ["OK"] * 4 + ["RESOURCE_EXHAUSTED"] * 2
    assert all("already has 2 assessments in flight and 2 waiting" in m for m in refused)
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
        # The bucket refills at 1 token/s: poll (refusals take no token) until one more passes.
        refill_started = time.monotonic()

        def passes() -> tuple[str, str] | None:
            outcome = _code(lambda: stub.Assess(cheap, metadata=limited.metadata("rate"), timeout=10))
            return outcome if outcome[0] != "RESOURCE_EXHAUSTED" else None

        later = wait_until(passes, timeout_s=5, interval_s=0.1, what="a token back in the bucket")
        refilled_s = time.monotonic() - refill_started
    codes = [code for code, _ in results]
    rows.append(["7 calls in a row, one key", ", ".join(codes)])
    rows.append(["the 7th's message", results[-1][1]])
    rows.append(["then over HTTP", f"{http.status}: {http.message}"])
    rows.append(["another key at the same moment", other[0]])
    rows.append([f"the first key {refilled_s:.1f} s later", later[0]])
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
