"""Faults under load, on real processes: Redis killed and restarted, the asr process killed,
slow stages behind a latency proxy, the gateway stopped with SIGTERM mid-flight."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

import grpc
import pytest
import redis

from services.common.pb import common_pb2, gateway_pb2, gateway_pb2_grpc
from tests.conftest import RedisServer
from tests.reliability import inputs
from tests.reliability.cluster import STAGES, Cluster, Service
from tests.reliability.http_client import http_call
from tests.reliability.load import Outcome, grpc_load, http_load, summarize
from tests.reliability.proxy import LatencyProxy
from tests.reliability.report import Profile, Report

# Each run brings up a mesh and drives it for a while: part of `make test`, not `make test-fast`.
# Faults under load, a minute on 2 cores: make soak and make reliability run them, make test does not.
pytestmark = [pytest.mark.slow, pytest.mark.soak]

# A request's own deadline during the fault runs: answers (full, partial or UNAVAILABLE) must
# all come back within it.
FAULT_DEADLINE_S = 10.0


@dataclass
class Timeline:
    """When the injected events happened, in seconds since the run began."""

    began: float
    marks: dict[str, float]

    def mark(self, name: str) -> None:
        self.marks[name] = time.monotonic() - self.began


async def load_during(
    cluster: Cluster,
    clients: int,
    script: Callable[[Timeline, asyncio.Event], AsyncIterator[None]],
    timeout_s: float = FAULT_DEADLINE_S,
) -> tuple[list[Outcome], Timeline]:
    """Runs `clients` closed-loop clients while `script` injects faults; the load stops when
    the script sets the event it is given."""
    began = time.monotonic()
    timeline = Timeline(began, {})
    stop = asyncio.Event()

    async def run_script() -> None:
        try:
            async for _ in script(timeline, stop):
                pass
        finally:
            stop.set()

    outcomes, _ = await asyncio.gather(
        grpc_load(
            cluster.gateway.address,
            inputs.rotating_request,
            clients=clients,
            metadata=cluster.metadata(),
            timeout_s=timeout_s,
            until=stop,
            began=began,
        ),
        run_script(),
    )
    return outcomes, timeline


def phase(outcomes: list[Outcome], start: float, end: float) -> list[Outcome]:
    """Requests that began in [start, end)."""
    return [o for o in outcomes if start <= o.started_s < end]


def phase_row(name: str, outcomes: list[Outcome]) -> list[str]:
    summary = summarize(outcomes)
    return [
        name,
        str(summary.sent),
        str(summary.full),
        summary.codes_text(),
        summary.degraded_text(),
        f"{summary.p50_ms:.0f}",
        f"{summary.p95_ms:.0f}",
        f"{summary.max_ms:.0f}",
    ]


PHASE_HEADERS = ["phase", "requests", "full answers", "statuses", "degraded stages", "p50 ms", "p95 ms", "max ms"]


async def test_redis_killed_and_restarted_during_load_fails_no_assessment(
    cluster: Cluster, mesh_redis: RedisServer, profile: Profile, report: Report
) -> None:
    duration = profile.redis_fault_s
    probe = redis.Redis.from_url(mesh_redis.url, socket_timeout=1)
    reused_after: list[float] = []

    async def written(within_s: float) -> float | None:
        """Seconds until Redis holds a key (the gateway wrote a reference), or None."""
        started = time.monotonic()
        while time.monotonic() - started < within_s:
            if await asyncio.to_thread(probe.dbsize) > 0:
                return time.monotonic() - started
            await asyncio.sleep(0.1)
        return None

    async def script(timeline: Timeline, stop: asyncio.Event) -> AsyncIterator[None]:
        assert await written(30) is not None, "the cache should hold references before the fault"
        await asyncio.sleep(duration * 0.2)
        await asyncio.to_thread(mesh_redis.kill)
        timeline.mark("killed")
        yield
        await asyncio.sleep(duration * 0.25)
        await asyncio.to_thread(mesh_redis.start)
        timeline.mark("restarted")
        # Redis restarts empty (no persistence): the first key in it is the gateway writing again.
        again = await written(30)
        if again is not None:
            reused_after.append(again)
        remaining = duration - (time.monotonic() - timeline.began)
        await asyncio.sleep(max(remaining, 1.0))
        yield

    outcomes, timeline = await load_during(cluster, profile.fault_clients, script)
    marks = timeline.marks
    report.add(
        "faults",
        "Redis (the reference cache) killed with SIGKILL during load, restarted empty",
        PHASE_HEADERS,
        [
            phase_row("before the kill", phase(outcomes, 0, marks["killed"])),
            phase_row("Redis down", phase(outcomes, marks["killed"], marks["restarted"])),
            phase_row("after the restart", phase(outcomes, marks["restarted"], float("inf"))),
            phase_row("whole run", outcomes),
        ],
        note=f"{profile.fault_clients} closed-loop gRPC clients, {len(inputs.LOAD_TARGETS)} targets in turn. "
        f"Redis down for {marks['restarted'] - marks['killed']:.1f} s; the gateway wrote to it again "
        f"{reused_after[0] if reused_after else float('nan'):.1f} s after its restart (the circuit breaker "
        "probes it every MUAALEM_REDIS_BREAKER_COOLDOWN_S = 5 s). Asserted: every assessment answered in "
        "full (no error, no degraded stage).",
    )
    assert phase(outcomes, marks["killed"], marks["restarted"]), "no request ran while Redis was down"
    failed = [o for o in outcomes if o.code != "OK" or o.degraded]
    assert not failed, failed[:3]
    assert reused_after, "the gateway never wrote to Redis again after its restart"


async def test_asr_killed_during_load_every_request_is_answered_and_it_recovers(
    cluster: Cluster, profile: Profile, report: Report
) -> None:
    asr = cluster.stage("asr")
    duration = profile.asr_fault_s
    recovered: list[float] = []

    async def script(timeline: Timeline, stop: asyncio.Event) -> AsyncIterator[None]:
        await asyncio.sleep(duration * 0.2)
        asr.signal(signal.SIGKILL)
        timeline.mark("killed")
        await asyncio.to_thread(asr.wait, 10)
        yield
        await asyncio.sleep(2.0)
        asr.start()
        timeline.mark("restarted")
        await asyncio.to_thread(asr.wait_serving, 120)
        timeline.mark("serving")
        await asyncio.sleep(max(duration - (time.monotonic() - timeline.began), 3.0))
        yield

    outcomes, timeline = await load_during(cluster, profile.fault_clients, script)
    marks = timeline.marks
    in_flight = [o for o in outcomes if o.started_s < marks["killed"] < o.ended_s]
    before = [o for o in outcomes if o.ended_s < marks["killed"]]
    after = sorted(phase(outcomes, marks["serving"], float("inf")), key=lambda o: o.started_s)
    first_full = next((o for o in after if o.code == "OK" and not o.degraded), None)
    if first_full is not None:
        recovered.append(first_full.ended_s - marks["serving"])
    report.add(
        "faults",
        "The asr process killed with SIGKILL during load, restarted 2 s later",
        PHASE_HEADERS,
        [
            phase_row("answered before the kill", before),
            phase_row("in flight at the kill", in_flight),
            phase_row("sent while asr was down or starting", phase(outcomes, marks["killed"], marks["serving"])),
            phase_row("after asr is SERVING", after),
        ],
        note=f"{profile.fault_clients} closed-loop gRPC clients, each request with a {FAULT_DEADLINE_S:.0f} s "
        f"deadline. asr was back SERVING {marks['serving'] - marks['restarted']:.1f} s after its restart; the "
        f"first full answer came {recovered[0] if recovered else float('nan'):.2f} s after that. Asserted: every "
        "request answered within its deadline, either in full, or partially with asr named as degraded, or "
        "UNAVAILABLE; full answers again once asr serves.",
    )
    assert in_flight, "no request was in flight when asr was killed"
    for outcome in outcomes:
        assert outcome.code in {"OK", "UNAVAILABLE"}, outcome
        assert outcome.latency_s < FAULT_DEADLINE_S, outcome
        if outcome.code == "OK" and outcome.degraded:
            assert outcome.degraded == ("asr",), outcome
            assert outcome.stage_status["asr"] in {
                common_pb2.STAGE_STATUS_UNAVAILABLE,
                common_pb2.STAGE_STATUS_DEADLINE_EXCEEDED,
            }, outcome
    assert any(o.degraded == ("asr",) for o in phase(outcomes, marks["killed"], marks["restarted"]))
    assert recovered, "no full answer after asr came back"
    # Once one request has gone through in full, the rest do too.
    assert first_full is not None
    later = [o for o in after if o.started_s > first_full.ended_s]
    assert later and all(o.code == "OK" and not o.degraded for o in later), later[:3]


@dataclass
class Proxied:
    gateway: Service
    proxies: dict[str, LatencyProxy]

    def set_latency(self, **latency: float) -> None:
        for stage, proxy in self.proxies.items():
            proxy.latency_s = latency.get(stage, 0.0)


GATEWAY_DEADLINE_S = 4.0


@pytest.fixture(scope="module")
def proxied(cluster: Cluster) -> Iterator[Proxied]:
    """A second gateway whose stage channels go through latency proxies (its own deadline,
    when a caller sets none: 4 s)."""
    proxies = {stage: LatencyProxy("127.0.0.1", cluster.stage(stage).port).start() for stage in STAGES}
    gateway = cluster.new_gateway(
        "gateway-proxied",
        targets={stage: proxy.address for stage, proxy in proxies.items()},
        MUAALEM_ASSESS_TIMEOUT_S=str(GATEWAY_DEADLINE_S),
    )
    gateway.start()
    gateway.wait_serving(60)
    yield Proxied(gateway, proxies)
    gateway.stop()
    for proxy in proxies.values():
        proxy.stop()


@dataclass(frozen=True)
class SlowCase:
    name: str
    latency: dict[str, float]  # added each way, per stage
    deadline_s: float | None  # the caller's; None leaves the gateway's own 4 s
    # The stage the answer must name as late: one of these (none: a full answer).
    late: tuple[str, ...] = ()


SLOW_CASES = (
    SlowCase("no added latency", {}, 5.0),
    SlowCase("asr +0.3 s each way (late but in time)", {"asr": 0.3}, 5.0),
    SlowCase("asr +2.5 s each way", {"asr": 2.5}, 2.0, ("asr",)),
    SlowCase("alignment +2.5 s each way", {"alignment": 2.5}, 2.0, ("alignment",)),
    SlowCase("tajweed +2.5 s each way", {"tajweed": 2.5}, 2.0, ("tajweed",)),
    # Which stage runs out of time first depends on how fast asr's 0.56 MB request crosses a 2 s
    # round trip under HTTP/2 flow control with this many calls at once: asr or alignment.
    SlowCase("every stage +1 s each way", {"asr": 1.0, "alignment": 1.0, "tajweed": 1.0}, 3.0, ("asr", "alignment")),
    SlowCase("asr +3 s each way, caller sets no deadline", {"asr": 3.0}, None, ("asr",)),
)


def _as_expected(outcome: Outcome, case: SlowCase, deadline: float) -> bool:
    if outcome.code != "OK" or outcome.latency_s >= deadline:
        return False
    if not case.late:
        return not outcome.degraded
    return (
        len(outcome.degraded) == 1
        and outcome.degraded[0] in case.late
        and outcome.stage_status[outcome.degraded[0]] == common_pb2.STAGE_STATUS_DEADLINE_EXCEEDED
    )


async def test_slow_stages_give_partial_answers_within_the_deadline(
    cluster: Cluster, proxied: Proxied, profile: Profile, report: Report
) -> None:
    rows = []
    problems = []
    for case in SLOW_CASES:
        # A warm-up without latency: the gateway's connections to the proxies are open before
        # the case begins, so that the case measures calls, not HTTP/2 handshakes.
        proxied.set_latency()
        await asyncio.to_thread(_assess_once, proxied.gateway, cluster, 30)
        proxied.set_latency(**case.latency)
        deadline = case.deadline_s if case.deadline_s is not None else GATEWAY_DEADLINE_S
        outcomes = await grpc_load(
            proxied.gateway.address,
            lambda client, sequence: inputs.assess_request(),
            clients=profile.slow_requests,
            per_client=1,
            metadata=cluster.metadata(),
            # Without a deadline of its own the client waits well past the gateway's.
            timeout_s=case.deadline_s if case.deadline_s is not None else 30.0,
        )
        summary = summarize(outcomes)
        rows.append(
            [
                case.name,
                f"{deadline:.1f} s" + ("" if case.deadline_s is not None else " (gateway's)"),
                str(summary.sent),
                summary.codes_text(),
                summary.degraded_text(),
                f"{summary.max_ms / 1000:.2f} s",
                f"{(deadline - summary.max_ms / 1000) * 1000:.0f} ms",
            ]
        )
        problems += [(case.name, o) for o in outcomes if not _as_expected(o, case, deadline)]
        # Bytes of this case still held in the proxies would delay the next one: cut them.
        proxied.set_latency()
        for proxy in proxied.proxies.values():
            proxy.reset()
    report.add(
        "faults",
        "Slow stages (a TCP proxy adds latency between the gateway and a stage)",
        ["slow stage", "deadline", "requests", "statuses", "degraded stages", "slowest answer", "slack"],
        rows,
        note=f"{profile.slow_requests} concurrent requests per row. The gateway gives each stage call what is "
        "left of the caller's deadline (minus 50 ms to fuse the answer) and answers with what it has: a stage "
        "that misses it is named as degraded (DEADLINE_EXCEEDED) and the stages after it are skipped. Asserted: "
        "every answer is OK, names exactly one late stage (the slowed one; with every stage slowed, asr or "
        "alignment, whichever ran out of time), and arrives before the deadline.",
    )
    assert not problems, problems[:3]


async def test_gateway_sigterm_lets_in_flight_requests_complete(
    cluster: Cluster, profile: Profile, report: Report
) -> None:
    """In-flight gRPC and HTTP assessments (each held ~1.5 s by a slow asr) complete after
    SIGTERM; health says NOT_SERVING at once; new calls are refused once it drains."""
    proxy = LatencyProxy("127.0.0.1", cluster.stage("asr").port, latency_s=0.75).start()
    gateway = cluster.new_gateway(
        "gateway-drain",
        targets={"asr": proxy.address},
        MUAALEM_SHUTDOWN_DELAY_S="1.0",
        MUAALEM_SHUTDOWN_GRACE_S="20",
    )
    gateway.start()
    try:
        gateway.wait_serving(60)
        http_clients = max(1, profile.drain_requests // 4)
        grpc_clients = profile.drain_requests - http_clients
        began = time.monotonic()

        async def sigterm() -> tuple[str, float, str]:
            await asyncio.sleep(0.5)
            gateway.signal(signal.SIGTERM)
            sent_at = time.monotonic() - began
            await asyncio.sleep(0.2)
            health = await asyncio.to_thread(gateway.health, 1.0)
            # After the shutdown delay the port stops taking new calls.
            await asyncio.sleep(1.5)
            try:
                await asyncio.to_thread(_assess_once, gateway, cluster)
                late = "OK"
            except grpc.RpcError as exc:
                late = exc.code().name
            return health, sent_at, late

        grpc_outcomes, http_outcomes, (health, sent_at, late) = await asyncio.gather(
            grpc_load(
                gateway.address,
                inputs.rotating_request,
                clients=grpc_clients,
                per_client=1,
                metadata=cluster.metadata(),
                timeout_s=30,
                began=began,
            ),
            http_load(
                gateway.http_port,
                inputs.rotating_request,
                clients=http_clients,
                per_client=1,
                authorization=f"Bearer {cluster.api_key}",
                timeout_s=30,
            ),
            sigterm(),
        )
        status = await asyncio.to_thread(gateway.wait, 30)
        exited_after = time.monotonic() - began - sent_at
    finally:
        gateway.stop()
        proxy.stop()
    outcomes = grpc_outcomes + http_outcomes
    in_flight = [o for o in grpc_outcomes if o.started_s < sent_at] + http_outcomes
    report.add(
        "faults",
        "Gateway SIGTERM with assessments in flight (MUAALEM_SHUTDOWN_DELAY_S=1, MUAALEM_SHUTDOWN_GRACE_S=20)",
        [
            "in flight at SIGTERM",
            "completed in full",
            "slowest",
            "health 0.2 s after",
            "a new call 1.7 s after",
            "exit status",
            "exited after",
        ],
        [
            [
                f"{len(in_flight)} ({grpc_clients} gRPC, {http_clients} HTTP)",
                str(sum(1 for o in outcomes if o.code == "OK" and not o.degraded)),
                f"{max(o.latency_s for o in outcomes):.2f} s",
                health,
                late,
                str(status),
                f"{exited_after:.1f} s",
            ]
        ],
        note="Each assessment is held about 1.5 s by a 0.75 s proxy latency in front of asr, so all are in "
        "flight when the signal arrives 0.5 s in.",
    )
    assert len(in_flight) == len(outcomes) == profile.drain_requests
    assert all(o.code == "OK" and not o.degraded for o in outcomes), outcomes
    assert health == "NOT_SERVING"
    assert late == "UNAVAILABLE"
    assert status == 0


def _assess_once(gateway: Service, cluster: Cluster, timeout_s: float = 5) -> gateway_pb2.AssessResponse:
    with grpc.insecure_channel(gateway.address) as channel:
        return gateway_pb2_grpc.GatewayServiceStub(channel).Assess(
            inputs.assess_request(), metadata=cluster.metadata(), timeout=timeout_s
        )


def test_http_health_endpoints_answer_after_the_faults(cluster: Cluster) -> None:
    """The shared mesh is whole again after the faults above (asr restarted, Redis back)."""
    assert http_call(cluster.gateway.http_port, "GET", "/readyz").status == 200
    assert all(s.health() == "SERVING" for s in cluster.services.values())
