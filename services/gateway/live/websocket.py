"""The WebSocket front end of live sessions: /v1/live, in the proto3 JSON mapping.

Text frames carry JSON: the client's first is `{"config": {...}}` (a LiveConfig), and
`{"end": true}` stands for gRPC's half-close (a WebSocket has none); binary frames carry audio
bytes. Each event goes back as one text frame; an error ends the session with a last text
frame `{"error": {"code": ..., "message": ...}}` and close code 1008 (the client's side: its
input, its key, its silence past the idle timeout), 1011 (the server's trouble) or 1013 (the
gateway is at capacity: the frame's `retryAfterS` says when to try again).

The socket is read without pause (intake.py), so pings and pongs are answered while the stages
are behind a client that sends faster than real time.

API keys: a browser cannot set headers on a WebSocket and URLs end up in logs, so the key (or
a token from POST /v1/live/token, which takes the key in the authorization header and returns
a one-time token valid for 60 s) goes in config.api_key, inside the first frame.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time
from collections.abc import AsyncIterator
from functools import lru_cache
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from google.protobuf import json_format

from services.common import strict_json
from services.common.errors import InvalidArgument, MeshError
from services.common.pb import gateway_pb2
from services.gateway.live.admission import IdleTimeout
from services.gateway.live.service import LiveService
from services.gateway.reference import quran

TOKEN_TTL_S = 60.0
POLICY_VIOLATION = 1008
INTERNAL_ERROR = 1011
TRY_AGAIN_LATER = 1013
STATIC_DIR = Path(__file__).with_name("static")
_CLIENT_ERRORS = {
    "INVALID_ARGUMENT",
    "FAILED_PRECONDITION",
    "UNAUTHENTICATED",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
}


class TokenStore:
    """One-time, short-lived tokens standing for an API key's name."""

    def __init__(self, ttl_s: float = TOKEN_TTL_S) -> None:
        self.ttl_s = ttl_s
        self._tokens: dict[str, tuple[str, float]] = {}

    def mint(self, name: str) -> str:
        now = time.monotonic()
        self._tokens = {t: v for t, v in self._tokens.items() if v[1] > now}
        token = "lt_" + secrets.token_urlsafe(24)
        self._tokens[token] = (name, now + self.ttl_s)
        return token

    def redeem(self, token: str) -> str | None:
        entry = self._tokens.pop(token, None)
        if entry is None or entry[1] < time.monotonic():
            return None
        return entry[0]


def close_code(exc: MeshError) -> tuple[int, str]:
    """The close code and reason (at most 123 bytes) a session ended by `exc` gets: 1013 (try
    again later) for a full gateway, 1008 for the client's side (its input, its key, its
    silence), 1011 for the server's trouble."""
    retry_after_s = exc.retry_after_s
    if retry_after_s is not None:
        return TRY_AGAIN_LATER, f"{exc.code}: try again in {retry_after_s:.0f} s"
    if exc.code in _CLIENT_ERRORS or isinstance(exc, IdleTimeout):
        return POLICY_VIOLATION, exc.code
    return INTERNAL_ERROR, exc.code


async def _requests(ws: WebSocket) -> AsyncIterator[gateway_pb2.AssessLiveRequest]:
    while True:
        try:
            message = await ws.receive()
        except WebSocketDisconnect:
            return
        if message.get("type") == "websocket.disconnect":
            return
        if message.get("bytes") is not None:
            yield gateway_pb2.AssessLiveRequest(audio=message["bytes"])
            continue
        payload: Any = strict_json.loads(message.get("text") or "", "a text frame")
        if not isinstance(payload, dict):
            raise InvalidArgument(
                f'a text frame must be a JSON object: {{"config": {{...}}}} first, then {{"end": true}} '
                f"(audio goes in binary frames), got {type(payload).__name__}"
            )
        if "end" in payload:
            if set(payload) != {"end"}:
                raise InvalidArgument('the end frame is {"end": true} alone, got other fields beside it')
            if payload["end"] is not True:
                raise InvalidArgument(f"end must be true (it ends the recitation), got {json.dumps(payload['end'])}")
            return
        # The control frame {"end": true} is this protocol's, not an AssessLiveRequest field.
        yield strict_json.parse(payload, gateway_pb2.AssessLiveRequest(), "a text frame")


@lru_cache(maxsize=1)
def _surahs() -> list[dict[str, object]]:
    suras = quran.quran_dict()["quran"]["sura"]
    return [{"surah": int(s["@index"]), "name": s["@name"], "ayahs": len(s["aya"])} for s in suras]


def mount_live(api: FastAPI, live: LiveService) -> None:
    tokens = TokenStore()
    live.tokens = tokens

    @api.get("/live", include_in_schema=False)
    async def live_page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    @api.get("/live/surahs.json", include_in_schema=False)
    async def live_surahs() -> JSONResponse:
        return JSONResponse(_surahs())

    api.mount("/live/static", StaticFiles(directory=STATIC_DIR), name="live-static")

    @api.post("/v1/live/token")
    async def live_token(request: Request) -> JSONResponse:
        name = live.guard.identify(request.headers.get("authorization"))
        return JSONResponse({"token": tokens.mint(name), "expiresInS": tokens.ttl_s})

    @api.websocket("/v1/live")
    async def live_socket(ws: WebSocket) -> None:
        await ws.accept()
        try:
            # aclosing: a client gone mid-session ends the session (and its stage calls) now.
            async with contextlib.aclosing(live.run(_requests(ws), None)) as events:
                async for event in events:
                    await ws.send_text(json.dumps(json_format.MessageToDict(event), ensure_ascii=False))
        except WebSocketDisconnect:
            return
        except MeshError as exc:
            error: dict[str, Any] = {"code": exc.code, "message": exc.message}
            if exc.retry_after_s is not None:
                error["retryAfterS"] = exc.retry_after_s  # what Retry-After and RetryInfo say elsewhere
            code, reason = close_code(exc)
            await _last_words(ws, json.dumps({"error": error}), code, reason)
            return
        await _last_words(ws, None, 1000, "")


async def _last_words(ws: WebSocket, frame: str | None, code: int, reason: str) -> None:
    """The last frame and the close, to a client that may have gone already: then there is
    nobody to tell (starlette raises WebSocketDisconnect, or RuntimeError once closed)."""
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        if frame is not None:
            await ws.send_text(frame)
        await ws.close(code=code, reason=reason)
