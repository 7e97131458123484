"""gRPC's rich error model, for retry hints: a google.rpc.Status with a google.rpc.RetryInfo
detail, in the `grpc-status-details-bin` trailer (what grpcio-status writes and reads, and what
other languages' clients read, e.g. Go's status.FromError(...).Details()).

The server side packs it from a MeshError's retry_after_s; the client side reads the delay back.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

DETAILS_KEY = "grpc-status-details-bin"


def details(code: str, message: str, retry_after_s: float | None) -> bytes | None:
    """The serialized google.rpc.Status of a refusal with its RetryInfo, or None without a hint."""
    if retry_after_s is None:
        return None
    delay = duration_pb2.Duration()
    delay.FromNanoseconds(max(0, round(retry_after_s * 1e9)))
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.RetryInfo(retry_delay=delay))
    status = status_pb2.Status(code=code_pb2.Code.Value(code), message=message, details=[detail])
    return status.SerializeToString()


def trailers(code: str, message: str, retry_after_s: float | None) -> tuple[tuple[str, bytes], ...]:
    """Trailing metadata to end a call with (empty without a hint)."""
    packed = details(code, message, retry_after_s)
    return () if packed is None else ((DETAILS_KEY, packed),)


def retry_delay_s(metadata: Iterable[Any] | None) -> float | None:
    """The RetryInfo delay of a call's trailing metadata, in seconds; None when there is none
    (or it cannot be read: a hint is advice, never a reason to fail)."""
    for item in metadata or ():
        key, value = (item.key, item.value) if hasattr(item, "key") else item
        if key != DETAILS_KEY or not isinstance(value, bytes):
            continue
        status = status_pb2.Status()
        try:
            status.ParseFromString(value)
        except Exception:
            return None
        for detail in status.details:
            info = error_details_pb2.RetryInfo()
            if detail.Is(info.DESCRIPTOR) and detail.Unpack(info):
                return max(0.0, info.retry_delay.ToNanoseconds() / 1e9)
    return None
