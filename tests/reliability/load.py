"""Closed-loop load: N clients, each sending its next request when the last one is answered,
over its own connection; every outcome (answer, partial answer or status) is recorded."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import grpc
import numpy as np
from google.protobuf import json_format

from services.common.pb import common_pb2, gateway_pb2, gateway_pb2_grpc
from tests.reliability.http_client import http_call

RequestFor = Callable[[int, int], gateway_pb2.AssessRequest]  # (client, sequence) -> request


@dataclass(frozen=True)
class Outcome:
    client: int
    started_s: float  # since the run began
    latency_s: float
    code: str  # OK or the gRPC status name (HTTP statuses are mapped back to names)
    message: str = ""
    degraded: tuple[str, ...] = ()
    stage_status: dict[str, int] = field(default_factory=dict)
    stage_ms: dict[str, float] = field(default_factory=dict)

    @property
    def ended_s(self) -> float:
        return self.started_s + self.latency_s


def _from_assessment(client: int, started: float, latency: float, assessment: gateway_pb2.Assessment) -> Outcome:
    return Outcome(
        client,
        started,
        latency,
        "OK",
        degraded=tuple(assessment.degraded),
        stage_status={s.stage: int(s.status) for s in assessment.stages},
        stage_ms={s.stage: s.duration_ms for s in assessment.stages},
    )


async def grpc_load(
    address: str,
    request_for: RequestFor,
    *,
    clients: int,
    metadata: Sequence[tuple[str, str]],
    timeout_s: float,
    per_client: int | None = None,
    until: asyncio.Event | None = None,
    began: float | None = None,
) -> list[Outcome]:
    """Runs until each client has sent `per_client` requests, or until `until` is set.
    Outcome times count from `began` (time.monotonic(); now when None)."""
    assert per_client is not None or until is not None
    began = time.monotonic() if began is None else began
    outcomes: list[Outcome] = []

    async def client(index: int) -> None:
        options = [("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20)]
        async with grpc.aio.insecure_channel(address, options=options) as channel:
            stub = gateway_pb2_grpc.GatewayServiceStub(channel)
            sequence = 0
            while (per_client is None or sequence < per_client) and (until is None or not until.is_set()):
                request = request_for(index, sequence)
                sequence += 1
                started = time.monotonic()
                try:
                    reply = await stub.Assess(request, metadata=list(metadata), timeout=timeout_s)
                except grpc.aio.AioRpcError as exc:
                    outcomes.append(
                        Outcome(
                            index, started - began, time.monotonic() - started, exc.code().name, exc.details() or ""
                        )
                    )
                    continue
                outcomes.append(_from_assessment(index, started - began, time.monotonic() - started, reply.assessment))

    await asyncio.gather(*(client(i) for i in range(clients)))
    return outcomes


_HTTP_CODES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 413: "RESOURCE_EXHAUSTED", 422: "FAILED_PRECONDITION"}
_HTTP_CODES |= {429: "RESOURCE_EXHAUSTED", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}


async def http_load(
    port: int,
    request_for: RequestFor,
    *,
    clients: int,
    per_client: int,
    authorization: str,
    timeout_s: float,
) -> list[Outcome]:
    """The same over the HTTP/JSON API (blocking clients in threads, one connection each call)."""
    began = time.monotonic()
    outcomes: list[Outcome] = []

    def one(index: int, sequence: int) -> Outcome:
        body = json.dumps(json_format.MessageToDict(request_for(index, sequence))).encode()
        started = time.monotonic()
        try:
            reply = http_call(port, "POST", "/v1/assess", body, authorization=authorization, timeout_s=timeout_s)
        except OSError as exc:
            return Outcome(index, started - began, time.monotonic() - started, "UNAVAILABLE", str(exc))
        latency = time.monotonic() - started
        if reply.status != 200:
            code = _HTTP_CODES.get(reply.status, f"HTTP {reply.status}")
            return Outcome(index, started - began, latency, code, reply.message)
        assessment = json_format.ParseDict(reply.json()["assessment"], gateway_pb2.Assessment())
        return _from_assessment(index, started - began, latency, assessment)

    async def client(index: int) -> None:
        for sequence in range(per_client):
            outcomes.append(await asyncio.to_thread(one, index, sequence))

    await asyncio.gather(*(client(i) for i in range(clients)))
    return outcomes


def percentile_ms(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values) * 1000.0, q)) if values else float("nan")


@dataclass(frozen=True)
class Summary:
    sent: int
    ok: int
    full: int  # OK and no stage degraded
    codes: dict[str, int]
    degraded: dict[str, int]
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    seconds: float

    @property
    def throughput(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else 0.0

    def codes_text(self) -> str:
        return ", ".join(f"{code} {count}" for code, count in sorted(self.codes.items())) or "-"

    def degraded_text(self) -> str:
        return ", ".join(f"{stage} {count}" for stage, count in sorted(self.degraded.items())) or "none"


def summarize(outcomes: Sequence[Outcome]) -> Summary:
    latencies = [o.latency_s for o in outcomes]
    degraded: Counter[str] = Counter(stage for o in outcomes for stage in o.degraded)
    span = max((o.ended_s for o in outcomes), default=0.0) - min((o.started_s for o in outcomes), default=0.0)
    return Summary(
        sent=len(outcomes),
        ok=sum(1 for o in outcomes if o.code == "OK"),
        full=sum(1 for o in outcomes if o.code == "OK" and not o.degraded),
        codes=dict(Counter(o.code for o in outcomes)),
        degraded=dict(degraded),
        p50_ms=percentile_ms(latencies, 50),
        p95_ms=percentile_ms(latencies, 95),
        p99_ms=percentile_ms(latencies, 99),
        max_ms=max(latencies, default=0.0) * 1000.0,
        seconds=span,
    )


def stage_percentiles(outcomes: Sequence[Outcome], stages: Sequence[str]) -> list[list[str]]:
    """Per stage, p50/p95 of the duration the gateway recorded (OK stage reports only)."""
    rows = []
    for stage in stages:
        values = [
            o.stage_ms[stage] / 1000.0
            for o in outcomes
            if o.stage_status.get(stage) == common_pb2.STAGE_STATUS_OK and stage in o.stage_ms
        ]
        rows.append([stage, str(len(values)), f"{percentile_ms(values, 50):.1f}", f"{percentile_ms(values, 95):.1f}"])
    return rows
