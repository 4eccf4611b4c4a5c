"""The HTTP edge's clock, identifiers and randomness.

HTTP handlers (``actors/http_*.py``) run in pywsgi greenlets -- the outside
world, not actors -- so they may read the wall clock, draw unseeded
randomness and make UUIDs from ``os.urandom``.  They take them from here,
so protocol code in ``actors/`` never reaches for them directly and the
one place that does is named.
"""

from __future__ import annotations

import random
import time
import uuid


def wall_time() -> float:
    """Seconds since the epoch (timestamps written into Raft commands by the edge)."""
    return time.time()


def monotonic() -> float:
    """A clock for the edge's own timeouts, caches and request durations."""
    return time.monotonic()


def new_id() -> str:
    """A random UUID (tokens' AccessorID and SecretID): ``os.urandom``, never a seeded RNG."""
    return str(uuid.uuid4())


def edge_rng() -> random.Random:
    """An unseeded RNG for the edge's own choices (which server to forward to, blocking-query jitter)."""
    return random.Random()
