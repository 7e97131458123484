"""The one error path of the HTTP API: every failure, whoever raised it, becomes the same body.

`{"error": {"code", "message", "requestId"}}` with the HTTP status of the gRPC code, whether the
failure is a MeshError from the cores, an HTTPException from the framework (unknown route,
wrong method, a malformed multipart body), a request-validation error, or a bug (INTERNAL,
logged with its traceback, the message kept generic so no internals leak).
"""

from __future__ import annotations

import logging
import math

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from services.common import context as call_context
from services.common.errors import DEFAULT_RETRY_AFTER_S, MeshError

log = logging.getLogger("muaalem.http")

# HTTP statuses the framework raises by itself, as the gRPC code names the API documents.
_FRAMEWORK_CODES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "UNIMPLEMENTED",
    413: "RESOURCE_EXHAUSTED",
    415: "INVALID_ARGUMENT",
    422: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


# Statuses a client may retry after a while: each answer with one carries Retry-After.
RETRYABLE = frozenset({429, 503})


def retry_after_header(seconds: float | None) -> str:
    """Retry-After in whole seconds (RFC 9110 delta-seconds), rounded up so that a client that
    honours it never comes back early, and at least 1."""
    return str(max(1, math.ceil(DEFAULT_RETRY_AFTER_S if seconds is None else seconds)))


def error_body(code: str, message: str) -> dict[str, dict[str, str]]:
    return {"error": {"code": code, "message": message, "requestId": call_context.request_id() or ""}}


def error_response(exc: BaseException) -> JSONResponse:
    """The response of any exception a request raised."""
    if isinstance(exc, MeshError):
        headers = {"retry-after": retry_after_header(exc.retry_after_s)} if exc.http_status in RETRYABLE else None
        return JSONResponse(status_code=exc.http_status, content=error_body(exc.code, exc.message), headers=headers)
    if isinstance(exc, HTTPException):
        code = _FRAMEWORK_CODES.get(exc.status_code, "UNKNOWN" if exc.status_code < 500 else "INTERNAL")
        return JSONResponse(status_code=exc.status_code, content=error_body(code, str(exc.detail)), headers=exc.headers)
    if isinstance(exc, RequestValidationError):
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error.get('loc', ()))}: {error.get('msg', '')}" for error in exc.errors()
        )
        return JSONResponse(status_code=400, content=error_body("INVALID_ARGUMENT", problems or "invalid request"))
    log.exception("unhandled error in an HTTP request", exc_info=exc)
    return JSONResponse(status_code=500, content=error_body("INTERNAL", "internal error; see the gateway's log"))


def install(api: FastAPI) -> None:
    """Routes every exception the framework sees to error_response (the request-scope middleware
    catches what passes these handlers, so nothing reaches Starlette's plain-text 500 page)."""

    async def handle(request: Request, exc: Exception) -> JSONResponse:
        return error_response(exc)

    for kind in (MeshError, HTTPException, RequestValidationError, Exception):
        api.add_exception_handler(kind, handle)
