"""A real AsrService on loopback (MeshServer, interceptors, health) over the tiny dev checkpoint."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Iterator

import grpc
import numpy as np
import pytest
import soundfile as sf
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.asr.engine import AsrEngine
from services.asr.servicer import SERVICE_NAME, AsrServicer, binding, build_server
from services.common import tensors
from services.common.pb import asr_pb2, asr_pb2_grpc, common_pb2
from services.common.server import MeshServer
from services.common.settings import ServerSettings
from tests.asr import support
from tests.conftest import loopback_env, serving

RATE = support.RATE
STREAM_LIMIT_S = 30
SERVER_ENV = loopback_env("asr")


@pytest.fixture(scope="module")
async def server() -> AsyncIterator[MeshServer]:
    config = support.config(MUAALEM_MAX_STREAM_AUDIO_S=str(STREAM_LIMIT_S))
    mesh, _ = build_server(config, ServerSettings.from_env("asr", SERVER_ENV))
    async with serving(mesh):
        yield mesh


@pytest.fixture(scope="module")
async def channel(server: MeshServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(server.address) as open_channel:
        yield open_channel


@pytest.fixture
def stub(channel: grpc.aio.Channel) -> asr_pb2_grpc.AsrServiceStub:
    return asr_pb2_grpc.AsrServiceStub(channel)


async def health(channel: grpc.aio.Channel) -> int:
    reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=SERVICE_NAME))
    return int(reply.status)


def file_audio(name: str) -> common_pb2.Audio:
    return common_pb2.Audio(content=(support.AUDIO_DIR / name).read_bytes(), name_hint=name)


def pcm_s16(samples: np.ndarray) -> bytes:
    return (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()


async def test_transcribe_wav_mp3_and_24_khz_stereo(stub: asr_pb2_grpc.AsrServiceStub) -> None:
    wav = (await stub.Transcribe(asr_pb2.TranscribeRequest(audio=file_audio("test.wav")))).transcription
    assert wav.num_frames == 219 and wav.frame_duration_s == pytest.approx(0.04)
    assert wav.model_version.dev_weights and wav.model_version.weights_digest
    assert wav.decode.phonemes and len(wav.decode.sifat) > 0
    assert [t.stage for t in wav.timings][:2] == ["decode_audio", "features"]
    assert not wav.log_probs and not wav.HasField("is_complete") and wav.chunking == "none"
    mp3 = (await stub.Transcribe(asr_pb2.TranscribeRequest(audio=file_audio("test.mp3")))).transcription
    # The mp3 decoder adds a few ms of priming and padding.
    assert abs(mp3.num_frames - wav.num_frames) <= 3
    stereo = (await stub.Transcribe(asr_pb2.TranscribeRequest(audio=file_audio("002282_15.wav")))).transcription
    assert stereo.audio_duration_s == pytest.approx(15.0, abs=0.05)
    assert stereo.num_frames == 375  # 749 feature frames


async def test_log_probs_travel_as_float16_with_their_shape(stub: asr_pb2_grpc.AsrServiceStub) -> None:
    options = asr_pb2.TranscribeOptions(include_log_probs=True, levels=["phonemes", "qalqla"])
    reply = await stub.Transcribe(asr_pb2.TranscribeRequest(audio=file_audio("test.wav"), options=options))
    levels = {item.level: item.log_probs for item in reply.transcription.log_probs}
    assert list(levels) == ["phonemes", "qalqla"]
    phonemes = levels["phonemes"]
    assert phonemes.dtype == common_pb2.D_TYPE_FLOAT16 and list(phonemes.shape) == [219, 43]
    assert len(phonemes.data) == 219 * 43 * 2
    values = tensors.from_proto(phonemes, ndim=2)
    assert values.min() >= -1e4
    np.testing.assert_allclose(np.exp(values).sum(axis=1), 1.0, atol=2e-2)
    assert list(levels["qalqla"].shape) == [219, 3]


async def test_streamed_file_equals_the_unary_call(stub: asr_pb2_grpc.AsrServiceStub, test_wav_bytes: bytes) -> None:
    data = test_wav_bytes
    options = asr_pb2.TranscribeOptions(include_log_probs=True, levels=["phonemes"])

    async def messages() -> AsyncIterator[asr_pb2.TranscribeStreamRequest]:
        yield asr_pb2.TranscribeStreamRequest(header=asr_pb2.TranscribeStreamHeader(options=options, name_hint="t.wav"))
        for start in range(0, len(data), 16_384):
            yield asr_pb2.TranscribeStreamRequest(chunk=data[start : start + 16_384])

    streamed = (await stub.TranscribeStream(messages())).transcription
    unary = (
        await stub.Transcribe(asr_pb2.TranscribeRequest(audio=file_audio("test.wav"), options=options))
    ).transcription
    assert streamed.decode.phonemes == unary.decode.phonemes
    assert streamed.log_probs[0].log_probs.data == unary.log_probs[0].log_probs.data


async def test_streamed_raw_pcm(stub: asr_pb2_grpc.AsrServiceStub) -> None:
    samples = support.long_recitation(25)
    data = pcm_s16(samples)
    layout = common_pb2.RawPcm(sample_rate_hz=RATE, channels=1, encoding=common_pb2.PCM_ENCODING_S16LE)

    async def messages() -> AsyncIterator[asr_pb2.TranscribeStreamRequest]:
        yield asr_pb2.TranscribeStreamRequest(header=asr_pb2.TranscribeStreamHeader(pcm_format=layout))
        for start in range(0, len(data), 64_000):
            yield asr_pb2.TranscribeStreamRequest(chunk=data[start : start + 64_000])

    result = (await stub.TranscribeStream(messages())).transcription
    assert result.audio_duration_s == pytest.approx(25.0)
    assert result.chunking == "windows" and len(result.segments) == 2


def stream_past_the_limit(address: str) -> tuple[grpc.RpcError, int]:
    """Streams ten minutes of PCM (twenty times the limit) with the sync client, which reports the
    server's status when it ends the call early; the asyncio client turns that into INTERNAL
    "Internal error from Core" (grpc/grpc#36066)."""
    layout = common_pb2.RawPcm(sample_rate_hz=RATE, channels=1, encoding=common_pb2.PCM_ENCODING_S16LE)
    second = pcm_s16(np.zeros(RATE, dtype=np.float32))
    sent = 0

    def messages() -> Iterator[asr_pb2.TranscribeStreamRequest]:
        nonlocal sent
        yield asr_pb2.TranscribeStreamRequest(header=asr_pb2.TranscribeStreamHeader(pcm_format=layout))
        for _ in range(600):
            sent += 1
            yield asr_pb2.TranscribeStreamRequest(chunk=second)

    with grpc.insecure_channel(address) as sync_channel:
        try:
            asr_pb2_grpc.AsrServiceStub(sync_channel).TranscribeStream(messages(), timeout=60)
        except grpc.RpcError as error:
            return error, sent
    raise AssertionError("ten minutes of audio were accepted")


async def test_stream_limit_is_enforced_while_receiving(server: MeshServer) -> None:
    error, sent = await asyncio.to_thread(stream_past_the_limit, server.address)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"limit of {STREAM_LIMIT_S} s (MUAALEM_MAX_STREAM_AUDIO_S)" in (error.details() or "")
    assert sent < 200, f"the client got to send {sent} s of audio before the server refused"


@pytest.mark.parametrize(
    ("first", "message"),
    [
        (asr_pb2.TranscribeStreamRequest(chunk=b"RIFF"), "first message must be the header"),
        (
            asr_pb2.TranscribeStreamRequest(
                header=asr_pb2.TranscribeStreamHeader(pcm_format=common_pb2.RawPcm(sample_rate_hz=RATE))
            ),
            "pcm_format needs sample_rate_hz > 0 and an encoding",
        ),
    ],
)
async def test_stream_protocol_errors(
    stub: asr_pb2_grpc.AsrServiceStub, first: asr_pb2.TranscribeStreamRequest, message: str
) -> None:
    # The server answers the first message without waiting for more. A client that kept writing
    # meanwhile could see its own write fail and grpc-python then reports INTERNAL ("Failed
    # execute_batch") in place of the server's status (seen once in CI): write one, then read.
    call = stub.TranscribeStream()
    await call.write(first)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in (caught.value.details() or "")


async def test_segment(stub: asr_pb2_grpc.AsrServiceStub) -> None:
    reply = await stub.Segment(asr_pb2.SegmentRequest(audio=file_audio("fatiha_long_track.wav")))
    assert reply.model_version.dev_weights and reply.frame_duration_s == pytest.approx(0.02)
    assert reply.intervals and all(0 <= i.start_s < i.end_s <= reply.audio_duration_s for i in reply.intervals)
    coarse = asr_pb2.SegmentOptions(min_silence_duration_ms=500, min_speech_duration_ms=300, pad_duration_ms=0)
    merged = await stub.Segment(asr_pb2.SegmentRequest(audio=file_audio("fatiha_long_track.wav"), options=coarse))
    assert len(merged.intervals) < len(reply.intervals)


async def test_model_info(stub: asr_pb2_grpc.AsrServiceStub) -> None:
    info = await stub.GetModelInfo(asr_pb2.GetModelInfoRequest())
    assert info.model_version.dev_weights and info.model_version.backend == "torch"
    assert next(v.level for v in info.vocabularies) == "phonemes" and len(info.vocabularies) == 11
    assert len(info.vocabularies[0].tokens) == 43 and info.vocabularies[0].tokens[0] == "[PAD]"
    assert info.frame_duration_s == pytest.approx(0.04) and info.sample_rate_hz == RATE
    assert info.segmenter_loaded and info.segmenter_version.dev_weights
    assert info.max_audio_s == 120.0 and info.window_s == 20.0 and info.parameters > 0


def wav_bytes(samples: np.ndarray, rate: int = RATE) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format="WAV", subtype="FLOAT")
    return buffer.getvalue()


