"""Property-based fuzzing of the gateway's front doors on the running mesh (Hypothesis).

The multipart form, the reference path, the JSON body, the WebSocket's frames and the gRPC
request messages each get generated inputs (profile.fuzz_examples per door, or
MUAALEM_FUZZ_EXAMPLES). Whatever comes in, the answer is a client error (4xx, INVALID_ARGUMENT
and its kin) or a valid assessment: never a 5xx, INTERNAL or UNKNOWN, never a traceback in any
service's log, and every service is SERVING afterwards. A failing input is shrunk by Hypothesis
and printed with the blob that replays it.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import json_format
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

from services.common.pb import gateway_pb2, gateway_pb2_grpc
from tests.reliability import fuzz_inputs as fz
from tests.reliability.cluster import Cluster, client_channel
from tests.reliability.http_client import HttpReply, http_call
from tests.reliability.report import Profile, Report

pytestmark = pytest.mark.slow

# What a client may be answered: its own mistakes, or a limit (413).
CLIENT_CODES = {
    "INVALID_ARGUMENT",
    "FAILED_PRECONDITION",
    "OUT_OF_RANGE",
    "NOT_FOUND",
    "UNAUTHENTICATED",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
}
WS_CLIENT_CLOSE = 1008
TIMEOUT_S = 120.0


@dataclass
class Door:
    name: str
    outcomes: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def inputs(self) -> int:
        return sum(self.outcomes.values())


@dataclass
class FuzzRun:
    cluster: Cluster
    logs: dict[str, tuple[Path, int]]
    doors: dict[str, Door] = field(default_factory=dict)

    def door(self, name: str) -> Door:
        return self.doors.setdefault(name, Door(name))


@pytest.fixture(scope="module")
def fuzz(cluster: Cluster) -> FuzzRun:
    """Where each service's log stood before the first generated input."""
    logs = {name: (s.log_path, s.log_path.stat().st_size) for name, s in cluster.services.items()}
    return FuzzRun(cluster, logs)


def examples(profile: Profile) -> int:
    return int(os.environ.get("MUAALEM_FUZZ_EXAMPLES", profile.fuzz_examples))


def fuzzed(profile: Profile) -> settings:
    # A real mesh answers in milliseconds to seconds: no per-example deadline; no example database
    # (inputs are drawn afresh each run; a failure prints the blob that replays it).
    return settings(
        max_examples=examples(profile),
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )


def run_door(door: Door, test: Callable[[], None]) -> None:
    started = time.monotonic()
    try:
        test()
    finally:
        door.seconds += time.monotonic() - started


def check_http(reply: HttpReply) -> str:
    """The outcome's label; an AssertionError for an answer that breaks the contract."""
    assert reply.status < 500, f"HTTP {reply.status}: {reply.body[:300]!r}"
    document = json.loads(reply.body)
    if reply.status == 200:
        if "assessment" in document:
            json_format.ParseDict(document["assessment"], gateway_pb2.Assessment())
        return "200"
    error = document["error"]
    assert set(error) == {"code", "message", "requestId"} and error["message"], document
    assert error["code"] in CLIENT_CODES, document
    if reply.status in (429, 503):
        assert int(reply.headers["retry-after"]) >= 1
    return str(reply.status)


def _without_audio(request: gateway_pb2.AssessRequest) -> gateway_pb2.AssessRequest:
    request.ClearField("audio")
    return request


def test_fuzz_http_multipart_form(cluster: Cluster, profile: Profile, fuzz: FuzzRun) -> None:
    door = fuzz.door("HTTP POST /v1/assess, multipart form")
    authorization = f"Bearer {cluster.api_key}"
    request_part = fz.mutated_json(fz.json_documents(fz.assess_requests().map(_without_audio)))

    @fuzzed(profile)
    @given(form=fz.forms(request_part))
    def run(form: tuple[list[fz.Part], str]) -> None:
        parts, content_type = form
        body = fz.encode_form(parts)
        reply = http_call(
            cluster.gateway.http_port,
            "POST",
            "/v1/assess",
            body,
            content_type=content_type,
            authorization=authorization,
            timeout_s=TIMEOUT_S,
        )
        door.outcomes[check_http(reply)] += 1

    run_door(door, run)


