"""A real AlignmentService on loopback: Align answers, bad input is refused, the server stays up."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import numpy as np
import pytest
import pytest_asyncio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.alignment.config import AlignmentConfig
from services.alignment.core import Aligner
from services.alignment.server import build_server
from services.alignment.servicer import SERVICE_NAME, AlignmentServicer
from services.common import tensors
from services.common.pb import alignment_pb2, alignment_pb2_grpc, common_pb2
from services.common.server import MeshServer
from tests.conftest import loopback_env, serving

from . import synth

ENVIRON = loopback_env("alignment")


@pytest_asyncio.fixture(scope="module")
async def server() -> AsyncIterator[MeshServer]:
    async with serving(build_server(ENVIRON)) as mesh:
        yield mesh


@pytest_asyncio.fixture(scope="module")
async def channel(server: MeshServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(server.address) as opened:
        yield opened


def request_for(truth: synth.Truth, dtype: str = "float16") -> alignment_pb2.AlignRequest:
    ids = truth.ids.tolist()
    half = len(ids) // 2
    words = [
        common_pb2.ReferenceWord(uthmani="first", phoneme_start=0, phoneme_end=half),
        common_pb2.ReferenceWord(uthmani="silent", phoneme_start=half, phoneme_end=half),
        common_pb2.ReferenceWord(uthmani="second", phoneme_start=half, phoneme_end=len(ids)),
    ]
    groups = [
        common_pb2.ReferenceGroup(
            phonemes=truth.phonemes[k : k + 2],
            phoneme_start=k,
            phoneme_end=min(k + 2, len(ids)),
            word_index=0 if k < half else 2,
        )
        for k in range(0, len(ids), 2)
    ]
    return alignment_pb2.AlignRequest(
        phoneme_log_probs=tensors.to_proto(truth.log_probs, dtype),
        frame_duration_s=0.04,
        reference=common_pb2.Reference(
            phonemes=truth.phonemes, phoneme_ids=ids, groups=groups, words=words
        ),
    )


def truth_of(seed: int, length: int = 40) -> synth.Truth:
    rng = np.random.default_rng(seed)
    return synth.build(rng, synth.random_ids(rng, length))


async def test_health_is_serving_after_the_warm_up(channel: grpc.aio.Channel) -> None:
    stub = health_pb2_grpc.HealthStub(channel)
    reply = await stub.Check(health_pb2.HealthCheckRequest(service=SERVICE_NAME))
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_align_over_grpc(channel: grpc.aio.Channel) -> None:
    truth = truth_of(1)
    stub = alignment_pb2_grpc.AlignmentServiceStub(channel)
    reply = await stub.Align(request_for(truth), timeout=10)
    alignment = reply.alignment
    starts = np.array([t.span.start_frame for t in alignment.tokens])
    ends = np.array([t.span.end_frame for t in alignment.tokens])
    assert np.abs(starts - truth.starts).max() <= 1 and np.abs(ends - truth.ends).max() <= 1
    first = alignment.tokens[0]
    assert first.phoneme == truth.phonemes[0] and first.id == truth.ids[0] and first.phoneme_index == 0
    assert first.span.start_s == pytest.approx(first.span.start_frame * 0.04)
    assert first.competitor and first.competitor != first.phoneme and not first.flagged
    assert alignment.num_frames == truth.log_probs.shape[0]
    assert alignment.confidence == 1.0 and alignment.path_log_prob < 0
    assert [w.uthmani for w in alignment.words] == ["first", "silent", "second"]
    silent = alignment.words[1].span
    assert silent.start_frame == silent.end_frame == alignment.tokens[19].span.end_frame
    assert alignment.words[2].span.end_frame == alignment.tokens[-1].span.end_frame
    assert len(alignment.groups) == 20 and alignment.groups[3].span.start_frame == starts[6]
    assert {t.stage for t in reply.timings} == {"viterbi", "confidence", "alignment"}


@pytest.mark.parametrize(
    ("corrupt", "code", "expected"),
    [
        (lambda r: r.phoneme_log_probs.shape.__setitem__(0, 7), "INVALID_ARGUMENT", "phoneme_log_probs"),
        (lambda r: r.phoneme_log_probs.shape.append(1), "INVALID_ARGUMENT", "expected 2 dimensions"),
        (lambda r: r.reference.phoneme_ids.__setitem__(0, 99), "INVALID_ARGUMENT", "phoneme_ids[0] = 99"),
        (lambda r: r.reference.ClearField("phoneme_ids"), "INVALID_ARGUMENT", "no phonemes"),
        (lambda r: r.ClearField("frame_duration_s"), "INVALID_ARGUMENT", "frame_duration_s"),
        (lambda r: r.options.thresholds.__setitem__("X", 1.0), "INVALID_ARGUMENT", "'X'"),
        (
            lambda r: r.phoneme_log_probs.CopyFrom(
                tensors.to_proto(np.zeros((5, synth.V), dtype=np.float32))
            ),
            "FAILED_PRECONDITION",
            "gives 5 frames",
        ),
    ],
)
async def test_bad_input_is_refused_and_the_server_stays_up(
    channel: grpc.aio.Channel, corrupt: object, code: str, expected: str
) -> None:
    stub = alignment_pb2_grpc.AlignmentServiceStub(channel)
    request = request_for(truth_of(2))
    corrupt(request)  # type: ignore[operator]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Align(request, timeout=10)
    assert caught.value.code() == grpc.StatusCode[code]
    assert expected in (caught.value.details() or "")
    reply = await stub.Align(request_for(truth_of(3)), timeout=10)
    assert len(reply.alignment.tokens) == 40


async def test_servicer_works_in_process_without_a_context() -> None:
    servicer = AlignmentServicer(Aligner.from_config(AlignmentConfig.from_env({})))
    truth = truth_of(4, 12)
    reply = await servicer.Align(request_for(truth, "float32"), None)
    assert [t.span.start_frame for t in reply.alignment.tokens] == pytest.approx(
        truth.starts.tolist(), abs=1
    )
