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
import gevent.hub
import pykka
from greenlet import getcurrent

from runtime.env import Env
from runtime.messages import ChildFailed, Envelope

log = logging.getLogger(__name__)

_CONCRETE: dict[type, type] = {}
_UNSET_HOOK_RESULT = pykka._future._Unset()  # type: ignore[attr-defined]


def concrete(cls: type) -> type:
    """``cls`` made runnable on pykka's threading runtime (greenlets under gevent)."""
    made = _CONCRETE.get(cls)
    if made is None:
        made = type(cls.__name__, (cls, pykka.ThreadingActor), {"use_daemon_thread": True})
        _CONCRETE[cls] = made
    return made


class GeventFuture(pykka.Future[Any]):
    """A pykka Future for greenlets: a waiting ``get`` parks its greenlet on the hub.

    Replies to the outside world (HTTP handlers, benchmarks) wait on these;
    pykka's ThreadingFuture pays for a Condition that under gevent buys nothing.
    It was built on gevent's AsyncResult, whose ``get(timeout)`` makes a
    ``gevent.Timeout`` object and whose ``set`` goes through its link
    machinery: with the future-per-write load of ``nomad-bench raft`` those
    were a third of the leader's CPU.  Here a waiter costs one loop timer and
    ``set`` one hub callback that switches to the waiting greenlet.

    Set and got in the hub's thread only (every caller is a greenlet of the
    process, as with AsyncResult before); ``get`` from the hub itself would
    have nobody to wake it and raises.
    """

    # pykka.Future's fields as class defaults: its __init__ (an _Unset() per
    # future) is skipped; set_get_hook still sets the instance's own.
    _get_hook: Any = None
    _get_hook_result: Any = _UNSET_HOOK_RESULT

    def __init__(self) -> None:  # pykka.Future.__init__ is skipped on purpose (above)
        self._state = 0  # 0 pending, 1 value, 2 exception
        self._value: Any = None
        self._waiting: Any = None  # the greenlet parked in get(), until woken

    def get(self, *, timeout: float | None = None) -> Any:
        if self._get_hook is not None:
            return pykka.Future.get(self, timeout=timeout)
        if not self._state:
            self._wait(timeout)
        if self._state == 1:
            return self._value
        raise self._value

    def _wait(self, timeout: float | None) -> None:
        hub = gevent.get_hub()
        current = getcurrent()
        if current is hub:
            raise gevent.hub.BlockingSwitchOutError("GeventFuture.get() would block the hub")
        if self._waiting is not None:
            raise RuntimeError("GeventFuture.get() already waited on by another greenlet")
        timer = None
        if timeout is not None:
            timer = hub.loop.timer(max(0.0, timeout))
            timer.start(self._wake)
        self._waiting = current
        try:
            hub.switch()
        finally:
            self._waiting = None
            if timer is not None:
                timer.close()
        if not self._state:
            raise pykka.Timeout(f"{timeout} seconds")

    def _wake(self) -> None:
        """In the hub: the answer came (or the timeout passed); resume the waiting greenlet once."""
        waiting = self._waiting
        if waiting is not None:
            self._waiting = None
            waiting.switch()

    def set(self, value: Any = None) -> None:
        if self._state:
            raise ValueError("future already set")
        self._value, self._state = value, 1
        if self._waiting is not None:
            gevent.get_hub().loop.run_callback(self._wake)

    def set_exception(self, exc_info: Any = None) -> None:
        if self._state:
            raise ValueError("future already set")
        self._value, self._state = (exc_info or sys.exc_info())[1], 2
        if self._waiting is not None:
            gevent.get_hub().loop.run_callback(self._wake)


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
        self.stats = {"dropped_local": 0, "dropped_no_transport": 0, "peer_lost": 0}

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

    def peer_lost(self, node: str, reason: str, unsent: bool = False) -> None:
        """The transports' ``on_peer_lost`` callback: tell the actors watching *node*."""
        if self.tell_peer_lost(node, reason, unsent, self.deliver):
            self.stats["peer_lost"] += 1

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
