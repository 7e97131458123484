"""Live sessions (AssessLive) on the real processes: bad inputs, a client that goes away
mid-segment, the asr stage killed mid-session, a client at 10x real time, a client that sends
nothing. The gateway must answer each with a clear status and stay up."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Sequence

import grpc
import numpy as np

from services.common.pb import common_pb2, gateway_pb2, gateway_pb2_grpc
from tests.conftest import AUDIO_DIR
from tests.reliability.cluster import Cluster
from tests.reliability.report import Report

TARGET = common_pb2.Target(words=common_pb2.WordRangeTarget(surah=8, ayah=75, start_word=17, word_count=9))


def _pcm() -> bytes:
    import soundfile as sf

    samples, rate = sf.read(str(AUDIO_DIR / "test.wav"), dtype="int16", always_2d=True)
    assert rate == 16000
    return np.ascontiguousarray(samples[:, 0].astype("<i2")).tobytes()


def _config(**pcm: int) -> gateway_pb2.LiveConfig:
    layout = {"sample_rate_hz": 16000, "channels": 1, "encoding": common_pb2.PCM_ENCODING_S16LE, **pcm}
    return gateway_pb2.LiveConfig(
        target=TARGET,
        pcm=common_pb2.RawPcm(**layout),  # type: ignore[arg-type]
        options=gateway_pb2.AssessOptions(run_rules_on_mismatch=True),
    )


async def _stream(
    config: gateway_pb2.LiveConfig | None,
    audio: bytes,
    speed: float,
    extra: Sequence[gateway_pb2.AssessLiveRequest] = (),
) -> AsyncIterator[gateway_pb2.AssessLiveRequest]:
    for request in extra:
        yield request
    if config is not None:
        yield gateway_pb2.AssessLiveRequest(config=config)
    step = 3200
    began = time.perf_counter()
    for offset in range(0, len(audio), step):
        if speed > 0:
            await asyncio.sleep(max(0.0, began + offset / 32000 / speed - time.perf_counter()))
        yield gateway_pb2.AssessLiveRequest(audio=audio[offset : offset + step])


async def _run(
    cluster: Cluster, requests: AsyncIterator[gateway_pb2.AssessLiveRequest], address: str | None = None
) -> tuple[str, str, list[gateway_pb2.AssessLiveResponse], float]:
    started = time.perf_counter()
    events: list[gateway_pb2.AssessLiveResponse] = []
    async with grpc.aio.insecure_channel(address or cluster.gateway.address) as channel:
        stub = gateway_pb2_grpc.GatewayServiceStub(channel)
        metadata = [("authorization", f"Bearer {cluster.api_key}")]
        try:
            async for event in stub.AssessLive(requests, metadata=metadata, timeout=120):
                events.append(event)
            code, details = "OK", ""
        except grpc.aio.AioRpcError as exc:
            code, details = exc.code().name, exc.details() or ""
    return code, details, events, time.perf_counter() - started


BAD: dict[str, tuple[gateway_pb2.LiveConfig | None, bytes, list[gateway_pb2.AssessLiveRequest], str, str]] = {
    "audio before the config": (
        None,
        b"",
        [gateway_pb2.AssessLiveRequest(audio=b"\0\0")],
        "INVALID_ARGUMENT",
        "audio before config",
    ),
    "a second config": (_config(), b"", [], "INVALID_ARGUMENT", "second config"),
    "no audio layout": (gateway_pb2.LiveConfig(target=TARGET), b"", [], "INVALID_ARGUMENT", "layout"),
    "a chunk that splits a sample": (_config(), b"\0\0\0", [], "INVALID_ARGUMENT", "whole number"),
    "a 1 MiB chunk": (_config(), b"\0" * (1 << 20), [], "INVALID_ARGUMENT", "over the limit"),
    "a 4 kHz rate": (_config(sample_rate_hz=4000), b"", [], "INVALID_ARGUMENT", "8 kHz"),
    "surah 115": (
        gateway_pb2.LiveConfig(
            target=common_pb2.Target(ayah=common_pb2.AyahTarget(surah=115, ayah=1)),
            pcm=common_pb2.RawPcm(sample_rate_hz=16000, encoding=common_pb2.PCM_ENCODING_S16LE),
        ),
        b"",
        [],
        "INVALID_ARGUMENT",
        "surah 115",
    ),
    "3 s of white noise": (
        _config(),
        (np.random.default_rng(3).normal(0, 3000, 48000).clip(-32767, 32767)).astype("<i2").tobytes(),
        [],
        "INVALID_ARGUMENT",
        "no recitation detected",
    ),
}


async def _one_chunk(config: gateway_pb2.LiveConfig, data: bytes) -> AsyncIterator[gateway_pb2.AssessLiveRequest]:
    yield gateway_pb2.AssessLiveRequest(config=config)
    yield gateway_pb2.AssessLiveRequest(audio=data)


async def _twice() -> AsyncIterator[gateway_pb2.AssessLiveRequest]:
    yield gateway_pb2.AssessLiveRequest(config=_config())
    yield gateway_pb2.AssessLiveRequest(config=_config())


async def test_live_bad_inputs_end_the_session_with_a_clear_status(cluster: Cluster, report: Report) -> None:
    rows = []
    for name, (config, audio, extra, code, words) in BAD.items():
        if name == "a second config":
            got, details, _, took = await _run(cluster, _twice())
        elif name == "a 1 MiB chunk":
            got, details, _, took = await _run(cluster, _one_chunk(_config(), audio))
        else:
            got, details, _, took = await _run(cluster, _stream(config, audio, 0, extra))
        rows.append([name, got, details[:90], f"{took * 1000:.0f}"])
        assert got == code, (name, got, details)
        assert words in details, (name, details)
    assert cluster.gateway.health() == "SERVING"
    report.add("bad_input", "Live sessions (AssessLive): bad input", ["input", "status", "message", "ms"], rows)


async def test_live_faults_disconnect_stage_killed_fast_and_silent_clients(cluster: Cluster, report: Report) -> None:
    pcm = _pcm()
    rows = []

    # A client that goes away mid-segment: the gateway cancels its work and serves the next one.
    async with grpc.aio.insecure_channel(cluster.gateway.address) as channel:
        stub = gateway_pb2_grpc.GatewayServiceStub(channel)
        call = stub.AssessLive(
            _stream(_config(), pcm, 1.0), metadata=[("authorization", f"Bearer {cluster.api_key}")], timeout=60
        )
        async for event in call:
            if event.WhichOneof("kind") == "started":
                break
        await asyncio.sleep(2.0)
        call.cancel()
    code, details, events, took = await _run(cluster, _stream(_config(), pcm, 0))
    rows.append(["client disconnects mid-segment, then a new session", code, f"{len(events)} events", f"{took:.1f}"])
    assert code == "OK" and events[-1].WhichOneof("kind") == "final"

    # A client at 10x real time: slowed by backpressure, not refused, nothing lost.
    code, details, events, took = await _run(cluster, _stream(_config(), pcm, 10.0))
    segments = {e.segment.index for e in events if e.WhichOneof("kind") == "segment"}
    answered = {e.words.segment_index for e in events if e.WhichOneof("kind") == "words"} | {
        e.off_target.segment_index for e in events if e.WhichOneof("kind") == "off_target"
    }
    rows.append(["client at 10x real time", code, f"{len(segments)} segments, all answered", f"{took:.1f}"])
    assert code == "OK" and segments <= answered and events[-1].WhichOneof("kind") == "final"

    # The asr stage killed mid-session: degraded events, the session still ends.
    asr = cluster.stage("asr")

    async def kill_asr() -> None:
        await asyncio.sleep(3.0)
        asr.signal(signal.SIGKILL)
        await asyncio.to_thread(asr.wait, 10)

    killer = asyncio.create_task(kill_asr())
    code, details, events, took = await _run(cluster, _stream(_config(), pcm, 1.0))
    await killer
    degraded = [e for e in events if e.degraded]
    last = events[-1].WhichOneof("kind") if events else "none"
    rows.append(
        ["asr killed with SIGKILL mid-session", code, f"{len(degraded)} degraded events, last: {last}", f"{took:.1f}"]
    )
    asr.start()
    await asyncio.to_thread(asr.wait_serving, 120)
    assert code in {"OK", "UNAVAILABLE"}, details
    assert degraded or code != "OK"

    # A client that sends its config and then nothing: closed at the idle timeout.
    gateway = cluster.new_gateway("gateway-live-idle", MUAALEM_LIVE_IDLE_TIMEOUT_S="2")
    gateway.start()
    try:
        gateway.wait_serving(60)

        async def silent() -> AsyncIterator[gateway_pb2.AssessLiveRequest]:
            yield gateway_pb2.AssessLiveRequest(config=_config())
            await asyncio.sleep(30)

        code, details, _, took = await _run(cluster, silent(), gateway.address)
        rows.append(["client sends nothing after its config (idle timeout 2 s)", code, details[:60], f"{took:.1f}"])
        assert code == "DEADLINE_EXCEEDED" and "idle" in details and took < 10
    finally:
        gateway.stop()
    assert cluster.gateway.health() == "SERVING"
    report.add("faults", "Live sessions (AssessLive): faults", ["case", "status", "what came back", "s"], rows)
