"""Tensor messages <-> numpy arrays, with the checks a server needs on untrusted bytes."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from services.common.errors import InvalidArgument
from services.common.pb import common_pb2

_DTYPES: dict[int, np.dtype[np.generic]] = {
    common_pb2.D_TYPE_FLOAT16: np.dtype("<f2"),
    common_pb2.D_TYPE_FLOAT32: np.dtype("<f4"),
}
_ENUMS: dict[str, int] = {"float16": common_pb2.D_TYPE_FLOAT16, "float32": common_pb2.D_TYPE_FLOAT32}


def to_proto(array: npt.NDArray[np.floating], dtype: str = "float16") -> common_pb2.Tensor:
    """Serialises an array as little-endian `dtype` (float16 halves the bytes of float32)."""
    if dtype not in _ENUMS:
        raise ValueError(f"unsupported tensor dtype {dtype!r}")
    enum = _ENUMS[dtype]
    data = np.ascontiguousarray(array, dtype=_DTYPES[enum])
    return common_pb2.Tensor(data=data.tobytes(), shape=list(data.shape), dtype=enum)  # type: ignore[arg-type]


def from_proto(tensor: common_pb2.Tensor, *, name: str = "tensor", ndim: int | None = None) -> npt.NDArray[np.float32]:
    """Reads a Tensor as float32, rejecting shapes that do not match the bytes."""
    dtype = _DTYPES.get(tensor.dtype)
    if dtype is None:
        raise InvalidArgument(f"{name}: dtype {tensor.dtype} is not supported (use FLOAT16 or FLOAT32)")
    shape = list(tensor.shape)
    if ndim is not None and len(shape) != ndim:
        raise InvalidArgument(f"{name}: expected {ndim} dimensions, got shape {shape}")
    if any(dim < 0 for dim in shape):
        raise InvalidArgument(f"{name}: negative dimension in shape {shape}")
    expected = math.prod(shape) * dtype.itemsize
    if expected != len(tensor.data):
        raise InvalidArgument(f"{name}: shape {shape} needs {expected} bytes of {dtype.name}, got {len(tensor.data)}")
    array = np.frombuffer(tensor.data, dtype=dtype).reshape(shape).astype(np.float32)
    if not np.isfinite(array).all():
        raise InvalidArgument(f"{name}: contains NaN or infinite values")
    return array
