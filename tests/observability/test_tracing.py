"""Traces: one assessment through the four services as separate processes arrives, as one trace,
in a real OTLP/gRPC receiver; and tracing stays off unless the standard variables turn it on."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator

import pytest
from google.protobuf import json_format
from opentelemetry.proto.trace.v1 import trace_pb2

from services.common import tracing
from services.launcher import Mesh
from tests.conftest import free_port
from tests.observability.meshes import assess, assess_request, start_mesh
from tests.observability.otlp_receiver import OtlpReceiver, ReceivedSpan

SERVICES = ("muaalem-gateway", "muaalem-asr", "muaalem-alignment", "muaalem-tajweed")
# A caller's own trace: the mesh must join it, not start another.
CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, []),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}, ["otlp"]),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4317"}, ["otlp"]),
        ({"OTEL_TRACES_EXPORTER": "console"}, ["console"]),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317"}, []),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, []),
    ],
)
def test_tracing_is_off_unless_the_standard_variables_say_so(environ: dict[str, str], expected: list[str]) -> None:
    assert tracing.exporters_from_env(environ) == expected


def test_trace_context_round_trips_through_grpc_metadata() -> None:
    parent = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"
    # Without an SDK the API still carries the caller's context on (the same traceparent); with
    # one (another test may have installed it in this process) the server span is the new parent.
    with tracing.server_span("muaalem.v1.X/Y", [("traceparent", parent), ("x-request-id", "r1")], {}):
        outgoing: list[tuple[str, str]] = [("x-request-id", "r1")]
        tracing.inject(outgoing)
    sent = dict(outgoing)
    assert sent["x-request-id"] == "r1"
    assert sent["traceparent"].startswith(f"00-{CALLER_TRACE}-") and sent["traceparent"].endswith("-01")


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    server = OtlpReceiver()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def traced_mesh(tmp_path_factory: pytest.TempPathFactory, receiver: OtlpReceiver) -> Iterator[Mesh]:
    mesh = start_mesh(
        tmp_path_factory.mktemp("traced"),
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            # Short batches: the spans arrive while the test waits, not at shutdown.
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            "MUAALEM_GATEWAY_HTTP_PORT": str(free_port()),
        },
    )
    yield mesh
    mesh.stop()


def _trace(spans: list[ReceivedSpan]) -> list[ReceivedSpan]:
    return [s for s in spans if s.trace_id == CALLER_TRACE]


def _complete(spans: list[ReceivedSpan]) -> bool:
    mine = _trace(spans)
    return {s.service for s in mine} >= set(SERVICES) and any(s.name.endswith("/Assess") for s in mine)


@pytest.mark.slow
def test_one_assessment_is_one_trace_across_the_four_services(traced_mesh: Mesh, receiver: OtlpReceiver) -> None:
    assessment = assess(
        traced_mesh,
        assess_request(),
        [("traceparent", f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"), ("x-request-id", "trace-test-0001")],
    )
    assert not assessment.degraded, [(s.stage, s.message) for s in assessment.stages]
    spans = _trace(receiver.wait_for(_complete))
    by_name = {s.name: s for s in spans}
    by_id = {s.span_id: s for s in spans}

    root = by_name["muaalem.v1.GatewayService/Assess"]
    assert root.service == "muaalem-gateway"
    assert root.parent_span_id == CALLER_SPAN
    assert root.kind == trace_pb2.Span.SPAN_KIND_SERVER
    assert root.attributes["muaalem.request_id"] == "trace-test-0001"
    assert root.attributes["muaalem.target"] == "8:75:w17+9"
    assert root.attributes["muaalem.audio_seconds"] == pytest.approx(assessment.audio_duration_s, abs=1e-3)
    assert root.attributes["muaalem.degraded_stages"] == []
    assert root.attributes["muaalem.reference.cache_hit"] is False

    def under(method: str, stage: str) -> ReceivedSpan:
        # A stretch with letter errors calls the asr once more (its frame phases, the stage
        # asr_phases) and the tajweed stage again: each call has its own stage span.
        found = [x for x in spans if x.name == method and by_id[x.parent_span_id].name == f"stage {stage}"]
        assert found, (method, stage, sorted(by_name))
        return found[0]

    stages = {s.stage for s in assessment.stages}
    phase_calls = [x for x in spans if x.name == "stage asr_phases"]
    assert ("asr_phases" in stages) == bool(phase_calls)
    for phases in phase_calls:
        assert by_id[phases.parent_span_id] is root
        assert under("muaalem.v1.AsrService/Transcribe", "asr_phases").service == "muaalem-asr"

    # Each remote stage's server span is the child of the gateway's span for that stage.
    for stage, method, service in (
        ("asr", "muaalem.v1.AsrService/Transcribe", "muaalem-asr"),
        ("alignment", "muaalem.v1.AlignmentService/Align", "muaalem-alignment"),
        ("tajweed", "muaalem.v1.TajweedService/Validate", "muaalem-tajweed"),
    ):
        server = under(method, stage)
        assert server.service == service
        parent = by_id[server.parent_span_id]
        assert parent.name == f"stage {stage}" and parent.service == "muaalem-gateway"
        assert parent.attributes["muaalem.stage_status"] == "STAGE_STATUS_OK"
        assert by_id[parent.parent_span_id] is root
        assert server.attributes["muaalem.request_id"] == "trace-test-0001"

    batcher = by_name["asr batcher"]
    assert batcher.service == "muaalem-asr"
    assert by_id[batcher.parent_span_id].name == "muaalem.v1.AsrService/Transcribe"
    assert batcher.attributes["muaalem.asr.batch_size"] >= 1
    assert batcher.attributes["muaalem.asr.queue_ms"] >= 0
    asr = under("muaalem.v1.AsrService/Transcribe", "asr")
    assert asr.attributes["muaalem.asr.batch_size"] >= 1
    # The asr decodes the window of each segment the file was followed in (test.wav: one, from
    # its first speech to its last), not the whole file.
    (segment,) = assessment.segments
    window_s = segment.time_span.end_s - segment.time_span.start_s
    assert asr.attributes["muaalem.audio_seconds"] == pytest.approx(window_s, abs=0.01)

    lookup = by_name["reference lookup"]
    assert by_id[lookup.parent_span_id].name == "stage reference"
    assert lookup.attributes["muaalem.reference.cache_hit"] is False
    assert lookup.attributes["muaalem.target"] == "8:75:w17+9"
    assert by_name["muaalem.v1.TajweedService/Validate"].attributes["muaalem.tajweed.findings"] > 0

    # Nothing secret or bulky rides along: no API key, no audio, every value small.
    for span in spans:
        for key, value in span.attributes.items():
            assert "authorization" not in key.lower()
            assert traced_mesh.api_key not in str(value)
            assert not isinstance(value, bytes), (span.name, key)
            assert len(str(value)) < 200, (span.name, key)


@pytest.mark.slow
def test_a_second_lookup_of_the_same_passage_is_a_cache_hit_span(traced_mesh: Mesh, receiver: OtlpReceiver) -> None:
    # The passage's first lookup here, not another test's: and by then the gateway knows the
    # model version (a first lookup made while asr was slow to say it goes to the neutral
    # "unversioned" namespace, which the second would then miss).
    assess(traced_mesh, assess_request(), [])
    trace_id = "5" * 32
    assess(traced_mesh, assess_request(), [("traceparent", f"00-{trace_id}-{CALLER_SPAN}-01")])
    spans = receiver.wait_for(lambda s: any(x.trace_id == trace_id and x.name == "reference lookup" for x in s))
    lookup = next(s for s in spans if s.trace_id == trace_id and s.name == "reference lookup")
    assert lookup.attributes["muaalem.reference.cache_hit"] is True
    assert lookup.attributes["muaalem.reference.store"] == "memory"


@pytest.mark.slow
def test_an_http_assessment_is_one_trace_too(traced_mesh: Mesh, receiver: OtlpReceiver) -> None:
    trace_id = "6" * 32
    port = traced_mesh.service_env()["MUAALEM_GATEWAY_HTTP_PORT"]
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/assess",
        data=json.dumps(json_format.MessageToDict(assess_request())).encode(),
        headers={
            "content-type": "application/json",
            "authorization": f"Bearer {traced_mesh.api_key}",
            "traceparent": f"00-{trace_id}-{CALLER_SPAN}-01",
        },
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        assert response.status == 200
    spans = receiver.wait_for(
        lambda got: {s.service for s in got if s.trace_id == trace_id} >= set(SERVICES)
        and any(s.trace_id == trace_id and s.name == "POST /v1/assess" for s in got)
    )
    mine = {s.span_id: s for s in spans if s.trace_id == trace_id}
    roots = [s for s in mine.values() if s.parent_span_id == CALLER_SPAN]
    assert len(roots) == 1, roots
    root = roots[0]
    assert root.name == "POST /v1/assess"
    assert root.attributes["http.response.status_code"] == 200
    assert root.attributes["muaalem.request_id"]
    # Every span of the request descends from the one HTTP span (FastAPI's own, with its endpoint
    # spans in between, when the framework traces).
    tops = []
    for span in mine.values():
        ancestor = span
        while ancestor.parent_span_id in mine:
            ancestor = mine[ancestor.parent_span_id]
        tops.append((ancestor.name, ancestor.span_id, ancestor.parent_span_id))
    assert set(tops) == {(root.name, root.span_id, CALLER_SPAN)}, (set(tops), root.span_id)
    names = {s.name for s in mine.values()}
    assert {"stage asr", "muaalem.v1.AsrService/Transcribe", "muaalem.v1.TajweedService/Validate"} <= names
