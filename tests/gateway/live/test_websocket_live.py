"""The live session over the WebSocket /v1/live of a real gateway on loopback (proto3 JSON in
text frames, audio in binary frames), with the key kept out of the URL."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from google.protobuf import json_format

from services.common.pb import gateway_pb2
from services.common.server import MeshServer
from services.gateway.app import GatewayApp
from services.gateway.auth import hash_key
from services.gateway.server import HttpFrontEnd, build
from tests.conftest import AUDIO_DIR, serving
from tests.gateway.live.servers import environ, live_config, wav_pcm

pytestmark = pytest.mark.slow
KEY = "live-test-key-0123456789"


@pytest.fixture(scope="module")
async def gateway(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[int, GatewayApp]]:
    root: Path = tmp_path_factory.mktemp("live-ws")
    server, app, http = build(environ(root, MUAALEM_API_KEYS=f"tester:{hash_key(KEY)}"))
    assert isinstance(http, HttpFrontEnd)
    mesh: MeshServer = server
    async with serving(mesh, ready_timeout=120, grace=1):
        yield http.port, app


@pytest.fixture(scope="module")
def http_port(gateway: tuple[int, GatewayApp]) -> int:
    return gateway[0]


async def _session(port: int, config: dict[str, Any], pcm: bytes, speed: float) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    async with websockets.connect(f"ws://127.0.0.1:{port}/v1/live", max_size=None) as ws:

        async def send() -> None:
            await ws.send(json.dumps({"config": config}))
            started = time.perf_counter()
            step = 3200
            for offset in range(0, len(pcm), step):
                if speed > 0:
                    await asyncio.sleep(max(0.0, started + offset / 32000 / speed - time.perf_counter()))
                await ws.send(pcm[offset : offset + step])
            await ws.send(json.dumps({"end": True}))

        sender = asyncio.create_task(send())
        try:
            async for frame in ws:
                events.append(json.loads(frame))
        except websockets.ConnectionClosedError:
            pass  # closed with an error code: its reason is the last frame
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, websockets.ConnectionClosed):
            await sender
    return events


@pytest.mark.parametrize("speed", [1.0, 0.0], ids=["real-time", "as-fast-as-taken"])
async def test_a_websocket_session_with_a_minted_token(http_port: int, speed: float) -> None:
    async with httpx.AsyncClient() as client:
        reply = await client.post(
            f"http://127.0.0.1:{http_port}/v1/live/token", headers={"authorization": f"Bearer {KEY}"}
        )
    assert reply.status_code == 200, reply.text
    config = json_format.MessageToDict(live_config())
    config["apiKey"] = reply.json()["token"]
    events = await _session(http_port, config, wav_pcm(AUDIO_DIR / "test.wav"), speed)
    assert "started" in events[0] and "final" in events[-1], events[-1]
    assert any("segment" in e for e in events)
    final = json_format.ParseDict(events[-1]["final"], gateway_pb2.Assessment())
    verdicts: dict[int, str] = {}
    for event in events:
        for word in event.get("words", {}).get("words", []):
            verdicts[word.get("wordIndex", 0)] = word["verdict"]
    assert verdicts == {w.word_index: gateway_pb2.WordVerdict.Name(w.verdict) for w in final.words}
    assert len(verdicts) == 9


async def test_a_token_is_good_once_and_a_missing_key_is_refused(http_port: int) -> None:
    config = json_format.MessageToDict(live_config())
    events = await _session(http_port, config, b"", 0)
    assert events[-1]["error"]["code"] == "UNAUTHENTICATED"
    config["apiKey"] = "lt_not-a-real-token"
    events = await _session(http_port, config, b"", 0)
    assert events[-1]["error"]["code"] == "UNAUTHENTICATED"


async def test_audio_before_config_closes_with_the_reason(http_port: int) -> None:
    frames: list[dict[str, Any]] = []
    async with websockets.connect(f"ws://127.0.0.1:{http_port}/v1/live") as ws:
        await ws.send(b"\0\0")
        with contextlib.suppress(websockets.ConnectionClosedError):
            async for frame in ws:
                frames.append(json.loads(frame))
    assert ws.close_code == 1008
    assert frames[-1]["error"]["code"] == "INVALID_ARGUMENT"
    assert "audio before config" in frames[-1]["error"]["message"]


@contextlib.contextmanager
def _live_settings(app: GatewayApp, **changes: Any) -> Iterator[None]:
    assert app.live is not None
    saved = app.live.settings
    app.live.settings = dataclasses.replace(saved, **changes)
    try:
        yield
    finally:
        app.live.settings = saved


async def _frames(ws: websockets.ClientConnection) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = []
    with contextlib.suppress(websockets.ConnectionClosedError):
        async for frame in ws:
            frames.append(json.loads(frame))
    return frames


async def test_an_idle_client_is_closed_with_1008_its_side(gateway: tuple[int, GatewayApp]) -> None:
    config = json_format.MessageToDict(live_config())
    config["apiKey"] = KEY
    with _live_settings(gateway[1], idle_timeout_s=1.0):
        async with websockets.connect(f"ws://127.0.0.1:{gateway[0]}/v1/live") as ws:
            await ws.send(json.dumps({"config": config}))
            frames = await _frames(ws)
    # 1011 is the server's trouble; a client that sends nothing is the client's side.
    assert ws.close_code == 1008, ws.close_code
    assert frames[-1]["error"]["code"] == "DEADLINE_EXCEEDED" and "idle" in frames[-1]["error"]["message"]


async def test_a_session_over_capacity_is_closed_with_1013_and_a_retry_delay(gateway: tuple[int, GatewayApp]) -> None:
    config = json_format.MessageToDict(live_config())
    config["apiKey"] = KEY
    url = f"ws://127.0.0.1:{gateway[0]}/v1/live"
    pcm = wav_pcm(AUDIO_DIR / "test.wav")
    with _live_settings(gateway[1], capacity_sessions=1, retry_after_s=12.0):
        running = asyncio.create_task(_session(gateway[0], config, pcm, speed=1.0))
        app = gateway[1]
        assert app.live is not None
        for _ in range(300):
            if app.live.active:
                break
            await asyncio.sleep(0.05)
        began = time.perf_counter()
        async with websockets.connect(url) as ws:
            await ws.send(json.dumps({"config": config}))
            frames = await _frames(ws)
        waited = time.perf_counter() - began
        events = await running
    assert ws.close_code == 1013, ws.close_code  # "try again later"
    assert ws.close_reason == "RESOURCE_EXHAUSTED: try again in 12 s"
    error = frames[-1]["error"]
    assert error["code"] == "RESOURCE_EXHAUSTED" and error["retryAfterS"] == 12.0
    assert "capacity of 1 live sessions" in error["message"]
    assert waited < 1.0, waited  # the connection's set-up included; the refusal itself is at once
    assert "final" in events[-1], events[-1]
