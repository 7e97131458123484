"""A real TajweedService on loopback: every validator answers, bad input is INVALID_ARGUMENT, the
server stays up; and the servicer works in-process with no context."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
import pytest_asyncio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common.errors import InvalidArgument
from services.common.pb import common_pb2, tajweed_pb2, tajweed_pb2_grpc
from services.common.server import MeshServer
from services.tajweed.config import TajweedConfig
from services.tajweed.core import TajweedValidator
from services.tajweed.server import build_server
from services.tajweed.servicer import SERVICE_NAME, TajweedServicer
from tests.conftest import loopback_env, serving
from tests.tajweed import synth

ENVIRON = loopback_env("tajweed")


@pytest_asyncio.fixture(scope="module")
async def server() -> AsyncIterator[MeshServer]:
    async with serving(build_server(ENVIRON)) as mesh:
        yield mesh


@pytest_asyncio.fixture(scope="module")
async def stub(server: MeshServer) -> AsyncIterator[tajweed_pb2_grpc.TajweedServiceStub]:
    async with grpc.aio.insecure_channel(server.address) as channel:
        yield tajweed_pb2_grpc.TajweedServiceStub(channel)


def rich_request() -> tajweed_pb2.ValidateRequest:
    """106:4 (munfasil, leen at the stop, shadda, idgham, ikhfa, qalqalah) recited with a letter
    substituted, a pause where the mushaf marks none, and a clean final stop."""
    ref = synth.reference(106, 4)
    durations = synth.natural_durations(ref, 0.32, 0.19)
    # A pause after أَطْعَمَهُم (no mark there) and a letter the model heard wrongly.
    last_of_word = {g.word_index: i for i, g in enumerate(ref.groups)}
    timing = synth.alignment(ref, durations, pauses={last_of_word[1]: 0.5})
    ja = synth.group_index(ref, "جُ")
    dec = synth.decode(synth.replace_group(ref, ja, "زُ"))
    return synth.request(
        ref, timing, dec, envelope=synth.energy(synth.envelope(timing), 0.01), is_complete=True
    )


async def test_every_validator_reports(stub: tajweed_pb2_grpc.TajweedServiceStub) -> None:
    reply = await stub.Validate(rich_request(), timeout=30)
    by_source: dict[str, list[common_pb2.Finding]] = {}
    for finding in reply.findings:
        by_source.setdefault(finding.source, []).append(finding)
    assert set(by_source) == {"madd", "shadda", "ghunnah", "qalqalah", "waqf", "explain_error"}
    rules = {common_pb2.Rule.Name(f.rule) for f in reply.findings}
    assert {"RULE_MADD_MUNFASIL", "RULE_MADD_LEEN", "RULE_SHADDA", "RULE_IDGHAM", "RULE_IKHFA", "RULE_QALQALAH",
            "RULE_WAQF", "RULE_PRONUNCIATION"} <= rules
    [letter] = by_source["explain_error"]
    assert (letter.expected_phonemes, letter.heard_phonemes) == ("جُ", "زُ")
    assert letter.verdict == common_pb2.VERDICT_WRONG
    pauses = [f for f in by_source["waqf"] if f.measured.HasField("duration_s")]
    assert [(f.word_index, f.verdict) for f in pauses] == [(1, common_pb2.VERDICT_WRONG)]
    for finding in reply.findings:
        assert finding.message_ar and finding.message_en
        assert 0.0 <= finding.confidence <= 1.0
        assert finding.uthmani_span.end >= finding.uthmani_span.start
    assert reply.tempo.haraka_s == pytest.approx(0.32, rel=0.05)
    assert not reply.tempo.from_prior
    stages = {t.stage for t in reply.timings}
    assert {"phonetic_index", "madd", "waqf", "explain_error", "tajweed"} <= stages


async def test_bad_input_is_invalid_argument_and_the_server_stays_up(
    server: MeshServer, stub: tajweed_pb2_grpc.TajweedServiceStub
) -> None:
    bad = rich_request()
    del bad.alignment.tokens[-1]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Validate(bad, timeout=30)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "one token per reference phoneme" in (caught.value.details() or "")
    async with grpc.aio.insecure_channel(server.address) as channel:
        health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=SERVICE_NAME))
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    reply = await stub.Validate(rich_request(), timeout=30)
    assert reply.findings


async def test_include_correct_filters_passed_checks(stub: tajweed_pb2_grpc.TajweedServiceStub) -> None:
    req = rich_request()
    req.options.include_correct = False
    reply = await stub.Validate(req, timeout=30)
    assert reply.findings
    assert all(f.verdict != common_pb2.VERDICT_CORRECT for f in reply.findings)


async def test_servicer_in_process_without_context() -> None:
    servicer = TajweedServicer(TajweedValidator(TajweedConfig()))
    reply = await servicer.Validate(rich_request())
    assert reply.findings
    with pytest.raises(InvalidArgument, match="reference is missing"):
        await servicer.Validate(tajweed_pb2.ValidateRequest())


async def test_a_calibration_sent_with_the_request_judges_it(stub: tajweed_pb2_grpc.TajweedServiceStub) -> None:
    """The model's own calibration (from beside its checkpoint, via the gateway) replaces the
    service's for that request; a bad one is INVALID_ARGUMENT naming the field."""
    import json

    plain = await stub.Validate(rich_request(), timeout=30)
    letter = next(f for f in plain.findings if f.rule == common_pb2.RULE_PRONUNCIATION)
    assert letter.verdict == common_pb2.VERDICT_WRONG and plain.calibration.defaults
    fitted = {"letter_min_confidence": round(letter.confidence + 0.01, 4), "fitted_on_surahs": [80, 81]}
    request = rich_request()
    request.calibration_json = json.dumps(fitted)
    calibrated = await stub.Validate(request, timeout=30)
    again = next(f for f in calibrated.findings if f.rule == common_pb2.RULE_PRONUNCIATION)
    assert again.verdict == common_pb2.VERDICT_UNCERTAIN
    assert calibrated.calibration.source == "model checkpoint" and not calibrated.calibration.defaults
    for bad, said in (("{", "calibration_json: not JSON"), (json.dumps({"fitted_on_surahs": [95]}), "evaluation")):
        request.calibration_json = bad
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Validate(request, timeout=30)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and said in (caught.value.details() or "")
