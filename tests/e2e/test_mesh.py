"""End to end: the four services as separate processes (the launcher `make serve` uses), a tiny
development checkpoint, real gRPC and HTTP clients."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from services.client.options import build_request
from services.common.pb import common_pb2, gateway_pb2, gateway_pb2_grpc
from services.launcher import Mesh
from tests.conftest import AUDIO_DIR, FIXTURES_DIR, free_port, launcher_env
from tests.polling import wait_until

pytestmark = pytest.mark.slow

MOSHAF = {"madd_monfasel_len": 2, "madd_mottasel_len": 4, "madd_mottasel_waqf": 4, "madd_aared_len": 2}
REQUEST_ID = "e2e-request-id-0001"
# Values that differ between two runs of the same request.
VOLATILE = {"requestId", "totalMs", "durationMs", "timings", "cacheHit", "queueMs"}


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    root = tmp_path_factory.mktemp("mesh")
    env = launcher_env(root, {"MUAALEM_GATEWAY_HTTP_PORT": str(free_port())})
    started = time.monotonic()
    instance = Mesh(env=env, log_dir=root / "logs", start_timeout_s=60)
    instance.start()
    instance.startup_s = time.monotonic() - started  # type: ignore[attr-defined]
    yield instance
    instance.stop()


def _metadata(mesh: Mesh, request_id: str | None = None) -> list[tuple[str, str]]:
    metadata = [("authorization", f"Bearer {mesh.api_key}")]
    if request_id:
        metadata.append(("x-request-id", request_id))
    return metadata


def _request(**options: Any) -> gateway_pb2.AssessRequest:
    request = build_request(
        (AUDIO_DIR / "test.wav").read_bytes(),
        surah=8,
        ayah=75,
        words=(17, 9),
        moshaf=MOSHAF,
        name_hint="test.wav",
        run_rules_on_mismatch=True,
    )
    for key, value in options.items():
        setattr(request.options, key, value)
    return request


def test_all_four_services_serve_within_60_seconds(mesh: Mesh) -> None:
    assert mesh.startup_s < 60  # type: ignore[attr-defined]


def test_reflection_lets_a_foreign_client_discover_and_call(mesh: Mesh) -> None:
    """A client with none of our generated code: it learns the API by reflection and calls it."""
    with grpc.insecure_channel(mesh.address("gateway")) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)

        def ask(**kwargs: Any) -> reflection_pb2.ServerReflectionResponse:
            return next(iter(stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(**kwargs)]))))

        services = {s.name for s in ask(list_services="").list_services_response.service}
        assert "muaalem.v1.GatewayService" in services
        pool = descriptor_pool.DescriptorPool()
        files = ask(file_containing_symbol="muaalem.v1.GatewayService").file_descriptor_response.file_descriptor_proto
        pending = [descriptor_pb2.FileDescriptorProto.FromString(raw) for raw in files]
        added: set[str] = set()
        while pending:
            for proto in list(pending):
                if all(dep in added for dep in proto.dependency):
                    pool.Add(proto)
                    added.add(proto.name)
                    pending.remove(proto)
        method = pool.FindServiceByName("muaalem.v1.GatewayService").FindMethodByName("GetReference")
        request_class = message_factory.GetMessageClass(method.input_type)
        response_class = message_factory.GetMessageClass(method.output_type)
        request = json_format.ParseDict({"target": {"ayah": {"surah": 1, "ayah": 2}}}, request_class())
        call = channel.unary_unary(
            "/muaalem.v1.GatewayService/GetReference",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=response_class.FromString,
        )
        reply = call(request, metadata=_metadata(mesh), timeout=30)
        assert json_format.MessageToDict(reply)["reference"]["phonemes"]

    for stage in ("asr", "alignment", "tajweed"):
        with grpc.insecure_channel(mesh.address(stage)) as channel:
            stub = reflection_pb2_grpc.ServerReflectionStub(channel)
            reply = next(
                iter(stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")])))
            )
            names = {s.name for s in reply.list_services_response.service}
            assert f"muaalem.v1.{stage.capitalize()}Service" in names, names


def test_assess_sample_gives_spans_findings_and_timings_for_every_stage(mesh: Mesh) -> None:
    with grpc.insecure_channel(mesh.address("gateway")) as channel:
        stub = gateway_pb2_grpc.GatewayServiceStub(channel)
        reply = stub.Assess(
            _request(include_correct=True, include_details=True),
            metadata=_metadata(mesh, REQUEST_ID),
            timeout=120,
        )
    assessment = reply.assessment
    reference = json.loads((FIXTURES_DIR / "test_wav_real_model_output.json").read_text())["reference"]
    assert assessment.reference.phonemes == reference["phonemes"]
    assert assessment.model_version.dev_weights
    assert not assessment.degraded, [(s.stage, s.message) for s in assessment.stages]
    assert len(assessment.words) == 9
    for word in assessment.words:
        assert 0 <= word.time_span.start_s < word.time_span.end_s <= assessment.audio_duration_s + 1e-6, word
    stages = {s.stage: s for s in assessment.stages}
    for name in ("audio", "reference", "asr", "energy", "verification", "alignment", "tajweed", "fusion"):
        assert stages[name].status == common_pb2.STAGE_STATUS_OK, (name, stages[name].message)
    assert stages["asr"].timings and stages["alignment"].timings and stages["tajweed"].timings
    sources = {f.source for f in assessment.findings}
    for validator in ("madd", "shadda", "ghunnah", "waqf"):
        assert validator in sources, sources
    # The passage has no qalqalah letter: a passage that has one shows that validator too.
    qalqalah_request = _request(include_correct=True)
    qalqalah_request.target.CopyFrom(common_pb2.Target(ayah=common_pb2.AyahTarget(surah=112, ayah=1)))
    with grpc.insecure_channel(mesh.address("gateway")) as channel:
        stub = gateway_pb2_grpc.GatewayServiceStub(channel)
        other = stub.Assess(qalqalah_request, metadata=_metadata(mesh), timeout=120).assessment
    assert "qalqalah" in {f.source for f in other.findings}
    assert "explain_error" in sources | {f.source for f in other.findings}


def test_request_id_appears_in_every_stage_log(mesh: Mesh) -> None:
    with grpc.insecure_channel(mesh.address("gateway")) as channel:
        gateway_pb2_grpc.GatewayServiceStub(channel).Assess(
            _request(), metadata=_metadata(mesh, REQUEST_ID + "-logs"), timeout=120
        )
    assert mesh.log_dir is not None
    log_dir = mesh.log_dir

    def tagged(service: str) -> list[dict[str, Any]]:
        lines = [
            json.loads(line) for line in (log_dir / f"{service}.log").read_text().splitlines() if line.startswith("{")
        ]
        return [line for line in lines if line.get("request_id") == REQUEST_ID + "-logs"]

    for service in ("gateway", "asr", "alignment", "tajweed"):
        lines = wait_until(lambda: tagged(service), what=f"{service}: a log line with the request id")  # noqa: B023
        assert all(line["service"] == service for line in lines)


def test_http_gives_the_same_json_as_grpc(mesh: Mesh) -> None:
    request = _request(include_details=True)
    with grpc.insecure_channel(mesh.address("gateway")) as channel:
        grpc_reply = gateway_pb2_grpc.GatewayServiceStub(channel).Assess(request, metadata=_metadata(mesh), timeout=120)
    body = json.dumps(json_format.MessageToDict(request)).encode()
    http = urllib.request.Request(
        f"http://127.0.0.1:{mesh.service_env()['MUAALEM_GATEWAY_HTTP_PORT']}/v1/assess",
        data=body,
        headers={"content-type": "application/json", "authorization": f"Bearer {mesh.api_key}"},
    )
    with urllib.request.urlopen(http, timeout=120) as response:
        http_reply = json.loads(response.read())
    assert _strip(http_reply) == _strip(json_format.MessageToDict(grpc_reply))


def test_metrics_endpoints_answer(mesh: Mesh) -> None:
    env: dict[str, str] = mesh.service_env()
    for name in ("gateway", "asr", "alignment", "tajweed", "prosody"):
        port = env[f"MUAALEM_{name.upper()}_METRICS_PORT"]
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
        assert "muaalem_grpc_requests_total" in body


def _http(mesh: Mesh, path: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> Any:
    port = mesh.service_env()["MUAALEM_GATEWAY_HTTP_PORT"]
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, headers=headers or {})
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


def test_server_info_and_readiness_name_every_stage_the_gateway_calls(mesh: Mesh) -> None:
    with grpc.insecure_channel(mesh.address("gateway")) as channel:
        info = gateway_pb2_grpc.GatewayServiceStub(channel).GetServerInfo(
            gateway_pb2.GetServerInfoRequest(), metadata=_metadata(mesh), timeout=30
        )
    health = {stage.stage: stage.health for stage in info.stages}
    assert health == {"asr": "SERVING", "alignment": "SERVING", "tajweed": "SERVING", "prosody": "SERVING"}
    prosody = next(stage for stage in info.stages if stage.stage == "prosody")
    assert prosody.address.endswith(mesh.service_env()["MUAALEM_PROSODY_PORT"])
    assert set(_http(mesh, "/readyz")["stages"]) == set(health)
    # The degraded-stage series exists for every registered stage, prosody included, before any failure.
    port = mesh.service_env()["MUAALEM_GATEWAY_METRICS_PORT"]
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    assert 'muaalem_assessment_degraded_stages_total{stage="prosody"}' in body


def test_http_multipart_upload_reference_and_openapi(mesh: Mesh) -> None:
    boundary = "muaalem-boundary"
    audio = (AUDIO_DIR / "test.mp3").read_bytes()
    fields = {
        "surah": "8",
        "ayah": "75",
        "words": "17:9",
        "request": json.dumps({"options": {"runRulesOnMismatch": True}}),
    }
    body = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    )
    body += (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="audio"; filename="test.mp3"\r\n'
            "Content-Type: audio/mpeg\r\n\r\n"
        ).encode()
        + audio
        + f"\r\n--{boundary}--\r\n".encode()
    )
    headers = {"content-type": f"multipart/form-data; boundary={boundary}", "authorization": f"Bearer {mesh.api_key}"}
    reply = _http(mesh, "/v1/assess", body, headers)["assessment"]
    assert len(reply["words"]) == 9
    assert {s["stage"] for s in reply["stages"]} >= {"asr", "alignment", "tajweed"}
    assert abs(reply["audioDurationS"] - 8.77) < 0.1

    reference = _http(mesh, "/v1/reference/1/2?madd_aared_len=6", headers={"authorization": f"Bearer {mesh.api_key}"})
    assert reference["reference"]["phonemes"].endswith("ۦۦۦۦۦۦن")  # 'arid madd of 6 at the stop
    assert reference["cacheKey"].endswith(":1:2:m" + reference["cacheKey"].rsplit(":m", 1)[-1])

    port = mesh.service_env()["MUAALEM_GATEWAY_HTTP_PORT"]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/docs", timeout=30) as response:
        assert b"/openapi.json" in response.read()
    document = _http(mesh, "/openapi.json")
    assert document["openapi"].startswith("3.")
    assert "AssessRequest" in document["components"]["schemas"]
    assert "/v1/assess" in document["paths"]


def test_client_streaming_assess(mesh: Mesh) -> None:
    request = _request()
    audio = request.audio.content
    request.audio.content = b""

    def parts() -> Iterator[gateway_pb2.AssessStreamRequest]:
        yield gateway_pb2.AssessStreamRequest(header=request)
        for offset in range(0, len(audio), 64 * 1024):
            yield gateway_pb2.AssessStreamRequest(chunk=audio[offset : offset + 64 * 1024])

    with grpc.insecure_channel(mesh.address("gateway")) as channel:
        reply = gateway_pb2_grpc.GatewayServiceStub(channel).AssessStream(
            parts(), metadata=_metadata(mesh), timeout=120
        )
    assert not reply.assessment.degraded
    assert len(reply.assessment.words) == 9


def _cli(
    mesh: Mesh,
    *flags: str,
    api_key: str | None = None,
    timeout: float = 120,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """`muaalem assess test.wav --surah 8 --ayah 75 FLAGS` against the mesh's gateway."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "services.cli",
            "assess",
            str(AUDIO_DIR / "test.wav"),
            "--surah",
            "8",
            "--ayah",
            "75",
            *flags,
            "--address",
            mesh.address("gateway"),
            "--api-key",
            mesh.api_key if api_key is None else api_key,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=env,
    )