def test_fuzz_http_reference_path(cluster: Cluster, profile: Profile, fuzz: FuzzRun) -> None:
    door = fuzz.door("HTTP GET /v1/reference/{surah}/{ayah}?query")
    authorization = f"Bearer {cluster.api_key}"

    @fuzzed(profile)
    @given(path=fz.reference_paths())
    def run(path: str) -> None:
        reply = http_call(cluster.gateway.http_port, "GET", path, authorization=authorization, timeout_s=TIMEOUT_S)
        door.outcomes[check_http(reply)] += 1

    run_door(door, run)


def test_fuzz_http_json_body(cluster: Cluster, profile: Profile, fuzz: FuzzRun) -> None:
    door = fuzz.door("HTTP POST /v1/assess, JSON body")
    authorization = f"Bearer {cluster.api_key}"

    @fuzzed(profile)
    @given(
        text=fz.mutated_json(fz.json_documents(fz.assess_requests())),
        content_type=st.sampled_from(("application/json",) * 8 + ("application/json; charset=utf-8", "")),
    )
    def run(text: str, content_type: str) -> None:
        reply = http_call(
            cluster.gateway.http_port,
            "POST",
            "/v1/assess",
            text.encode("utf-8", "surrogatepass"),
            content_type=content_type,
            authorization=authorization,
            timeout_s=TIMEOUT_S,
        )
        door.outcomes[check_http(reply)] += 1

    run_door(door, run)


def _send_frames(ws: Any, frames: list[fz.Frame]) -> None:
    for frame in frames:
        sent = frame
        if isinstance(frame, str):
            try:
                frame.encode("utf-8")
            except UnicodeEncodeError:
                sent = frame.encode("utf-8", "surrogatepass")  # not text a WebSocket can carry: binary
        try:
            ws.send(sent)
        except ConnectionClosed:
            return  # the server ended the session (its last frame says why)


def test_fuzz_websocket_frames(cluster: Cluster, profile: Profile, fuzz: FuzzRun) -> None:
    door = fuzz.door("WebSocket /v1/live, frames")
    url = f"ws://127.0.0.1:{cluster.gateway.http_port}/v1/live"

    @fuzzed(profile)
    @given(frames=fz.live_frames(cluster.api_key))
    def run(frames: list[fz.Frame]) -> None:
        ended = frames[-1] == '{"end": true}'
        received: list[dict[str, Any]] = []
        with ws_connect(url, open_timeout=30, close_timeout=10, max_size=None) as ws:
            _send_frames(ws, frames)
            try:
                while True:
                    # Without {"end": true} the session would wait for audio: read what came, then leave.
                    message = ws.recv(timeout=TIMEOUT_S if ended else 1.0)
                    assert isinstance(message, str), "the server sends text frames only"
                    received.append(json.loads(message))
            except TimeoutError:
                assert not ended, "no answer within the timeout"
                ws.close()
            except ConnectionClosed:
                pass
            code = ws.close_code
        errors = [frame["error"] for frame in received if "error" in frame]
        for error in errors:
            assert error["code"] in CLIENT_CODES, error
        assert code != 1011, (code, errors)
        if ended:
            assert code in (1000, WS_CLIENT_CLOSE), (code, received[-1:] or None)
        if errors:
            label = f"closed {code}: {errors[-1]['code']}"
        elif received and "final" in received[-1]:
            label = f"closed {code}: final assessment"
        else:
            label = f"closed {code}" if ended else "left by the client"
        door.outcomes[label] += 1

    run_door(door, run)


def _without_content(request: gateway_pb2.AssessRequest) -> gateway_pb2.AssessRequest:
    """The header of a streamed upload: the audio comes in chunks."""
    request.audio.ClearField("content")
    return request