def bad_requests() -> Iterator[tuple[str, asr_pb2.TranscribeRequest, str]]:
    f32 = common_pb2.PCM_ENCODING_F32LE
    yield "no audio", asr_pb2.TranscribeRequest(), "audio is missing"
    yield "empty file", asr_pb2.TranscribeRequest(audio=common_pb2.Audio(content=b"")), "empty"
    yield "not audio", asr_pb2.TranscribeRequest(audio=common_pb2.Audio(content=b"hello" * 100)), "cannot decode"
    short = common_pb2.RawPcm(data=np.zeros(100, "<f4").tobytes(), sample_rate_hz=RATE, encoding=f32)
    yield "too short", asr_pb2.TranscribeRequest(audio=common_pb2.Audio(pcm=short)), "at least 35 ms"
    nan = np.zeros(RATE, dtype="<f4")
    nan[100] = np.nan
    nan_pcm = common_pb2.RawPcm(data=nan.tobytes(), sample_rate_hz=RATE, encoding=f32)
    yield "nan", asr_pb2.TranscribeRequest(audio=common_pb2.Audio(pcm=nan_pcm)), "NaN or infinite"
    inf_file = np.zeros(RATE, dtype=np.float32)
    inf_file[5] = np.inf
    yield "inf", asr_pb2.TranscribeRequest(audio=common_pb2.Audio(content=wav_bytes(inf_file))), "NaN or infinite"
    long_pcm = common_pb2.RawPcm(
        data=bytes(2 * 121 * 8000), sample_rate_hz=8000, encoding=common_pb2.PCM_ENCODING_S16LE
    )
    yield "too long", asr_pb2.TranscribeRequest(audio=common_pb2.Audio(pcm=long_pcm)), "over the limit of 120 s"
    level = asr_pb2.TranscribeOptions(levels=["tajweed"])
    yield "level", asr_pb2.TranscribeRequest(audio=file_audio("test.wav"), options=level), "unknown level(s) tajweed"
    no_label = asr_pb2.TranscribeOptions(reference_sifat=[common_pb2.Sifat(phonemes_group="ب")])
    yield (
        "reference",
        asr_pb2.TranscribeRequest(audio=file_audio("test.wav"), options=no_label),
        "no hams_or_jahr label",
    )


