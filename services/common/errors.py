"""Errors the transport-free cores raise; the gRPC and HTTP layers map them to statuses.

Cores never import grpc: they raise these, and the server interceptor (and the gateway's
HTTP layer) turn them into a status code and the message, unchanged, so the message a
caller reads is the one written where the problem was found.
"""

from __future__ import annotations


class MeshError(Exception):
    """Base class: a failure with a status a caller can act on."""

    code: str = "INTERNAL"
    http_status: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(MeshError):
    """The request itself is wrong (bad audio, unknown ayah, inconsistent spans)."""

    code = "INVALID_ARGUMENT"
    http_status = 400


class FailedPrecondition(MeshError):
    """The request is well formed but cannot be served as is (too few frames to align)."""

    code = "FAILED_PRECONDITION"
    http_status = 422


class ResourceExhausted(MeshError):
    """A limit was hit (queue full, rate limit, concurrency cap)."""

    code = "RESOURCE_EXHAUSTED"
    http_status = 429


class TooLarge(ResourceExhausted):
    """The payload is over a size limit."""

    http_status = 413


class Unavailable(MeshError):
    """The service cannot serve now (model not loaded, a dependency down)."""

    code = "UNAVAILABLE"
    http_status = 503


class DeadlineExceeded(MeshError):
    code = "DEADLINE_EXCEEDED"
    http_status = 504


class Unauthenticated(MeshError):
    code = "UNAUTHENTICATED"
    http_status = 401


class PermissionDenied(MeshError):
    code = "PERMISSION_DENIED"
    http_status = 403


class Cancelled(MeshError):
    code = "CANCELLED"
    http_status = 499
