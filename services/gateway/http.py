"""The partner HTTP/JSON API: the same handlers as gRPC, bodies in the proto3 JSON mapping."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, JSONResponse, Response
from google.protobuf import json_format
from google.protobuf.message import Message
from prometheus_client import Counter, Histogram
from starlette.routing import Match

from services.common import context as call_context
from services.common import parsing, tracing
from services.common.errors import InvalidArgument
from services.common.metrics import LATENCY_BUCKETS
from services.common.pb import gateway_pb2
from services.gateway import http_errors, http_form, openapi
from services.gateway.app import GatewayApp
from services.gateway.live.websocket import STATIC_DIR, mount_live

log = logging.getLogger("muaalem.http")

HTTP_REQUESTS = Counter(
    "muaalem_http_requests_total",
    "HTTP requests, by route (the route's template; `unmatched` for paths no route takes) and status.",
    ["route", "status"],
)
HTTP_LATENCY = Histogram(
    "muaalem_http_request_duration_seconds", "HTTP request latency.", ["route"], buckets=LATENCY_BUCKETS
)


def to_json(message: Message) -> dict[str, Any]:
    """The proto3 JSON mapping (the same the gRPC JSON transcoders use)."""
    return json_format.MessageToDict(message)


FAVICON = STATIC_DIR / "favicon.svg"
UNMATCHED = "unmatched"


def route_label(api: FastAPI, scope: MutableMapping[str, Any]) -> str:
    """The template of the route a request goes to (`/v1/reference/{surah}/{ayah}`), so the
    metric has one series per route and not one per path a caller (or a scanner) makes up."""
    for route in api.router.routes:
        match, _ = route.matches(scope)
        if match != Match.NONE:
            return str(getattr(route, "path", UNMATCHED))
    return UNMATCHED


def _reference_query(request: Request) -> dict[str, str]:
    """The query's moshaf attributes: each known, and given once."""
    names = [name for name, _ in request.query_params.multi_items()]
    unknown = sorted(set(names) - set(parsing.MOSHAF_FIELDS))
    if unknown:
        raise InvalidArgument(f"unknown query parameters: {', '.join(unknown)} (the query takes moshaf attributes)")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise InvalidArgument(f"query parameter {repeated[0]} is given {names.count(repeated[0])} times; give it once")
    return dict(request.query_params)


def create_http_app(app: GatewayApp) -> FastAPI:
    api = FastAPI(title="Muaalem assessment API", docs_url=None, redoc_url=None, openapi_url=None)
    document = openapi.build()

    @api.middleware("http")
    async def scope(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        route = route_label(api, request.scope)
        started = time.perf_counter()
        with (
            call_context.call_scope(request.headers.get(call_context.REQUEST_ID_HEADER), None) as rid,
            tracing.http_server_span(request.method, route, request.headers.items(), rid) as span,
        ):
            try:
                response = await call_next(request)
            except Exception as exc:  # the one error path: whatever failed, the same error body
                response = http_errors.error_response(exc)
            if response.status_code in http_errors.RETRYABLE and "retry-after" not in response.headers:
                # Every 429 and 503 says when to come back, whoever answered it.
                response.headers["retry-after"] = http_errors.retry_after_header(None)
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
                    "route": route,
                    "path": request.url.path[:200],
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

    @api.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> FileResponse:
        return FileResponse(FAVICON, media_type="image/svg+xml", headers={"cache-control": "max-age=86400"})

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
        message = await http_form.assess_request(request, app.config.max_http_body_bytes)
        reply = await app.assess(message, authorization)
        return JSONResponse(to_json(reply))

    @api.get("/v1/reference/{surah}/{ayah}")
    async def reference(surah: str, ayah: str, request: Request) -> JSONResponse:
        authorization = request.headers.get("authorization")
        app.guard.identify(authorization)
        query = _reference_query(request)
        message = gateway_pb2.GetReferenceRequest(target=parsing.target_from_strings(surah, ayah))
        moshaf = parsing.moshaf_from_strings(query)
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