@pytest.mark.parametrize(("case", "request_", "message"), list(bad_requests()), ids=[c for c, _, _ in bad_requests()])
async def test_bad_input_is_invalid_argument_and_the_server_stays_up(
    channel: grpc.aio.Channel,
    stub: asr_pb2_grpc.AsrServiceStub,
    case: str,
    request_: asr_pb2.TranscribeRequest,
    message: str,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Transcribe(request_)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, case
    assert message in (caught.value.details() or ""), caught.value.details()
    assert await health(channel) == health_pb2.HealthCheckResponse.SERVING


async def test_bad_segment_options_are_invalid_argument(stub: asr_pb2_grpc.AsrServiceStub) -> None:
    options = asr_pb2.SegmentOptions(pad_duration_ms=-30)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Segment(asr_pb2.SegmentRequest(audio=file_audio("test.wav"), options=options))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "pad_duration_ms=-30" in (caught.value.details() or "")


async def test_not_serving_until_the_model_is_loaded() -> None:
    engine = AsrEngine(support.config())
    gate = asyncio.Event()

    async def load_when_allowed() -> None:
        await gate.wait()
        await engine.start()

    mesh = MeshServer(
        ServerSettings.from_env("asr", SERVER_ENV),
        [binding(AsrServicer(engine))],
        on_start=load_when_allowed,
        on_stop=engine.close,
    )
    await mesh.start()
    try:
        async with grpc.aio.insecure_channel(mesh.address) as channel:
            assert await health(channel) == health_pb2.HealthCheckResponse.NOT_SERVING
            stub = asr_pb2_grpc.AsrServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.Transcribe(asr_pb2.TranscribeRequest(audio=file_audio("test.wav")))
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "not loaded" in (caught.value.details() or "")
            gate.set()
            await mesh.wait_ready(60)
            assert await health(channel) == health_pb2.HealthCheckResponse.SERVING
            reply = await stub.Transcribe(asr_pb2.TranscribeRequest(audio=file_audio("test.wav")))
            assert reply.transcription.num_frames == 219
    finally:
        await mesh.stop(grace=0)


async def test_servicer_works_without_a_grpc_context(server: MeshServer) -> None:
    """The gateway's in-process mode calls the servicer methods directly with context=None."""
    engine = AsrEngine(support.config())
    await engine.start()
    try:
        servicer = AsrServicer(engine)
        reply = await servicer.Transcribe(asr_pb2.TranscribeRequest(audio=file_audio("test.wav")), None)
        assert reply.transcription.num_frames == 219
        info = await servicer.GetModelInfo(asr_pb2.GetModelInfoRequest(), None)
        assert info.model_version.dev_weights
    finally:
        await engine.close()