def _grpc_calls() -> st.SearchStrategy[tuple[str, Any]]:
    reference = st.one_of(
        st.just(gateway_pb2.GetReferenceRequest(target=fz.CLIP_TARGET)),
        fz.messages(gateway_pb2.GetReferenceRequest.DESCRIPTOR),
    )
    chunks = st.lists(st.one_of(st.sampled_from(fz.audio_blobs()), st.binary(max_size=64)), max_size=3)
    headers = fz.assess_requests().map(_without_content)
    stream = st.one_of(
        st.tuples(headers, chunks).map(
            lambda hc: [
                gateway_pb2.AssessStreamRequest(header=hc[0]),
                *(gateway_pb2.AssessStreamRequest(chunk=c) for c in hc[1]),
            ]
        ),
        st.lists(fz.messages(gateway_pb2.AssessStreamRequest.DESCRIPTOR), max_size=4),
    )
    pcm = fz.clip_pcm()
    live = st.one_of(
        st.tuples(fz.live_configs(""), st.lists(st.integers(0, 7), max_size=4)).map(
            lambda cc: [
                gateway_pb2.AssessLiveRequest(config=cc[0]),
                *(gateway_pb2.AssessLiveRequest(audio=pcm[i * 6400 : (i + 1) * 6400]) for i in cc[1]),
            ]
        ),
        st.lists(fz.messages(gateway_pb2.AssessLiveRequest.DESCRIPTOR), max_size=4),
    )
    return st.one_of(
        fz.assess_requests().map(lambda r: ("Assess", r)),
        reference.map(lambda r: ("GetReference", r)),
        stream.map(lambda s: ("AssessStream", s)),
        live.map(lambda s: ("AssessLive", s)),
    )


@pytest.fixture(scope="module")
def stub(cluster: Cluster) -> Iterator[gateway_pb2_grpc.GatewayServiceStub]:
    with client_channel(cluster.gateway.address) as channel:
        yield gateway_pb2_grpc.GatewayServiceStub(channel)


def test_fuzz_grpc_request_messages(
    cluster: Cluster, profile: Profile, fuzz: FuzzRun, stub: gateway_pb2_grpc.GatewayServiceStub
) -> None:
    door = fuzz.door("gRPC GatewayService, request messages")
    metadata = cluster.metadata()

    @fuzzed(profile)
    @given(call=_grpc_calls())
    def run(call: tuple[str, Any]) -> None:
        method, request = call
        try:
            if method == "Assess":
                stub.Assess(request, metadata=metadata, timeout=TIMEOUT_S)
            elif method == "GetReference":
                stub.GetReference(request, metadata=metadata, timeout=TIMEOUT_S)
            elif method == "AssessStream":
                stub.AssessStream(iter(request), metadata=metadata, timeout=TIMEOUT_S)
            else:
                for _ in stub.AssessLive(iter(request), metadata=metadata, timeout=TIMEOUT_S):
                    pass
            code = "OK"
        except grpc.RpcError as exc:
            code = exc.code().name
            assert code in CLIENT_CODES, f"{method}: {code}: {exc.details()}"
        door.outcomes[f"{method} {code}"] += 1

    run_door(door, run)


FRAME_CASES = [
    (
        '{"config": "x"}',
        "config must be a JSON object (a LiveConfig with the fields target, moshaf, options, pcm, container, apiKey)",
    ),
    (
        '{"config": {"target": {"ayah": {"surah": 99999999999999999999}}}}',
        "config.target.ayah.surah must be an integer in 1..114, got 99999999999999999999",
    ),
    ('{"config": {"colour": 1}}', "unknown field 'config.colour' (LiveConfig has target"),
    ('{"config": {"apiKey": "a", "apiKey": "b"}}', "field 'apiKey' is given twice in config"),
    ('{"end": "yes"}', "end must be true"),
    ("[1, 2]", "a text frame must be a JSON object"),
]


@pytest.mark.parametrize(("frame", "message"), FRAME_CASES, ids=[f for f, _ in FRAME_CASES])
def test_a_websocket_frame_that_is_no_live_request_is_named(cluster: Cluster, frame: str, message: str) -> None:
    with ws_connect(f"ws://127.0.0.1:{cluster.gateway.http_port}/v1/live", open_timeout=30) as ws:
        ws.send(frame)
        error = json.loads(ws.recv(timeout=30))["error"]
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=30)
        assert ws.close_code == WS_CLIENT_CLOSE
    assert error["code"] == "INVALID_ARGUMENT" and message in error["message"], error


