"""Ports for the meshes tests start: outside the range outgoing connections draw from, and
never the same one twice, so a client elsewhere cannot take one before its service binds it."""

from __future__ import annotations

import socket

from services.common import ports


def test_ports_are_distinct_bindable_and_below_the_ephemeral_range() -> None:
    low, high = ports._ephemeral_range()
    given = [ports.free_port() for _ in range(200)]
    assert len(set(given)) == len(given)
    assert all(not low <= port <= high for port in given)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", given[-1]))


def test_a_port_in_use_is_not_given() -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        taken = held.getsockname()[1]
        assert not ports._bindable(taken)
