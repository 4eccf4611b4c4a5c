"""Free loopback ports for test agents, never handed out twice in one test run.

Binding port 0 and releasing it is racy twice over: the kernel may hand the same
port to the next caller before the first agent has bound it (two agents of one
cluster then collide), and a port from the ephemeral range may be taken by any
outgoing connection meanwhile. So ports come from below the ephemeral range, at
random (two concurrent test runs seldom meet), each checked free by binding it,
and each remembered so this process never returns it again. When the suite runs
as shards side by side (tests/parallel.py sets NOMAD_TEST_SHARD=0, 1, ...),
each shard draws from its own slice of the range, so two shards never hand
out the same port.
"""
from __future__ import annotations

import os
import random
import socket

# Below Linux's default ip_local_port_range (32768-60999), where outgoing
# connections take their source ports; above the registered low ports.
PORT_RANGE = (20000, 32767)
# How many slices the range is cut into for shards (0..7 each get one; more
# shards than this share slices modulo, still checked free by binding).
WORKER_SLICES = 8
_given: set[int] = set()
_rng = random.Random()


def port_range(shard: str | None = None) -> tuple[int, int]:
    """This process's slice of PORT_RANGE: the whole of it when not a shard."""
    shard = os.environ.get("NOMAD_TEST_SHARD", "") if shard is None else shard
    if not shard.isdigit():
        return PORT_RANGE
    lo, hi = PORT_RANGE
    width = (hi - lo + 1) // WORKER_SLICES
    start = lo + (int(shard) % WORKER_SLICES) * width
    return start, start + width - 1


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on and this test run has not handed out before."""
    lo, hi = port_range()
    for _ in range(1000):
        port = _rng.randint(lo, hi)
        if port in _given:
            continue
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
        _given.add(port)
        return port
    raise RuntimeError(f"no free port in {(lo, hi)} after 1000 tries")
