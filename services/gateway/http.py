"""The partner HTTP/JSON API: the same handlers as gRPC, bodies in the proto3 JSON mapping."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import JSONResponse, Response
from google.protobuf import json_format
from google.protobuf.message import Message
from prometheus_client import Counter, Histogram

from services.common import context as call_context
from services.common import parsing, tracing
from services.common.errors import InvalidArgument, TooLarge
from services.common.metrics import LATENCY_BUCKETS
from services.common.pb import gateway_pb2
from services.gateway import http_errors, openapi
from services.gateway.app import GatewayApp
from services.gateway.live.websocket import mount_live
from services.gateway.locating import form_asks_to_locate

log = logging.getLogger("muaalem.http")

HTTP_REQUESTS = Counter("muaalem_http_requests_total", "HTTP requests, by route and status.", ["route", "status"])
HTTP_LATENCY = Histogram(
    "muaalem_http_request_duration_seconds", "HTTP request latency.", ["route"], buckets=LATENCY_BUCKETS
)


def to_json(message: Message) -> dict[str, Any]:
    """The proto3 JSON mapping (the same the gRPC JSON transcoders use)."""
    return json_format.MessageToDict(message)


def _check_declared_length(request: Request, limit: int) -> None:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"the request body is {int(declared)} bytes, over the limit of {limit} bytes")


async def _read_body(request: Request, limit: int) -> bytes:
    _check_declared_length(request, limit)
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise TooLarge(f"the request body passed the limit of {limit} bytes")
    return bytes(body)


def _parse(message: Message, payload: Any, what: str) -> None:
    try:
        json_format.ParseDict(payload, message)
    except json_format.ParseError as exc:
        raise InvalidArgument(f"{what}: {exc}") from exc


async def _assess_request(request: Request, limit: int) -> gateway_pb2.AssessRequest:
    content_type = request.headers.get("content-type", "")
    message = gateway_pb2.AssessRequest()
    if content_type.startswith("multipart/form-data"):
        _check_declared_length(request, limit)
        form = await request.form(max_part_size=limit)
        upload = form.get("audio")
        if upload is None or isinstance(upload, str):
            raise InvalidArgument("multipart upload: the `audio` file part is missing")
        raw = form.get("request")
        if isinstance(raw, str) and raw.strip():
            try:
                _parse(message, json.loads(raw), "request")
            except json.JSONDecodeError as exc:
                raise InvalidArgument(f"request: not JSON ({exc.msg} at {exc.pos})") from exc
        fields = {name: form.get(name) for name in ("surah", "ayah", "words", "last_ayah")}
        text = {name: value for name, value in fields.items() if isinstance(value, str)}
        if "surah" in text and "ayah" in text:
            message.target.CopyFrom(
                parsing.target_from_strings(text["surah"], text["ayah"], text.get("words"), text.get("last_ayah"))
            )
        locate = form.get("locate")
        if form_asks_to_locate(locate if isinstance(locate, str) else None, "surah" in text or "ayah" in text):
            message.target.locate.SetInParent()
        message.audio.content = await upload.read()
        message.audio.name_hint = upload.filename or ""
        return message
    body = await _read_body(request, limit)
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"the body is not JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise InvalidArgument("the body must be a JSON object (an AssessRequest)")
    _parse(message, payload, "AssessRequest")
    return message


def create_http_app(app: GatewayApp) -> FastAPI:
    api = FastAPI(title="Muaalem assessment API", docs_url=None, redoc_url=None, openapi_url=None)
    document = openapi.build()

    @api.middleware("http")
    async def scope(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        route = request.url.path if not request.url.path.startswith("/v1/reference/") else "/v1/reference"
        started = time.perf_counter()
        with (
            call_context.call_scope(request.headers.get(call_context.REQUEST_ID_HEADER), None) as rid,
            tracing.http_server_span(request.method, route, request.headers.items(), rid) as span,
        ):
            try:
                response = await call_next(request)
            except Exception as exc:  # the one error path: whatever failed, the same error body
                response = http_errors.error_response(exc)
            span.set_attribute("http.response.status_code", response.status_code)
            response.headers[call_context.REQUEST_ID_HEADER] = rid
            elapsed = time.perf_counter() - started
            HTTP_REQUESTS.labels(route, str(response.status_code)).inc()
            HTTP_LATENCY.labels(route).observe(elapsed)
            log.info(
                "http",
                extra={
                    "service": "gateway",
                    "method": request.method,
                    "path": route,
                    "status": response.status_code,
                    "duration_ms": round(elapsed * 1000, 2),
                },
            )
            return response

    http_errors.install(api)

    @api.get("/openapi.json", include_in_schema=False)
    async def openapi_document() -> JSONResponse:
        return JSONResponse(document)

    @api.get("/docs", include_in_schema=False)
    async def docs() -> Response:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="Muaalem assessment API")

    @api.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @api.get("/readyz")
    async def readyz() -> JSONResponse:
        ready, health = await app.registry.ready(timeout=1.0)
        return JSONResponse(status_code=200 if ready else 503, content={"stages": health})

    @api.post("/v1/assess")
    async def assess(request: Request) -> JSONResponse:
        authorization = request.headers.get("authorization")
        # The key first: a caller without one learns that (401), not what is wrong with its body.
        app.guard.identify(authorization)
        message = await _assess_request(request, app.config.max_http_body_bytes)
        reply = await app.assess(message, authorization)
        return JSONResponse(to_json(reply))

    @api.get("/v1/reference/{surah}/{ayah}")
    async def reference(surah: str, ayah: str, request: Request) -> JSONResponse:
        authorization = request.headers.get("authorization")
        app.guard.identify(authorization)
        unknown = set(request.query_params) - set(parsing.MOSHAF_FIELDS)
        if unknown:
            raise InvalidArgument(
                f"unknown query parameters: {', '.join(sorted(unknown))} (the query takes moshaf attributes)"
            )
        message = gateway_pb2.GetReferenceRequest(target=parsing.target_from_strings(surah, ayah))
        moshaf = parsing.moshaf_from_strings(dict(request.query_params))
        if moshaf is not None:
            message.moshaf.CopyFrom(moshaf)
        reply = await app.get_reference(message, authorization)
        return JSONResponse(to_json(reply))

    @api.get("/v1/info")
    async def info(request: Request) -> JSONResponse:
        reply = await app.get_server_info(request.headers.get("authorization"))
        return JSONResponse(to_json(reply))

    if app.live is not None:
        mount_live(api, app.live)
    return api
