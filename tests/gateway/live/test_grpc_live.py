"""AssessLive over a real gRPC server on loopback: the shared recitation streamed at real time
and faster, and the bad inputs that must end a session with a clear status."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from services.client.options import build_request
from services.common.audio import decode_bytes
from services.common.pb import common_pb2, gateway_pb2, gateway_pb2_grpc
from services.common.server import MeshServer
from services.gateway.app import GatewayApp
from services.gateway.live.segmenter import Segmenter
from services.gateway.live.settings import LiveSettings
from services.gateway.server import build
from tests.conftest import AUDIO_DIR, serving
from tests.gateway.live.servers import TARGET, environ, last_verdicts, live_config, stream, wav_pcm

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
async def gateway(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[MeshServer, GatewayApp]]:
    server, app, _ = build(environ(tmp_path_factory.mktemp("live-grpc")))
    async with serving(server, ready_timeout=120, grace=1):
        yield server, app


@pytest.fixture(scope="module")
async def stub(gateway: tuple[MeshServer, GatewayApp]) -> AsyncIterator[gateway_pb2_grpc.GatewayServiceStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway[0].port}") as channel:
        yield gateway_pb2_grpc.GatewayServiceStub(channel)


async def _events(
    stub: gateway_pb2_grpc.GatewayServiceStub, requests: AsyncIterator[gateway_pb2.AssessLiveRequest]
) -> list[gateway_pb2.AssessLiveResponse]:
    return [event async for event in stub.AssessLive(requests, timeout=120)]


@pytest.mark.parametrize("speed", [1.0, 0.0], ids=["real-time", "as-fast-as-taken"])
async def test_the_recitation_streamed_live_ends_like_assess(
    stub: gateway_pb2_grpc.GatewayServiceStub, speed: float
) -> None:
    wav = AUDIO_DIR / "test.wav"
    events = await _events(stub, stream(live_config(), wav_pcm(wav), speed=speed))
    kinds = [e.WhichOneof("kind") for e in events]
    assert kinds[0] == "started" and kinds[-1] == "final"
    words = events[0].started.words
    assert len(words) == 9
    segments = [e.segment for e in events if e.WhichOneof("kind") == "segment"]
    assert segments and all(s.time_span.end_s > s.time_span.start_s for s in segments)
    assert all(s.time_span.start_s >= 0 and s.time_span.end_s <= 8.9 for s in segments)
    final = events[-1].final
    # Every target word has a live verdict, and its last one is the final Assessment's.
    assert last_verdicts(events) == {w.word_index: w.verdict for w in final.words}
    assert set(last_verdicts(events)) == set(range(9))
    unary = await stub.Assess(
        build_request(wav.read_bytes(), surah=8, ayah=75, words=(17, 9), run_rules_on_mismatch=True), timeout=120
    )
    assert [(w.word_index, w.uthmani, w.verdict) for w in final.words] == [
        (w.word_index, w.uthmani, w.verdict) for w in unary.assessment.words
    ]
    assert final.scores == unary.assessment.scores
    assert final.audio_duration_s == pytest.approx(unary.assessment.audio_duration_s, abs=0.01)


async def _status(
    stub: gateway_pb2_grpc.GatewayServiceStub, requests: list[gateway_pb2.AssessLiveRequest]
) -> grpc.aio.AioRpcError:
    async def gen() -> AsyncIterator[gateway_pb2.AssessLiveRequest]:
        for r in requests:
            yield r

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _events(stub, gen())
    return caught.value


def _config(**changes: object) -> gateway_pb2.LiveConfig:
    config = live_config()
    for name, value in changes.items():
        if name == "rate":
            config.pcm.sample_rate_hz = int(value)  # type: ignore[call-overload]
        elif name == "target":
            config.target.CopyFrom(value)  # type: ignore[arg-type]
        elif name == "no_layout":
            config.ClearField("pcm")
    return config


BAD = {
    "audio before config": (
        [gateway_pb2.AssessLiveRequest(audio=b"\0\0")],
        grpc.StatusCode.INVALID_ARGUMENT,
        "audio before config",
    ),
    "a second config": (
        [gateway_pb2.AssessLiveRequest(config=live_config()), gateway_pb2.AssessLiveRequest(config=live_config())],
        grpc.StatusCode.INVALID_ARGUMENT,
        "second config",
    ),
    "no layout": (
        [gateway_pb2.AssessLiveRequest(config=_config(no_layout=True))],
        grpc.StatusCode.INVALID_ARGUMENT,
        "layout",
    ),
    "odd byte count": (
        [gateway_pb2.AssessLiveRequest(config=live_config()), gateway_pb2.AssessLiveRequest(audio=b"\0\0\0")],
        grpc.StatusCode.INVALID_ARGUMENT,
        "not a whole number",
    ),
    "oversized chunk": (
        [gateway_pb2.AssessLiveRequest(config=live_config()), gateway_pb2.AssessLiveRequest(audio=b"\0" * (1 << 20))],
        grpc.StatusCode.INVALID_ARGUMENT,
        "over the limit",
    ),
    "rate under 8 kHz": (
        [gateway_pb2.AssessLiveRequest(config=_config(rate=4000))],
        grpc.StatusCode.INVALID_ARGUMENT,
        "8 kHz",
    ),
    "no such surah": (
        [
            gateway_pb2.AssessLiveRequest(
                config=_config(target=common_pb2.Target(ayah=common_pb2.AyahTarget(surah=115, ayah=1)))
            )
        ],
        grpc.StatusCode.INVALID_ARGUMENT,
        "surah 115",
    ),
    "nothing at all": ([], grpc.StatusCode.INVALID_ARGUMENT, "before its config"),
}


@pytest.mark.parametrize("case", list(BAD))
async def test_bad_input_ends_the_session_with_a_clear_status(
    stub: gateway_pb2_grpc.GatewayServiceStub, case: str
) -> None:
    requests, code, words = BAD[case]
    error = await _status(stub, requests)
    assert error.code() == code, error.details()
    assert words in (error.details() or ""), error.details()
    assert (await stub.GetServerInfo(gateway_pb2.GetServerInfoRequest(), timeout=10)).version


@pytest.mark.parametrize(
    "noise",
    [
        np.zeros(48000),
        np.random.default_rng(0).normal(0, 0.1, 48000),
        0.3 * np.sin(2 * np.pi * 440 * np.arange(48000) / 16000),
    ],
    ids=["silence", "white-noise", "tone"],
)
async def test_no_speech_is_no_recitation_in_live_and_in_assess(
    stub: gateway_pb2_grpc.GatewayServiceStub, noise: np.ndarray
) -> None:
    pcm = (np.clip(noise, -1, 1) * 32767).astype("<i2").tobytes()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _events(stub, stream(live_config(), pcm, speed=0))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "no recitation detected" in (caught.value.details() or "")
    request = gateway_pb2.AssessRequest(
        audio=common_pb2.Audio(
            pcm=common_pb2.RawPcm(data=pcm, sample_rate_hz=16000, channels=1, encoding=common_pb2.PCM_ENCODING_S16LE)
        ),
        target=TARGET,
    )
    with pytest.raises(grpc.aio.AioRpcError) as unary:
        await stub.Assess(request, timeout=60)
    assert unary.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    # Digital silence is refused by the loudness check first ("silent"); noise and tones by the VAD.
    assert "no recitation detected" in (unary.value.details() or "") or "silent" in (unary.value.details() or "")


async def test_the_cli_prints_live_events(
    gateway: tuple[MeshServer, GatewayApp], capsys: pytest.CaptureFixture[str]
) -> None:
    from services.cli import main

    argv = ["live", str(AUDIO_DIR / "test.wav"), "--surah", "8", "--ayah", "75", "--words", "17:9"]
    argv += ["--run-rules-on-mismatch", "--address", f"127.0.0.1:{gateway[0].port}"]
    assert await asyncio.to_thread(main, argv) == 0
    out = capsys.readouterr().out
    assert "session " in out and "segment 0:" in out and "words (" in out and "final: overall" in out


async def test_assess_streams_a_recording_over_the_unary_limit(
    gateway: tuple[MeshServer, GatewayApp], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import soundfile as sf

    from services.cli import main

    samples, rate = sf.read(str(AUDIO_DIR / "test.wav"), dtype="float32")
    long = tmp_path / "three-minutes.wav"
    sf.write(str(long), np.tile(samples, 21), rate)  # 185 s: over the 120 s of a unary Assess
    argv = ["assess", str(long), "--surah", "8", "--ayah", "75", "--words", "17:9", "--json"]
    argv += ["--run-rules-on-mismatch", "--address", f"127.0.0.1:{gateway[0].port}"]
    assert await asyncio.to_thread(main, argv) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert '"audioDurationS": 18' in out


@contextlib.contextmanager
def _live_settings(app: GatewayApp, **changes: Any) -> Iterator[None]:
    assert app.live is not None
    saved = app.live.settings
    app.live.settings = dataclasses.replace(saved, **changes)
    try:
        yield
    finally:
        app.live.settings = saved


async def _until_started(call: Any) -> None:
    async for event in call:
        if event.WhichOneof("kind") == "started":
            return


async def test_a_client_that_goes_away_cancels_all_of_its_session(
    stub: gateway_pb2_grpc.GatewayServiceStub, gateway: tuple[MeshServer, GatewayApp]
) -> None:
    app = gateway[1]
    assert app.live is not None
    call = stub.AssessLive(stream(live_config(), wav_pcm(AUDIO_DIR / "test.wav"), speed=1.0), timeout=60)
    await _until_started(call)
    await asyncio.sleep(1.5)  # mid-segment
    assert app.live.active == 1
    call.cancel()
    for _ in range(50):
        if not app.live.sessions and app.live.active == 0:
            break
        await asyncio.sleep(0.1)
    assert not app.live.sessions and app.live.active == 0


async def test_a_client_that_sends_nothing_is_closed_at_the_idle_timeout(
    stub: gateway_pb2_grpc.GatewayServiceStub, gateway: tuple[MeshServer, GatewayApp]
) -> None:
    async def silent_client() -> AsyncIterator[gateway_pb2.AssessLiveRequest]:
        yield gateway_pb2.AssessLiveRequest(config=live_config())
        await asyncio.sleep(30)

    with _live_settings(gateway[1], idle_timeout_s=1.0):
        started = time.perf_counter()
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await _events(stub, silent_client())
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "idle" in (caught.value.details() or "")
    assert time.perf_counter() - started < 10


async def test_live_sessions_per_key_are_limited(
    stub: gateway_pb2_grpc.GatewayServiceStub, gateway: tuple[MeshServer, GatewayApp]
) -> None:
    with _live_settings(gateway[1], max_sessions_per_key=1):
        first = stub.AssessLive(stream(live_config(), wav_pcm(AUDIO_DIR / "test.wav"), speed=1.0), timeout=60)
        await _until_started(first)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await _events(stub, stream(live_config(), b"", speed=0))
        first.cancel()
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "live sessions" in (caught.value.details() or "")


async def _paced(
    config: gateway_pb2.LiveConfig, pcm: bytes, hurry: asyncio.Event
) -> AsyncIterator[gateway_pb2.AssessLiveRequest]:
    """The config, then 100 ms chunks at real time until `hurry` is set, then at once."""
    yield gateway_pb2.AssessLiveRequest(config=config)
    started = time.perf_counter()
    for offset in range(0, len(pcm), 3200):
        if not hurry.is_set():
            await asyncio.sleep(max(0.0, started + offset / 32000 - time.perf_counter()))
        yield gateway_pb2.AssessLiveRequest(audio=pcm[offset : offset + 3200])


async def test_a_draining_gateway_ends_a_running_session_with_its_final_assessment(tmp_path: Path) -> None:
    server, _, _ = build(environ(tmp_path, MUAALEM_SHUTDOWN_GRACE_S="60", MUAALEM_GATEWAY_HTTP_PORT="-1"))
    await server.start()
    events: list[gateway_pb2.AssessLiveResponse] = []
    try:
        await server.wait_ready(timeout=120)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = gateway_pb2_grpc.GatewayServiceStub(channel)
            # Real time, then as fast as the gateway takes it from the moment it drains: writes are
            # in flight (or waiting for the stream's flow-control window) while the session ends.
            # A write that met the ended call made the client report INTERNAL after the final.
            hurry = asyncio.Event()
            long_pcm = wav_pcm(AUDIO_DIR / "test.wav") * 20  # 3 minutes: still sending at the final
            call = stub.AssessLive(_paced(live_config(), long_pcm, hurry), timeout=120)

            async def collect() -> None:
                async for event in call:
                    events.append(event)

            reading = asyncio.create_task(collect())
            await asyncio.sleep(4.0)
            hurry.set()
            stopping = asyncio.create_task(server.stop(grace=60))  # what SIGTERM runs
            await reading
            await stopping
            assert await call.code() == grpc.StatusCode.OK
    finally:
        await server.stop(grace=0)
    warnings = [e.warning for e in events if e.WhichOneof("kind") == "warning"]
    assert any(w.code == "draining" for w in warnings)
    assert events[-1].WhichOneof("kind") == "final"
    assert 3.0 < events[-1].final.audio_duration_s < 8.0  # the audio so far, not the whole file


async def test_a_24_khz_stereo_recitation_is_segmented_as_the_file_decoded_at_16_khz(
    stub: gateway_pb2_grpc.GatewayServiceStub,
) -> None:
    import soundfile as sf

    path = AUDIO_DIR / "002282_15.wav"
    samples, rate = sf.read(str(path), dtype="int16", always_2d=True)
    assert (rate, samples.shape[1]) == (24000, 2)
    target = common_pb2.Target(words=common_pb2.WordRangeTarget(surah=2, ayah=282, start_word=0, word_count=16))
    config = live_config(target)
    config.pcm.sample_rate_hz, config.pcm.channels = rate, 2
    pcm = np.ascontiguousarray(samples.astype("<i2")).tobytes()
    events = await _events(stub, stream(config, pcm, speed=4.0, bytes_per_s=rate * 4))
    segments = [e.segment for e in events if e.WhichOneof("kind") == "segment"]
    # The segments the segmenter finds in the file decoded at 16 kHz mono: here one, from the end
    # of the room noise to the end (the reciter's held vowels are not pauses).
    segmenter = Segmenter(LiveSettings())
    expected = segmenter.feed(decode_bytes(path.read_bytes(), max_duration_s=60).samples) + segmenter.finish()
    assert len(segments) == len(expected) >= 1 and all(s.closed_by_pause for s in segments)
    for got, want in zip(segments, expected, strict=True):
        assert got.time_span.start_s == pytest.approx(want.start_s, abs=0.05)
        assert got.time_span.end_s == pytest.approx(want.end_s, abs=0.05)
    assert segments[0].time_span.start_s == pytest.approx(4.25, abs=0.15)
    final = events[-1].final
    assert final.audio_duration_s == pytest.approx(15.0, abs=0.05)
    assert last_verdicts(events) == {w.word_index: w.verdict for w in final.words}
    request = gateway_pb2.AssessRequest(
        audio=common_pb2.Audio(content=path.read_bytes()),
        target=target,
        options=gateway_pb2.AssessOptions(run_rules_on_mismatch=True),
    )
    unary = (await stub.Assess(request, timeout=120)).assessment
    assert [w.uthmani for w in final.words] == [w.uthmani for w in unary.words]


def _sample(name: str, **labels: str) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_a_session_over_capacity_is_refused_at_once_with_a_retry_delay(
    stub: gateway_pb2_grpc.GatewayServiceStub, gateway: tuple[MeshServer, GatewayApp]
) -> None:
    from google.rpc import error_details_pb2, status_pb2

    rejected = _sample("muaalem_live_sessions_rejected_total", reason="capacity")
    admitted = _sample("muaalem_live_sessions_admitted_total")
    events: list[gateway_pb2.AssessLiveResponse] = []
    started = asyncio.Event()
    refusals: list[grpc.aio.AioRpcError] = []
    waits: list[float] = []
    with _live_settings(gateway[1], capacity_sessions=1, retry_after_s=7.0):
        first = stub.AssessLive(stream(live_config(), wav_pcm(AUDIO_DIR / "test.wav"), speed=1.0), timeout=60)

        async def collect() -> None:
            async for event in first:
                events.append(event)
                started.set()

        reading = asyncio.create_task(collect())
        await asyncio.wait_for(started.wait(), 30)
        assert _sample("muaalem_live_sessions_capacity") == 1.0
        assert _sample("muaalem_live_sessions_active") == 1.0
        for _ in range(3):
            began = time.perf_counter()
            refusals.append(await _status(stub, [gateway_pb2.AssessLiveRequest(config=live_config())]))
            waits.append(time.perf_counter() - began)
        await reading
    # The admitted session went on to its end, undisturbed.
    assert events[-1].WhichOneof("kind") == "final"
    assert not any(e.degraded for e in events)
    for error in refusals:
        details = error.details() or ""
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "capacity of 1 live sessions" in details and "try again in 7 s" in details
        trailer = dict(error.trailing_metadata() or ())["grpc-status-details-bin"]
        status = status_pb2.Status.FromString(trailer)
        retry = error_details_pb2.RetryInfo()
        assert status.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0] and status.details[0].Unpack(retry)
        assert retry.retry_delay.seconds == 7
    # Refused before any work for the session (no reference, no stage): within 100 ms.
    assert min(waits) < 0.1 and max(waits) < 1.0, waits
    assert _sample("muaalem_live_sessions_rejected_total", reason="capacity") - rejected == 3
    assert _sample("muaalem_live_sessions_admitted_total") - admitted == 1
    assert _sample("muaalem_live_sessions_active") == 0.0