def test_a_client_gone_before_its_last_frame_leaves_no_traceback(cluster: Cluster) -> None:
    """The fuzz's finding: a session that failed after its client had gone (here: the client's
    connection dropped mid-recitation, and the half second of silence it sent is no recitation)
    wrote its error frame to nobody, and the failed send ended in "Exception in ASGI
    application" in the gateway's log."""
    log = cluster.gateway.log_path
    offset = log.stat().st_size
    config = json.dumps({"config": json_format.MessageToDict(fz.valid_live_config(cluster.api_key))})
    for odd_chunk in (False, True) * 3:
        with ws_connect(f"ws://127.0.0.1:{cluster.gateway.http_port}/v1/live", open_timeout=30) as ws:
            ws.send(config)
            assert "started" in json.loads(ws.recv(timeout=30))
            ws.send(b"\0" * 16_000)
            if odd_chunk:
                ws.send(b"\0" * 3)  # splits a sample: refused while the connection drops
            else:
                time.sleep(0.3)
            with contextlib.suppress(OSError):  # the server may have closed it already
                ws.socket.shutdown(socket.SHUT_RDWR)  # dropped: no close frame, no end
    time.sleep(2.0)
    assert not _problems(log, offset)
    assert cluster.gateway.health() == "SERVING"


def _problems(path: Path, offset: int) -> list[str]:
    """Log lines at or past `offset` that carry a traceback or an error."""
    found = []
    with path.open("rb") as log:
        log.seek(offset)
        for raw in log:
            line = raw.decode("utf-8", "replace").strip()
            try:
                record = json.loads(line)
            except ValueError:
                if "Traceback" in line:
                    found.append(line[:300])
                continue
            if isinstance(record, dict) and (record.get("exc") or record.get("level") in ("error", "critical")):
                found.append(f"{record.get('msg')}: {str(record.get('exc', ''))[-300:]}")
    return found


def test_after_the_fuzz_no_traceback_and_every_service_serves(
    cluster: Cluster, fuzz: FuzzRun, profile: Profile, report: Report
) -> None:
    problems = {}
    for name, service in cluster.services.items():
        path, offset = fuzz.logs[name]
        found = _problems(path, offset if path == service.log_path else 0)
        if path != service.log_path:  # restarted meanwhile: its new log from the start
            found += _problems(service.log_path, 0)
        if found:
            problems[name] = found
    health = {name: service.health(timeout_s=5) for name, service in cluster.services.items()}
    ready = http_call(cluster.gateway.http_port, "GET", "/readyz")
    doors = list(fuzz.doors.values())
    total = sum(door.inputs for door in doors)
    five_xx = sum(
        count
        for door in doors
        for label, count in door.outcomes.items()
        if label.startswith("5") or "INTERNAL" in label
    )
    report.add(
        "fuzz",
        f"{total} generated inputs across {len(doors)} front doors (Hypothesis, {examples(profile)} examples a door)",
        ["front door", "inputs", "seconds", "answers"],
        [
            [
                door.name,
                str(door.inputs),
                f"{door.seconds:.0f}",
                ", ".join(f"{label}: {count}" for label, count in sorted(door.outcomes.items())),
            ]
            for door in doors
        ],
        note="Each door gets inputs made from nothing (any message the protobuf descriptors allow, any form "
        "fields, any frames) and valid requests with a few things changed (a weird value, an unknown field, a "
        "field twice or under its other name, a value cut short), so that some reach the assessment. "
        f"Asserted: no 5xx, INTERNAL or UNKNOWN ({five_xx} seen), no traceback or error line in any service's "
        f"log ({sum(len(p) for p in problems.values())} found), every service SERVING afterwards "
        f"({', '.join(f'{n} {h}' for n, h in health.items())}).",
    )
    assert not problems, problems
    assert all(status == "SERVING" for status in health.values()), health
    assert ready.status == 200, ready.body
    if len(doors) == 5:
        assert total >= 5 * examples(profile) * 0.9, {d.name: d.inputs for d in doors}
