"""The production runtime: actors on ``pykka.ThreadingActor`` under gevent.

The process calls ``gevent.monkey.patch_all()`` first (``bin/nomad-agent``
does it as its very first statement), so pykka's threads and queues are
greenlets and gevent queues.  :class:`ProdNode` is the environment of the
actors of one process: the monotonic clock, gevent loop timers, an RNG
seeded from the OS, local delivery by actor name, and remote delivery
through a transport (``runtime.transport``).
"""

from __future__ import annotations

import logging
import os
import random
import sys
import time
from typing import Any, Protocol

import gevent
import gevent.event
import pykka

from runtime.env import Env
from runtime.messages import ChildFailed, Envelope

log = logging.getLogger(__name__)

_CONCRETE: dict[type, type] = {}


def concrete(cls: type) -> type:
    """``cls`` made runnable on pykka's threading runtime (greenlets under gevent)."""
    made = _CONCRETE.get(cls)
    if made is None:
        made = type(cls.__name__, (cls, pykka.ThreadingActor), {"use_daemon_thread": True})
        _CONCRETE[cls] = made
    return made


class GeventFuture(pykka.Future[Any]):
    """A pykka Future on gevent's AsyncResult: set and get cost ~1 µs, not ~6.

    Replies to the outside world (HTTP handlers, benchmarks) wait on these;
    pykka's ThreadingFuture pays for a Condition that under gevent buys nothing.
    """

    def __init__(self) -> None:
        super().__init__()
        self._result = gevent.event.AsyncResult()

    def get(self, *, timeout: float | None = None) -> Any:
        try:
            return super().get(timeout=timeout)
        except NotImplementedError:
            pass
        try:
            return self._result.get(timeout=timeout)
        except gevent.Timeout:
            raise pykka.Timeout(f"{timeout} seconds") from None

    def set(self, value: Any = None) -> None:
        if self._result.ready():
            raise ValueError("future already set")
        self._result.set(value)

    def set_exception(self, exc_info: Any = None) -> None:
        if self._result.ready():
            raise ValueError("future already set")
        exc = (exc_info or sys.exc_info())[1]
        self._result.set_exception(exc)


class Transport(Protocol):
    def send(self, node: str, env: Envelope) -> bool: ...


class _LoopTimer:
    """A gevent loop timer: firing costs no greenlet; cancel closes it."""

    __slots__ = ("_t",)

    def __init__(self, delay_s: float, ref: Any, msg: Any) -> None:
        self._t = gevent.get_hub().loop.timer(max(0.0, delay_s))
        self._t.start(self._fire, ref, msg)

    def _fire(self, ref: Any, msg: Any) -> None:
        self._t.close()
        try:
            ref.tell(msg)
        except pykka.ActorDeadError:
            pass

    def cancel(self) -> None:
        self._t.close()


class ProdNode(Env):
    """The environment shared by the actors of one agent process."""

    def __init__(self, node: str, *, transport: Transport | None = None,
                 supervisor: str | None = None, seed: int | None = None) -> None:
        self.node = node
        # Edge code: the OS seeds the RNG (a fixed seed can be passed by tests).
        self.rng = random.Random(seed if seed is not None else os.urandom(16))
        self._secret_rng = random.SystemRandom()  # os.urandom: keys and token IDs (Env.secret_rng)
        self.transport = transport
        # Per destination actor, a transport other than the default: gossip
        # ("gossip", "gossip-wan") goes as UDP packets on the serf port while
        # RPC and Raft go over TCP to the RPC port.
        self.routes: dict[str, Transport] = {}
        self.supervisor = supervisor
        self.actors: dict[str, Any] = {}
        self.stats = {"dropped_local": 0, "dropped_no_transport": 0}

    @property
    def secret_rng(self) -> random.Random:
        return self._secret_rng

    def now(self) -> float:
        return time.monotonic()

    def call_later(self, delay_s: float, ref: Any, msg: Any) -> _LoopTimer:
        return _LoopTimer(delay_s, ref, msg)

    def send(self, node: str, actor: str, msg: Any) -> None:
        if node == self.node:
            self.deliver(actor, msg)
            return
        transport = self.routes.get(actor, self.transport)
        if transport is None:
            self.stats["dropped_no_transport"] += 1
            return
        transport.send(node, Envelope(src=self.node, dst_actor=actor, payload=msg))

    def deliver(self, actor: str, msg: Any) -> None:
        ref = self.actors.get(actor)
        if ref is None or not ref.is_alive():
            self.stats["dropped_local"] += 1
            return
        try:
            ref.tell(msg)
        except pykka.ActorDeadError:
            self.stats["dropped_local"] += 1

    def deliver_envelope(self, env: Envelope) -> None:
        """The transports' ``deliver`` callback."""
        self.deliver(env.dst_actor, env.payload)

    def spawn(self, cls: type, name: str, *args: Any, **kwargs: Any) -> Any:
        old = self.actors.get(name)
        if old is not None and old.is_alive():
            raise ValueError(f"an actor named {name!r} is already running")
        ref = concrete(cls).start(self, name, *args, **kwargs)
        self.actors[name] = ref
        return ref

    def lookup(self, name: str) -> Any | None:
        return self.actors.get(name)

    def make_future(self) -> pykka.Future[Any]:
        return GeventFuture()

    def report_failure(self, actor: str, error: str) -> None:
        log.error("actor %s failed: %s", actor, error)
        if self.supervisor is not None and self.supervisor != actor:
            self.deliver(self.supervisor, ChildFailed(node=self.node, actor=actor, error=error))

    def stop_all(self, timeout_s: float = 5.0) -> None:
        """Stop this node's actors, last spawned first."""
        for name in reversed(list(self.actors)):
            ref = self.actors[name]
            if ref.is_alive():
                try:
                    ref.stop(timeout=timeout_s)
                except pykka.Timeout:
                    log.warning("actor %s did not stop within %.1fs", name, timeout_s)
