"""Loopback ports for meshes that tests and benchmarks start.

A port the kernel hands out for `bind(0)` comes from the ephemeral range, the same range every
outgoing connection draws its source port from: between choosing it and the service binding it,
a gRPC or Redis client elsewhere on the machine may take it (CI saw "Address already in use").
So ports are drawn from below that range, where no outgoing connection lands, and never handed
out twice by one process.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LOWEST = 10_000
_given: set[int] = set()
_random = random.Random()


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = (int(part) for part in _RANGE_FILE.read_text().split())
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default where the file cannot be read
    return low, high


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(attempts: int = 200) -> int:
    """A loopback TCP port that is free now, outside the ephemeral range, not given out before."""
    low, high = _ephemeral_range()
    span = (_LOWEST, low - 1) if low - 1 - _LOWEST >= 1000 else (high + 1, 65535)
    for _ in range(attempts):
        port = _random.randint(*span)
        if port not in _given and _bindable(port):
            _given.add(port)
            return port
    # A crowded range: let the kernel choose, as before.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    _given.add(port)
    return port
