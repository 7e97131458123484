"""TranscribeLive on a real AsrService on loopback (the demo checkpoint): the same Transcription
as the unary Transcribe where the segment is one window, the streamed windows' answer where it
is several, progress while the audio arrives, and every misuse answered with its status while
the server stays up."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Sequence

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from rapidfuzz.distance import Levenshtein

from services.asr import convert
from services.asr.engine import AsrEngine
from services.asr.servicer import SERVICE_NAME, build_server
from services.common import metrics, tensors
from services.common.pb import asr_pb2, asr_pb2_grpc, common_pb2
from services.common.server import MeshServer
from services.common.settings import ServerSettings
from tests.asr import support
from tests.conftest import loopback_env, serving

RATE = support.RATE
MAX_AHEAD_S = 8.0
IDLE_S = 3.0
LEVELS = ["phonemes", "qalqla"]
OPTIONS = asr_pb2.TranscribeOptions(include_log_probs=True, levels=LEVELS)
S16_MONO = common_pb2.RawPcm(sample_rate_hz=RATE, channels=1, encoding=common_pb2.PCM_ENCODING_S16LE)


@pytest.fixture(scope="module")
async def served() -> AsyncIterator[tuple[MeshServer, AsrEngine]]:
    config = support.demo_config(
        MUAALEM_ASR_STREAM_WINDOW_S="3",
        MUAALEM_ASR_STREAM_LEFT_S="2",
        MUAALEM_ASR_STREAM_RIGHT_S="1",
        MUAALEM_ASR_STREAM_MAX_AHEAD_S=str(MAX_AHEAD_S),
        MUAALEM_ASR_STREAM_IDLE_S=str(IDLE_S),
    )
    mesh, engine = build_server(config, ServerSettings.from_env("asr", loopback_env("asr")))
    async with serving(mesh):
        yield mesh, engine


@pytest.fixture(scope="module")
async def channel(served: tuple[MeshServer, AsrEngine]) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(served[0].address) as open_channel:
        yield open_channel


@pytest.fixture
def stub(channel: grpc.aio.Channel) -> asr_pb2_grpc.AsrServiceStub:
    return asr_pb2_grpc.AsrServiceStub(channel)


def s16(samples: np.ndarray) -> bytes:
    return (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()


def config(
    layout: common_pb2.RawPcm = S16_MONO, options: asr_pb2.TranscribeOptions = OPTIONS
) -> asr_pb2.TranscribeLiveRequest:
    return asr_pb2.TranscribeLiveRequest(
        config=asr_pb2.TranscribeLiveConfig(session_id="test-session", options=options, pcm_format=layout)
    )


def audio(data: bytes) -> asr_pb2.TranscribeLiveRequest:
    return asr_pb2.TranscribeLiveRequest(audio=data)


def end(segment_samples: int | None = None) -> asr_pb2.TranscribeLiveRequest:
    message = asr_pb2.TranscribeLiveEnd()
    if segment_samples is not None:
        message.segment_samples = segment_samples
    return asr_pb2.TranscribeLiveRequest(end=message)


async def live(
    stub: asr_pb2_grpc.AsrServiceStub, pcm: bytes, *, chunk_bytes: int, layout: common_pb2.RawPcm = S16_MONO
) -> tuple[asr_pb2.Transcription, list[asr_pb2.TranscribeLiveProgress]]:
    """A client as a live session is one: chunks as they are recorded, kept within the server's
    limit by the progress it answers with (received_s - computed_s)."""
    call = stub.TranscribeLive()
    await call.write(config(layout))
    progress: list[asr_pb2.TranscribeLiveProgress] = []
    bytes_per_s = 2 * max(layout.channels, 1) * layout.sample_rate_hz
    computed_s = 0.0
    for offset in range(0, len(pcm), chunk_bytes):
        while (offset + chunk_bytes) / bytes_per_s - computed_s > MAX_AHEAD_S - 1:
            reply = await call.read()
            progress.append(reply.progress)
            computed_s = reply.progress.computed_s
        await call.write(audio(pcm[offset : offset + chunk_bytes]))
    await call.write(end())
    await call.done_writing()
    while (reply := await call.read()) is not grpc.aio.EOF:
        if reply.HasField("transcription"):
            return reply.transcription, progress
        progress.append(reply.progress)
    raise AssertionError("the stream ended without a transcription")


async def unary(stub: asr_pb2_grpc.AsrServiceStub, layout: common_pb2.RawPcm, pcm: bytes) -> asr_pb2.Transcription:
    raw = common_pb2.RawPcm()
    raw.CopyFrom(layout)
    raw.data = pcm
    request = asr_pb2.TranscribeRequest(audio=common_pb2.Audio(pcm=raw), options=OPTIONS)
    return (await stub.Transcribe(request)).transcription


def log_probs(transcription: asr_pb2.Transcription) -> dict[str, np.ndarray]:
    return {item.level: tensors.from_proto(item.log_probs) for item in transcription.log_probs}


async def test_a_segment_within_one_window_is_the_unary_transcription(stub: asr_pb2_grpc.AsrServiceStub) -> None:
    """3.5 s at 48 kHz stereo, shorter than W + R: resampled as it arrives and run as one window
    at `end`, the answer is the unary call's on the same PCM."""
    samples = support.recording("test.wav")[: int(3.5 * RATE)]
    rng = np.random.default_rng(0)
    stereo48 = np.repeat(np.interp(np.arange(3 * samples.size) / 3, np.arange(samples.size), samples), 2)
    stereo48 = stereo48 + 0.001 * rng.standard_normal(stereo48.size)
    layout = common_pb2.RawPcm(sample_rate_hz=48_000, channels=2, encoding=common_pb2.PCM_ENCODING_S16LE)
    pcm = s16(stereo48)
    streamed, progress = await live(stub, pcm, chunk_bytes=4 * 4_799, layout=layout)
    whole = await unary(stub, layout, pcm)
    assert streamed.num_frames == whole.num_frames == 87
    # Nothing ran before `end` (the segment never reached W + R): one window, after it.
    assert [(p.windows, p.frames_computed) for p in progress] == [(1, 87)]
    assert streamed.decode == whole.decode
    assert [item.level for item in streamed.log_probs] == LEVELS
    for level, values in log_probs(whole).items():
        np.testing.assert_allclose(log_probs(streamed)[level], values, rtol=1e-3, atol=2e-3)
    assert streamed.chunking == "stream" and streamed.model_version == whole.model_version
    stages = [t.stage for t in streamed.timings]
    assert stages == ["decode_audio", "features", "queue", "model", "model_after_end", "ctc_decode", "after_end"]


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
async def test_a_longer_segment_is_encoded_while_it_arrives(
    stub: asr_pb2_grpc.AsrServiceStub, served: tuple[MeshServer, AsrEngine]
) -> None:
    """15 s of the synthetic reciter (the voice the demo model hears) in 100 ms chunks: windows
    run while the audio arrives (progress says so), and the answer is the streaming
    recognizer's, close to the unary call's."""
    from services.demo.synth.reciter import Spec, recite

    pcm = s16(recite(Spec(113, 1, last_ayah=3, tempo=0.3)).samples)
    streamed, progress = await live(stub, pcm, chunk_bytes=2 * RATE // 10)
    frames = [p.frames_computed for p in progress]
    assert frames == sorted(frames) and frames[-1] == streamed.num_frames and len(progress) >= 4
    assert frames[0] == 75 and progress[0].received_s >= 4.0  # the first core (3 s) waits for R (1 s)
    assert all(p.received_s - p.computed_s <= MAX_AHEAD_S for p in progress)
    whole = await unary(stub, S16_MONO, pcm)
    assert streamed.num_frames == whole.num_frames > 350
    # The same computation in process: the wire adds nothing but float16 log-probs.
    engine = served[1]
    handle = engine.streaming.create_stream(convert.transcribe_options(OPTIONS))
    handle.accept_waveform(np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768)
    handle.input_finished()
    local = await engine.streaming.result(handle)
    assert streamed.decode.phonemes == local.decode.phonemes
    for level, values in log_probs(streamed).items():
        np.testing.assert_allclose(values, local.log_probs[level], rtol=1e-3, atol=2e-3)  # float16 on the wire
    # Windows see 6 s, not the whole segment: close to the unary decode, not always equal.
    edits = Levenshtein.distance(streamed.decode.phonemes, whole.decode.phonemes)
    assert edits <= 0.1 * len(whole.decode.phonemes)
    same = np.mean(log_probs(streamed)["phonemes"].argmax(1) == log_probs(whole)["phonemes"].argmax(1))
    assert same > 0.85


async def status_of(
    stub: asr_pb2_grpc.AsrServiceStub, messages: Sequence[asr_pb2.TranscribeLiveRequest]
) -> grpc.aio.AioRpcError:
    async def requests() -> AsyncIterator[asr_pb2.TranscribeLiveRequest]:
        for message in messages:
            yield message

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in stub.TranscribeLive(requests()):
            pass
    return caught.value


SECOND = s16(np.zeros(RATE, dtype=np.float32) + 0.01)
MISUSE = [
    ("audio first", [audio(SECOND)], grpc.StatusCode.INVALID_ARGUMENT, "first message must be `config`"),
    ("nothing", [], grpc.StatusCode.INVALID_ARGUMENT, "stream was empty"),
    ("config twice", [config(), config()], grpc.StatusCode.INVALID_ARGUMENT, "`config` was sent twice"),
    (
        "rate too low",
        [config(common_pb2.RawPcm(sample_rate_hz=4_000, channels=1, encoding=common_pb2.PCM_ENCODING_S16LE))],
        grpc.StatusCode.INVALID_ARGUMENT,
        "config.pcm_format.sample_rate_hz is 4000; supported rates are 8000..768000 Hz",
    ),
    (
        "rate too high",
        [config(common_pb2.RawPcm(sample_rate_hz=1_000_000, channels=1, encoding=common_pb2.PCM_ENCODING_F32LE))],
        grpc.StatusCode.INVALID_ARGUMENT,
        "config.pcm_format.sample_rate_hz is 1000000",
    ),
    (
        "no encoding",
        [config(common_pb2.RawPcm(sample_rate_hz=RATE, channels=1))],
        grpc.StatusCode.INVALID_ARGUMENT,
        "config.pcm_format.encoding is unset",
    ),
    ("no layout", [asr_pb2.TranscribeLiveRequest(config=asr_pb2.TranscribeLiveConfig())],
     grpc.StatusCode.INVALID_ARGUMENT, "config.pcm_format is missing"),
    (
        "segmentation",
        [config(options=asr_pb2.TranscribeOptions(force_segmentation=True))],
        grpc.StatusCode.INVALID_ARGUMENT,
        "options.force_segmentation",
    ),
    ("frame phases", [config(options=asr_pb2.TranscribeOptions(frame_phases=4))],
     grpc.StatusCode.INVALID_ARGUMENT, "options.frame_phases is 4: a stream decodes one phase"),
    ("unknown level", [config(options=asr_pb2.TranscribeOptions(levels=["tone"]))],
     grpc.StatusCode.INVALID_ARGUMENT, "unknown level(s) tone"),
    ("half a sample", [config(), audio(SECOND + b"\x00")], grpc.StatusCode.INVALID_ARGUMENT,
     "audio message 1: 32001 bytes are not a whole number of 1-channel S16LE frames (2 bytes each)"),
    ("stops halfway", [config(), audio(SECOND)], grpc.StatusCode.INVALID_ARGUMENT,
     "closed after 1 audio messages (1.00 s) without `end`"),
    ("after end", [config(), audio(SECOND), end(), audio(SECOND)], grpc.StatusCode.INVALID_ARGUMENT,
     "a message came after `end`"),
    ("end past the audio", [config(), audio(SECOND), end(RATE + 1)], grpc.StatusCode.INVALID_ARGUMENT,
     "end.segment_samples is 16001; it must be 1..16000"),
    ("too short", [config(), audio(SECOND[:200]), end()], grpc.StatusCode.INVALID_ARGUMENT, "at least 35 ms"),
    ("running ahead", [config(), audio(SECOND * 9)], grpc.StatusCode.RESOURCE_EXHAUSTED,
     "9.0 s of audio ahead of the encoder (the limit is 8 s, MUAALEM_ASR_STREAM_MAX_AHEAD_S)"),
]


@pytest.mark.parametrize(("case", "messages", "code", "message"), MISUSE, ids=[m[0] for m in MISUSE])
async def test_misuse_gets_its_status_and_the_server_stays_up(
    stub: asr_pb2_grpc.AsrServiceStub,
    channel: grpc.aio.Channel,
    case: str,
    messages: list[asr_pb2.TranscribeLiveRequest],
    code: grpc.StatusCode,
    message: str,
) -> None:
    error = await status_of(stub, messages)
    assert error.code() == code, (case, error.details())
    assert message in (error.details() or ""), error.details()
    reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=SERVICE_NAME))
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_a_silent_client_is_closed_after_the_idle_limit(stub: asr_pb2_grpc.AsrServiceStub) -> None:
    call = stub.TranscribeLive()
    await call.write(config())
    await call.write(audio(SECOND))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await asyncio.wait_for(call.read(), IDLE_S + 10)
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert f"no message for {IDLE_S:g} s after 1 audio messages" in (caught.value.details() or "")


async def test_a_client_that_goes_away_leaves_nothing_behind(
    stub: asr_pb2_grpc.AsrServiceStub, served: tuple[MeshServer, AsrEngine]
) -> None:
    """Cancelled while its windows run: the server drops them and serves the next stream."""
    call = stub.TranscribeLive()
    await call.write(config())
    await call.write(audio(SECOND * 7))
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call.read()
    engine = served[1]
    in_flight = metrics.IN_FLIGHT.labels("asr", "/muaalem.v1.AsrService/TranscribeLive")

    def readers() -> list[asyncio.Task[object]]:
        return [t for t in asyncio.all_tasks() if t.get_name() == "transcribe-live-reader"]

    for _ in range(200):
        if in_flight._value.get() == 0 and not readers() and engine._state().asr.depth == 0:
            break
        await asyncio.sleep(0.05)
    assert in_flight._value.get() == 0 and not readers() and engine._state().asr.depth == 0
    pcm = s16(support.recording("test.wav")[: 2 * RATE])
    transcription, _ = await live(stub, pcm, chunk_bytes=3200)
    assert transcription.num_frames == 50
