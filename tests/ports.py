"""Free loopback ports for test agents, never handed out twice in one test run.

Binding port 0 and releasing it is racy twice over: the kernel may hand the same
port to the next caller before the first agent has bound it (two agents of one
cluster then collide), and a port from the ephemeral range may be taken by any
outgoing connection meanwhile. So ports come from below the ephemeral range, at
random (two concurrent test runs seldom meet), each checked free by binding it,
and each remembered so this process never returns it again.
"""
from __future__ import annotations

import random
import socket

# Below Linux's default ip_local_port_range (32768-60999), where outgoing
# connections take their source ports; above the registered low ports.
PORT_RANGE = (20000, 32767)
_given: set[int] = set()
_rng = random.Random()


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on and this test run has not handed out before."""
    for _ in range(1000):
        port = _rng.randint(*PORT_RANGE)
        if port in _given:
            continue
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
        _given.add(port)
        return port
    raise RuntimeError(f"no free port in {PORT_RANGE} after 1000 tries")
