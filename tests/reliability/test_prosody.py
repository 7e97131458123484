"""The prosody stage and reference recitations against the running mesh: bad reference audio, a
reference for an ayah that does not exist, compare_to a reciter that is not registered (each
gets the right status and a message that names the problem, the servers stay up), and the
prosody process killed with SIGKILL under compare_to load (every Assess is answered, without
the comparison and with "prosody" degraded, until the stage is back)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import grpc
import numpy as np
import pytest

from services.common.pb import common_pb2, gateway_pb2, gateway_pb2_grpc
from tests.reliability.builders import AYAH, INVALID, SURAH, noise, recitation_wav, resampled, target, wav
from tests.reliability.cluster import PROSODY, Cluster, client_channel
from tests.reliability.load import Outcome, _from_assessment
from tests.reliability.report import Profile, Report
from tests.reliability.test_resilience import PHASE_HEADERS, phase, phase_row

# Each run brings up a mesh and drives it for a while: part of `make test`, not `make test-fast`.
pytestmark = pytest.mark.slow

TEACHER = "teacher"
OK = common_pb2.STAGE_STATUS_OK


@dataclass(frozen=True)
class RefusalCase:
    """One refused request about reference recitations: the call, the status, message words."""

    name: str
    rpc: str
    call: Callable[[gateway_pb2_grpc.GatewayServiceStub, list[tuple[str, str]]], object]
    code: str
    words: tuple[str, ...]


def _add(
    content: bytes, surah: int = SURAH, ayah: int = AYAH, reciter: str = TEACHER, last_ayah: int = 0
) -> Callable[..., object]:
    request = gateway_pb2.AddReferenceRecitationRequest(
        audio=common_pb2.Audio(content=content), surah=surah, ayah=ayah, reciter=reciter, last_ayah=last_ayah
    )
    return lambda stub, metadata: stub.AddReferenceRecitation(request, metadata=metadata, timeout=120)


def compare_request(compare_to: str = TEACHER, ayah: int = AYAH) -> gateway_pb2.AssessRequest:
    request = gateway_pb2.AssessRequest(
        target=target(SURAH, ayah, words=None), options=gateway_pb2.AssessOptions(run_rules_on_mismatch=True)
    )
    request.audio.content = recitation_wav()
    request.compare_to = compare_to
    return request


def _assess(compare_to: str, ayah: int = AYAH) -> Callable[..., object]:
    request = compare_request(compare_to, ayah)
    return lambda stub, metadata: stub.Assess(request, metadata=metadata, timeout=120)


ADD = "AddReferenceRecitation"
REFUSALS: tuple[RefusalCase, ...] = (
    # Bad reference audio.
    RefusalCase("reference: unreadable bytes", ADD, _add(b"RIFF not really a wav"), INVALID, ("cannot decode",)),
    RefusalCase("reference: empty audio (0 bytes)", ADD, _add(b""), INVALID, ("empty",)),
    RefusalCase(
        "reference: silence only (digital zero)",
        ADD,
        _add(wav(np.zeros(16_000 * 3, np.float32), 16_000)),
        INVALID,
        ("silent",),
    ),
    RefusalCase(
        "reference: white noise only", ADD, _add(wav(noise(3.0), 16_000)), INVALID, ("no recitation detected",)
    ),
    RefusalCase(
        "reference: 4 kHz sample rate", ADD, _add(wav(resampled(4_000), 4_000)), INVALID, ("sample rate", "4000")
    ),
    # A reference for an ayah that does not exist.
    RefusalCase(
        "reference: surah 115", ADD, _add(recitation_wav(), surah=115, ayah=1), INVALID, ("surah 115 does not exist",)
    ),
    RefusalCase("reference: ayah 0", ADD, _add(recitation_wav(), ayah=0), INVALID, ("ayah 0 does not exist",)),
    RefusalCase(
        "reference: 8:76 (al-Anfal has 75)",
        ADD,
        _add(recitation_wav(), ayah=76),
        INVALID,
        ("ayah 76 does not exist", "1..75"),
    ),
    RefusalCase(
        "reference: 8:70-80 (past the surah's end)",
        ADD,
        _add(recitation_wav(), ayah=70, last_ayah=80),
        INVALID,
        ("80",),
    ),
    RefusalCase("reference: reciter name '../x'", ADD, _add(recitation_wav(), reciter="../x"), INVALID, ("reciter",)),
    # compare_to a reciter that is not registered, or an ayah with no reference at all.
    RefusalCase(
        "compare_to an unregistered reciter",
        "Assess",
        _assess("nobody"),
        INVALID,
        ("'nobody' has no recitation of 8:75", "registered: teacher"),
    ),
    RefusalCase(
        "compare_to on an ayah with no reference",
        "Assess",
        _assess("", ayah=74),
        INVALID,
        ("no reference recitation is registered for 8:74",),
    ),
)


@pytest.fixture(scope="module")
def stub(cluster: Cluster) -> Iterator[gateway_pb2_grpc.GatewayServiceStub]:
    with client_channel(cluster.gateway.address) as channel:
        yield gateway_pb2_grpc.GatewayServiceStub(channel)


@pytest.fixture(scope="module")
def teacher(cluster: Cluster, stub: gateway_pb2_grpc.GatewayServiceStub) -> gateway_pb2.ReferenceRecitation:
    """The sample recitation registered as the reference of 8:75 (through the mesh)."""
    reply = stub.AddReferenceRecitation(
        gateway_pb2.AddReferenceRecitationRequest(
            audio=common_pb2.Audio(content=recitation_wav()), surah=SURAH, ayah=AYAH, reciter=TEACHER
        ),
        metadata=cluster.metadata(),
        timeout=180,
    )
    (added,) = reply.added
    return added


@pytest.fixture(scope="module")
def refusal_rows(cluster: Cluster, report: Report) -> Iterator[list[list[str]]]:
    rows: list[list[str]] = []
    yield rows
    health = {name: service.health(timeout_s=5) for name, service in cluster.services.items()}
    report.add(
        "bad_input",
        "Reference recitations and compare_to: bad reference audio, ayahs that do not exist, reciters "
        "that are not registered",
        ["kind", "RPC", "expected", "got", "message (start)"],
        [*rows, ["afterwards: every process", "Health.Check", "SERVING", ", ".join(sorted(set(health.values()))), ""]],
    )


def test_a_reference_added_through_the_mesh_is_compared_with(
    cluster: Cluster, stub: gateway_pb2_grpc.GatewayServiceStub, teacher: gateway_pb2.ReferenceRecitation
) -> None:
    assert (teacher.surah, teacher.ayah, teacher.reciter, teacher.is_default) == (SURAH, AYAH, TEACHER, True)
    assessment = stub.Assess(compare_request(), metadata=cluster.metadata(), timeout=120).assessment
    assert assessment.HasField("comparison"), [(s.stage, s.message) for s in assessment.stages]
    assert assessment.comparison.reciter == TEACHER and "prosody" not in assessment.degraded


@pytest.mark.parametrize("case", REFUSALS, ids=lambda c: c.name)
def test_reference_refusals_get_the_right_status_and_say_why(
    case: RefusalCase,
    cluster: Cluster,
    stub: gateway_pb2_grpc.GatewayServiceStub,
    teacher: gateway_pb2.ReferenceRecitation,
    refusal_rows: list[list[str]],
) -> None:
    try:
        case.call(stub, cluster.metadata())
        got, message = "OK", "accepted"
    except grpc.RpcError as exc:
        got, message = exc.code().name, exc.details() or ""
    refusal_rows.append([case.name, case.rpc, case.code, got, message[:160]])
    assert got == case.code, f"{case.name}: got {got}: {message}"
    missing = [word for word in case.words if word.lower() not in message.lower()]
    assert not missing, f"{case.name}: the message does not say {missing}: {message!r}"
    assert cluster.gateway.health(timeout_s=5) == "SERVING"
    assert cluster.stage(PROSODY).health(timeout_s=5) == "SERVING"


def _compared(outcome: Outcome) -> bool:
    return outcome.code == "OK" and outcome.stage_status.get("comparison") == OK


# Kills and restarts the prosody stage: kept last in the module.
@pytest.mark.soak  # load and a killed process: make soak and make reliability
async def test_prosody_killed_under_load_answers_without_the_comparison(
    cluster: Cluster, teacher: gateway_pb2.ReferenceRecitation, profile: Profile, report: Report
) -> None:
    prosody = cluster.stage(PROSODY)
    duration = profile.prosody_fault_s
    request = compare_request()
    outcomes: list[Outcome] = []
    marks: dict[str, float] = {}
    began = time.monotonic()
    stop = asyncio.Event()

    def since() -> float:
        return time.monotonic() - began

    async def until(condition: Callable[[], bool], within_s: float) -> bool:
        deadline = time.monotonic() + within_s
        while not condition():
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.1)
        return True

    async def script() -> None:
        try:
            # Comparisons flowing first: the reference is in the cache, the stage is warm.
            assert await until(lambda: sum(map(_compared, outcomes)) >= 2, 60), "no comparison before the kill"
            await asyncio.sleep(duration * 0.2)
            # Marked just before the signal: a request that ended before the mark ended before the kill.
            marks["killed"] = since()
            await asyncio.to_thread(prosody.kill)  # SIGKILL
            await asyncio.sleep(duration * 0.5)
            prosody.start()
            marks["restarted"] = since()
            await asyncio.to_thread(prosody.wait_serving, 120)
            marks["serving"] = since()
            # The comparison is back once a request that began after the restart carries one.
            back = await until(lambda: any(_compared(o) and o.started_s >= marks["serving"] for o in outcomes), 60)
            if back:
                marks["comparison back"] = since()
            await asyncio.sleep(duration * 0.3)
        finally:
            stop.set()

    # grpc_load fills its list only at the end: record the outcomes as they come instead.
    await asyncio.gather(_streamed_load(cluster, request, profile, outcomes, stop, began), script())
    # Requests that ended before the kill, and those in flight when it came (either answer is right for them).
    before = [o for o in phase(outcomes, 0, marks["killed"]) if o.ended_s < marks["killed"]]
    in_flight = [o for o in phase(outcomes, 0, marks["killed"]) if o.ended_s >= marks["killed"]]
    # Requests that began after the kill and ended before the restart: the stage was gone all along.
    gone = [o for o in phase(outcomes, marks["killed"], marks["restarted"]) if o.ended_s < marks["restarted"]]
    after = phase(outcomes, marks.get("comparison back", float("inf")), float("inf"))
    report.add(
        "faults",
        "The prosody stage killed with SIGKILL during Assess load with compare_to, then restarted",
        [*PHASE_HEADERS, "with comparison"],
        [
            [*phase_row(name, part), str(sum(map(_compared, part)))]
            for name, part in (
                ("before the kill", before),
                ("in flight at the kill", in_flight),
                ("stage gone", gone),
                ("restart to comparison back", phase(outcomes, marks["restarted"], marks.get("comparison back", 1e9))),
                ("comparison back", after),
            )
        ],
        note=f"{profile.fault_clients} clients; killed at {marks['killed']:.1f} s, restarted at "
        f"{marks['restarted']:.1f} s, SERVING at {marks['serving']:.1f} s, first comparison again at "
        + (f"{marks['comparison back']:.1f} s." if "comparison back" in marks else "never."),
    )
    unanswered = [o for o in outcomes if o.code != "OK"]
    assert not unanswered, f"{len(unanswered)} calls failed: {sorted({(o.code, o.message) for o in unanswered})}"
    assert before and all(_compared(o) for o in before), [(o.degraded, o.message) for o in before if not _compared(o)]
    assert gone, "no request ran while the stage was gone"
    for outcome in gone:
        assert "prosody" in outcome.degraded, outcome
        assert outcome.stage_status.get("comparison") != OK, outcome
        assert outcome.stage_status.get("prosody") != OK, outcome
    assert "comparison back" in marks, "no comparison after the prosody stage was restarted"


async def _streamed_load(
    cluster: Cluster,
    request: gateway_pb2.AssessRequest,
    profile: Profile,
    outcomes: list[Outcome],
    stop: asyncio.Event,
    began: float,
) -> None:
    """As load.grpc_load, but each outcome is appended as it comes (the script watches them)."""

    async def one_client(index: int) -> None:
        async with grpc.aio.insecure_channel(cluster.gateway.address) as channel:
            stub = gateway_pb2_grpc.GatewayServiceStub(channel)
            while not stop.is_set():
                started = time.monotonic()
                try:
                    reply = await stub.Assess(request, metadata=cluster.metadata(), timeout=60)
                except grpc.aio.AioRpcError as exc:
                    latency = time.monotonic() - started
                    outcomes.append(Outcome(index, started - began, latency, exc.code().name, exc.details() or ""))
                    continue
                latency = time.monotonic() - started
                outcome = _from_assessment(index, started - began, latency, reply.assessment)
                messages = "; ".join(f"{s.stage}: {s.message}" for s in reply.assessment.stages if s.message)
                outcomes.append(dataclasses.replace(outcome, message=messages))

    await asyncio.gather(*(one_client(i) for i in range(profile.fault_clients)))