def test_cli_assess_prints_json_for_machines(mesh: Mesh) -> None:
    result = _cli(mesh, "--words", "17:9", "--moshaf", "madd_monfasel_len=2", "--run-rules-on-mismatch", "--json")
    assert result.returncode == 0, result.stderr
    assessment = json.loads(result.stdout)
    assert len(assessment["words"]) == 9
    assert assessment["modelVersion"]["devWeights"] is True
    text = _cli(mesh, "--words", "17:9", env={**os.environ, "COLUMNS": "160"})
    assert text.returncode == 0, text.stderr
    assert "DEVELOPMENT WEIGHTS" in text.stdout and "stages" in text.stdout
    wrong_key = _cli(mesh, api_key="mua_wrong", timeout=60)
    assert wrong_key.returncode == 1 and "UNAUTHENTICATED" in wrong_key.stderr


def test_the_default_flow_stops_at_a_content_mismatch(mesh: Mesh) -> None:
    """Without run_rules_on_mismatch (the default), a recitation that is not the target is
    reported as such and not judged. The tiny random-weight model's decode matches nothing."""
    with grpc.insecure_channel(mesh.address("gateway")) as channel:
        reply = gateway_pb2_grpc.GatewayServiceStub(channel).Assess(
            _request(run_rules_on_mismatch=False), metadata=_metadata(mesh), timeout=60
        )
    assessment = reply.assessment
    assert assessment.content.status == gateway_pb2.CONTENT_STATUS_MISMATCH
    assert assessment.content.similarity < assessment.content.threshold
    stages = {s.stage: s for s in assessment.stages}
    for skipped in ("alignment", "tajweed"):
        assert stages[skipped].status == common_pb2.STAGE_STATUS_SKIPPED
        assert stages[skipped].message == "content mismatch"
    assert stages["asr"].status == common_pb2.STAGE_STATUS_OK
    assert list(assessment.degraded) == []
    assert not assessment.findings and not assessment.errors
    assert len(assessment.words) == 9
    assert all(w.verdict == gateway_pb2.WORD_VERDICT_NOT_ASSESSED for w in assessment.words)


