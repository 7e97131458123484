"""A real ProsodyService on loopback: Analyze and Compare answer, with an alignment carried in
protobuf; bad input gets INVALID_ARGUMENT naming the problem; the server stays up and healthy."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
import pytest_asyncio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common.pb import common_pb2, prosody_pb2, prosody_pb2_grpc
from services.common.server import MeshServer
from services.prosody.server import build_server
from services.prosody.servicer import SERVICE_NAME
from tests.conftest import loopback_env, serving

ENVIRON = loopback_env("prosody")


@pytest_asyncio.fixture(scope="module")
async def server() -> AsyncIterator[MeshServer]:
    async with serving(build_server(ENVIRON)) as mesh:
        yield mesh


@pytest_asyncio.fixture(scope="module")
async def stub(server: MeshServer) -> AsyncIterator[prosody_pb2_grpc.ProsodyServiceStub]:
    async with grpc.aio.insecure_channel(server.address) as channel:
        yield prosody_pb2_grpc.ProsodyServiceStub(channel)


@pytest_asyncio.fixture(scope="module")
async def features(stub: prosody_pb2_grpc.ProsodyServiceStub, test_wav_bytes: bytes) -> prosody_pb2.ProsodyFeatures:
    response = await stub.Analyze(prosody_pb2.AnalyzeRequest(audio=common_pb2.Audio(content=test_wav_bytes)))
    return response.features


async def test_analyze(stub: prosody_pb2_grpc.ProsodyServiceStub, test_wav_bytes: bytes) -> None:
    response = await stub.Analyze(prosody_pb2.AnalyzeRequest(audio=common_pb2.Audio(content=test_wav_bytes)))
    f = response.features
    frames = f.pitch.f0_hz.shape[0]
    assert f.pitch.hop_s == pytest.approx(0.01)
    assert frames == pytest.approx(f.duration_s / 0.01, abs=2)
    assert list(f.energy_db.shape) == [frames]
    assert list(f.acoustic.shape) == [frames, 26]
    assert 60 < f.pitch.median_hz < 400
    assert f.voice_quality.voiced_frames > 100
    assert f.HasField("maqam") and f.maqam.name
    stages = {t.stage for t in response.timings}
    assert {"prosody", "prosody.pitch", "prosody.voice_quality", "prosody.maqam"} <= stages


async def test_compare_self_through_protobuf(
    stub: prosody_pb2_grpc.ProsodyServiceStub, features: prosody_pb2.ProsodyFeatures
) -> None:
    side = prosody_pb2.Recitation(features=features)
    response = await stub.Compare(prosody_pb2.CompareRequest(learner=side, reference=side, reciter="husary"))
    c = response.comparison
    assert c.reciter == "husary"
    assert c.similarity == 100.0
    assert c.word_alignment == "dtw"
    assert c.HasField("same_maqam") and c.same_maqam


async def test_compare_with_alignments(
    stub: prosody_pb2_grpc.ProsodyServiceStub, features: prosody_pb2.ProsodyFeatures
) -> None:
    """Two words and a madd on the reference's alignment: paired by index, the madd measured."""
    alif, fatha = "\u0627", "\u064e"
    ba, la = "ب" + fatha, "ل" + fatha
    reference = common_pb2.Reference(
        phonemes=ba * 3 + la + alif * 4,
        rules=[
            common_pb2.ReferenceRule(
                rule="MaddTabeeiRule",
                correctness_type="count",
                golden_len=2,
                phoneme_start=8,
                phoneme_end=12,
                word_index=1,
            )
        ],
    )

    def span(a: float, b: float) -> common_pb2.FrameSpan:
        return common_pb2.FrameSpan(start_s=a, end_s=b)

    # Word 0: three CV groups of 0.3 s (one haraka each); word 1: a CV group and a 1.2 s madd.
    onsets = [1.0, 1.3, 1.6, 1.9]
    tokens = []
    for k, onset in enumerate(onsets):
        tokens.append(
            common_pb2.AlignedToken(phoneme="ل" if k == 3 else "ب", phoneme_index=2 * k, span=span(onset, onset + 0.1))
        )
        tokens.append(
            common_pb2.AlignedToken(phoneme=fatha, phoneme_index=2 * k + 1, span=span(onset + 0.1, onset + 0.3))
        )
    tokens += [
        common_pb2.AlignedToken(phoneme=alif, phoneme_index=8 + k, span=span(2.2 + 0.3 * k, 2.5 + 0.3 * k))
        for k in range(4)
    ]
    groups = [
        common_pb2.AlignedGroup(phonemes=la if k == 3 else ba, word_index=0 if k < 3 else 1, span=span(o, o + 0.3))
        for k, o in enumerate(onsets)
    ]
    groups.append(common_pb2.AlignedGroup(phonemes=alif * 4, word_index=1, span=span(2.2, 3.4)))
    alignment = common_pb2.Alignment(
        confidence=1.0,
        words=[
            common_pb2.AlignedWord(word_index=0, uthmani="بَبَبَ", span=span(1.0, 1.9)),
            common_pb2.AlignedWord(word_index=1, uthmani="لَا", span=span(1.9, 3.4)),
        ],
        tokens=tokens,
        groups=groups,
    )
    side = prosody_pb2.Recitation(features=features, reference=reference, alignment=alignment)
    c = (await stub.Compare(prosody_pb2.CompareRequest(learner=side, reference=side))).comparison
    assert c.word_alignment == "alignment"
    assert [w.word_index for w in c.words] == [0, 1]
    assert [w.text for w in c.words] == ["بَبَبَ", "لَا"]
    assert c.tempo_source == "haraka" and c.tempo_ratio == pytest.approx(1.0)
    (madd,) = c.madds
    assert madd.rule == "MaddTabeeiRule" and madd.word_index == 1
    # 1.2 s of madd over a 0.3 s haraka.
    assert madd.reference_harakat == pytest.approx(4.0, abs=0.01)
    assert c.HasField("learner_rhythm") and c.learner_rhythm.percent_v > 0
    assert c.similarity == 100.0


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (prosody_pb2.AnalyzeRequest(), "audio is missing"),
        (prosody_pb2.AnalyzeRequest(audio=common_pb2.Audio(content=b"not audio at all")), ""),
    ],
)
async def test_bad_analyze(
    stub: prosody_pb2_grpc.ProsodyServiceStub, request_: prosody_pb2.AnalyzeRequest, message: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Analyze(request_)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in (err.value.details() or "")


async def test_bad_compare(
    stub: prosody_pb2_grpc.ProsodyServiceStub, features: prosody_pb2.ProsodyFeatures, server: MeshServer
) -> None:
    side = prosody_pb2.Recitation(features=features)
    broken = prosody_pb2.ProsodyFeatures()
    broken.CopyFrom(features)
    del broken.acoustic.shape[:]
    broken.acoustic.shape.extend([3, 26])
    cases = [
        (prosody_pb2.CompareRequest(learner=side), "both learner and reference"),
        (prosody_pb2.CompareRequest(learner=prosody_pb2.Recitation(), reference=side), "learner.features is missing"),
        (
            prosody_pb2.CompareRequest(learner=side, reference=prosody_pb2.Recitation(features=broken)),
            "reference.features.acoustic",
        ),
    ]
    for request, message in cases:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Compare(request)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert message in (err.value.details() or "")
    async with grpc.aio.insecure_channel(server.address) as channel:
        health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=SERVICE_NAME))
    assert health.status == health_pb2.HealthCheckResponse.SERVING
