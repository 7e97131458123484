"""Errors the transport-free cores raise; the gRPC and HTTP layers map them to statuses.

Cores never import grpc: they raise these, and the server interceptor (and the gateway's
HTTP layer) turn them into a status code and the message, unchanged, so the message a
caller reads is the one written where the problem was found.
"""

from __future__ import annotations

# The wait suggested when the one who refuses knows no better (a stage's full queue, a gateway
# draining): long enough for a queue to move or a replica to take over, short enough that a
# client that honours it loses little. HTTP's Retry-After counts whole seconds anyway.
DEFAULT_RETRY_AFTER_S = 1.0


class MeshError(Exception):
    """Base class: a failure with a status a caller can act on."""

    code: str = "INTERNAL"
    http_status: int = 500
    # Seconds after which the same call may succeed (HTTP Retry-After, gRPC RetryInfo); None
    # where retrying the same call cannot help.
    retry_after_s: float | None = None

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        if retry_after_s is not None:
            self.retry_after_s = retry_after_s


class InvalidArgument(MeshError):
    """The request itself is wrong (bad audio, unknown ayah, inconsistent spans)."""

    code = "INVALID_ARGUMENT"
    http_status = 400


class UnsupportedMediaType(InvalidArgument):
    """A body in a content type the route does not read (HTTP only; gRPC has no such thing)."""

    http_status = 415


class FailedPrecondition(MeshError):
    """The request is well formed but cannot be served as is (too few frames to align)."""

    code = "FAILED_PRECONDITION"
    http_status = 422


class ResourceExhausted(MeshError):
    """A limit was hit (queue full, rate limit, concurrency cap)."""

    code = "RESOURCE_EXHAUSTED"
    http_status = 429
    retry_after_s: float | None = DEFAULT_RETRY_AFTER_S


class TooLarge(ResourceExhausted):
    """The payload is over a size limit: the same payload will never pass, so no retry hint."""

    http_status = 413
    retry_after_s = None


class Unavailable(MeshError):
    """The service cannot serve now (model not loaded, a dependency down)."""

    code = "UNAVAILABLE"
    http_status = 503
    retry_after_s: float | None = DEFAULT_RETRY_AFTER_S


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
