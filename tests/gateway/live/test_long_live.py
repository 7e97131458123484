"""A long recording sent at 20x real time, ahead of the stages, ends with its final Assessment,
over the WebSocket and over gRPC, with the clients' keepalive on.

The gateway used to stop reading a client that was ahead of its stages (backpressure), so a
WebSocket's pong (and the client's own ping) waited behind unread audio and the keepalive closed
the connection (1011) a minute into a recording sent at 10x, with no final. The stand-in asr
takes CALL_DELAY_S per call, so the stages run at about 13x real time, behind the client (sent at
20x: at 10x a fast machine's stages kept up, and the test no longer tested a client ahead); the
WebSocket client pings every second and gives up after 4 s without an answer (its pongs took up
to 7.8 s when the gateway paused reading).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import numpy as np
import pytest
import websockets
from google.protobuf import json_format

from services.common.pb import common_pb2, gateway_pb2, gateway_pb2_grpc
from services.common.server import MeshServer
from services.gateway.follow.stretch import stretch_target
from services.gateway.server import HttpFrontEnd, build
from tests.conftest import serving
from tests.gateway.live.harness import build_assessor, join, local_stages
from tests.gateway.live.servers import environ, stream
from tests.gateway.live.tone_asr import ToneAsr, tone_for

# Minutes each (9 minutes of audio at 20x): make soak, not make test's 15-minute budget.
pytestmark = [pytest.mark.slow, pytest.mark.soak]

# 2:1-2:23 in tones, ayah by ayah with a pause after each: 8 to 9 minutes.
TARGET = common_pb2.Target(ayah_range=common_pb2.AyahRangeTarget(surah=2, first_ayah=1, last_ayah=23))
SPEED = 20.0
CALL_DELAY_S = 1.5
BYTES_PER_S = 32000  # s16le mono at 16 kHz
CHUNK_S = 0.1


@pytest.fixture(scope="module")
async def recitation() -> bytes:
    assessor = build_assessor(ToneAsr())
    words = list((await assessor.reference(TARGET, None)).reference.words)
    ayahs = []
    start = 0
    for k in range(1, len(words) + 1):
        if k == len(words) or words[k].ayah != words[start].ayah:
            stretch = (await assessor.reference(stretch_target(words, start, k), None)).reference
            ayahs.append(tone_for(stretch.phonemes))
            start = k
    audio = join(*ayahs)
    assert 8 * 60 < len(audio) / 16000 <= 9 * 60
    return (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()


@pytest.fixture(scope="module")
async def gateway(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[MeshServer, HttpFrontEnd]]:
    asr = ToneAsr()
    asr.delay_s = CALL_DELAY_S
    # Tones are not speech to Silero: the sessions segment on energy alone.
    env = environ(tmp_path_factory.mktemp("live-long"), MUAALEM_LIVE_VAD="energy")
    server, _, http = build(env, stages=local_stages(asr))
    assert http is not None
    async with serving(server, ready_timeout=120, grace=1):
        yield server, http


def _config() -> gateway_pb2.LiveConfig:
    return gateway_pb2.LiveConfig(
        target=TARGET,
        pcm=common_pb2.RawPcm(sample_rate_hz=16000, channels=1, encoding=common_pb2.PCM_ENCODING_S16LE),
        options=gateway_pb2.AssessOptions(run_rules_on_mismatch=True),
    )


def _check(kinds: list[str], final: gateway_pb2.Assessment, pcm: bytes, sent_s: float, final_s: float) -> None:
    assert kinds[0] == "started" and kinds[-1] == "final", kinds[-3:]
    assert final.audio_duration_s == pytest.approx(len(pcm) / BYTES_PER_S, abs=0.1)
    assert final.words
    # The client was ahead of the stages: it had sent everything long before they were done.
    assert final_s - sent_s > 5.0, (sent_s, final_s)


async def test_a_long_recording_at_10x_over_the_websocket_ends_with_its_final(
    gateway: tuple[MeshServer, HttpFrontEnd], recitation: bytes
) -> None:
    pcm = recitation
    url = f"ws://127.0.0.1:{gateway[1].port}/v1/live"
    events: list[dict[str, Any]] = []
    started = time.perf_counter()
    sent_s = 0.0
    async with websockets.connect(url, max_size=None, ping_interval=1, ping_timeout=4) as ws:

        async def send() -> None:
            nonlocal sent_s
            await ws.send(json.dumps({"config": json_format.MessageToDict(_config())}))
            step = int(CHUNK_S * BYTES_PER_S)
            for offset in range(0, len(pcm), step):
                await asyncio.sleep(max(0.0, started + offset / BYTES_PER_S / SPEED - time.perf_counter()))
                await ws.send(pcm[offset : offset + step])
            await ws.send(json.dumps({"end": True}))
            sent_s = time.perf_counter() - started

        sender = asyncio.create_task(send())
        latencies: list[float] = []

        async def watch() -> None:
            while True:
                await asyncio.sleep(0.5)
                latencies.append(ws.latency)

        watcher = asyncio.create_task(watch())
        try:
            async for frame in ws:
                events.append(json.loads(frame))
        finally:
            watcher.cancel()
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, websockets.ConnectionClosed):
                await sender
        final_s = time.perf_counter() - started
        assert ws.close_code == 1000, (ws.close_code, ws.close_reason, events[-1:])
    # Each ping's pong came at once, not after the audio sent before it (7.8 s here before).
    assert max(latencies) < 2.0, max(latencies)
    kinds = [next(iter(k for k in e if k not in {"audioS", "degraded"}), "") for e in events]
    final = json_format.ParseDict(events[-1].get("final", {}), gateway_pb2.Assessment())
    _check(kinds, final, pcm, sent_s, final_s)


async def test_a_long_recording_at_10x_over_grpc_ends_with_its_final(
    gateway: tuple[MeshServer, HttpFrontEnd], recitation: bytes
) -> None:
    pcm = recitation
    # The client pings as often as the gateway allows (every 10 s) and gives up after 5 s.
    options = [
        ("grpc.keepalive_time_ms", 10_000),
        ("grpc.keepalive_timeout_ms", 5_000),
        ("grpc.keepalive_permit_without_calls", 1),
    ]
    started = time.perf_counter()
    sent_s = 0.0

    async def requests() -> AsyncIterator[gateway_pb2.AssessLiveRequest]:
        nonlocal sent_s
        async for request in stream(_config(), pcm, speed=SPEED, chunk_s=CHUNK_S):
            yield request
        sent_s = time.perf_counter() - started

    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway[0].port}", options=options) as channel:
        call = gateway_pb2_grpc.GatewayServiceStub(channel).AssessLive(requests(), timeout=600)
        events = [event async for event in call]
        assert await call.code() == grpc.StatusCode.OK
    final_s = time.perf_counter() - started
    kinds = [e.WhichOneof("kind") or "" for e in events]
    _check(kinds, events[-1].final, pcm, sent_s, final_s)