# Stops a stage: kept last so the tests above see the whole mesh.
def test_tajweed_down_gives_a_partial_answer_within_the_deadline(mesh: Mesh) -> None:
    tajweed = mesh.processes["tajweed"]
    tajweed.terminate()
    tajweed.wait(timeout=30)
    try:
        deadline_s = 30.0
        started = time.monotonic()
        with grpc.insecure_channel(mesh.address("gateway")) as channel:
            reply = gateway_pb2_grpc.GatewayServiceStub(channel).Assess(
                _request(), metadata=_metadata(mesh), timeout=deadline_s
            )
        elapsed = time.monotonic() - started
        assessment = reply.assessment
        assert elapsed < deadline_s
        assert "tajweed" in assessment.degraded
        stages = {s.stage: s for s in assessment.stages}
        assert stages["tajweed"].status == common_pb2.STAGE_STATUS_UNAVAILABLE
        assert stages["alignment"].status == common_pb2.STAGE_STATUS_OK
        assert all(w.time_span.end_s > 0 for w in assessment.words)
        assert all(w.verdict != gateway_pb2.WORD_VERDICT_UNSPECIFIED for w in assessment.words)
    finally:
        mesh.processes["tajweed"] = _restart(mesh, "tajweed")


def _restart(mesh: Mesh, name: str) -> Any:
    assert mesh.log_dir is not None
    log = (mesh.log_dir / f"{name}.restarted.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", f"services.{name}"], env=mesh.service_env(), stdout=log, stderr=log
    )
    deadline = time.monotonic() + 60
    from services.common.healthcheck import check

    while check(mesh.address(name), timeout_s=1.0) != "SERVING":
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.2)
    # SERVING is the stage's view; the gateway's channel may still be backing off its reconnect.
    with grpc.insecure_channel(mesh.address("gateway")) as channel:
        stub = gateway_pb2_grpc.GatewayServiceStub(channel)
        while stub.Assess(_request(), metadata=_metadata(mesh), timeout=60).assessment.degraded:
            assert time.monotonic() < deadline
            time.sleep(0.2)
    return process
