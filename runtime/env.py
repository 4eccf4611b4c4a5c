"""The environment an actor gets: the only door to time, randomness and I/O.

Protocol code takes ``now()``, timers, the RNG, ``send`` and ``spawn`` from
here and nowhere else.  The production runtime (``runtime.prod``) backs it
with the monotonic clock, gevent timers and sockets; the simulator
(``sim.runtime``) with virtual time, a seeded scheduler and an in-memory
network.  The same actor classes run on both.
"""

from __future__ import annotations

import abc
import random
from typing import Any, Protocol


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Env(abc.ABC):
    """What one node's runtime offers its actors."""

    node: str
    rng: random.Random

    @abc.abstractmethod
    def now(self) -> float:
        """Seconds on a monotonic clock (virtual in the simulator)."""

    @abc.abstractmethod
    def call_later(self, delay_s: float, ref: Any, msg: Any) -> TimerHandle:
        """Tell *msg* to actor *ref* after *delay_s* seconds, unless cancelled."""

    @abc.abstractmethod
    def send(self, node: str, actor: str, msg: Any) -> None:
        """Deliver *msg* to actor *actor* on *node*; never blocks, may be lost.

        A message to the local node goes straight to the actor's inbox; one to
        another node crosses the network through the wire codec.
        """

    @abc.abstractmethod
    def spawn(self, cls: type, name: str, *args: Any, **kwargs: Any) -> Any:
        """Start actor *cls* on this node under *name*; returns its ActorRef."""

    @abc.abstractmethod
    def lookup(self, name: str) -> Any | None:
        """The ActorRef of this node's actor *name*, or None."""

    @abc.abstractmethod
    def make_future(self) -> Any:
        """A future of this runtime, for replies to the outside world.

        The HTTP API and tests tell an actor a request carrying this future;
        the actor sets it when the answer is ready (after a Raft commit, say),
        and only the outside caller ever waits on it.
        """

    @property
    def secret_rng(self) -> random.Random:
        """Randomness for secrets (a signing key, a token's ID): the OS's CSPRNG in production
        (ProdNode), never the Mersenne Twister ``rng``, whose state its other outputs reveal; the
        simulator's seeded RNG there, so a seed still replays exactly."""
        return self.rng

    def report_failure(self, actor: str, error: str) -> None:  # noqa: B027
        """An actor of this node died; the runtime tells the supervisor."""

    # node -> the local actors told when the connection to it is lost (watch_peer); made at the first watch.
    peer_watchers: dict[str, dict[str, None]]

    def watch_peer(self, node: str, actor: str) -> None:
        """Tell local actor *actor* a ``PeerLost`` each time the connection to *node* is lost.

        Until ``unwatch_peer``; watching twice is watching once.  The runtime
        tells them through :meth:`tell_peer_lost`; one without connections (a
        test's fake) never does.
        """
        watchers = self.__dict__.get("peer_watchers")
        if watchers is None:
            watchers = self.peer_watchers = {}
        watchers.setdefault(node, {})[actor] = None

    def unwatch_peer(self, node: str, actor: str) -> None:
        """Stop telling *actor* of lost connections to *node*."""
        watchers = self.__dict__.get("peer_watchers", {}).get(node)
        if watchers is not None:
            watchers.pop(actor, None)
            if not watchers:
                del self.peer_watchers[node]

    def watches(self, node: str) -> bool:
        """Whether any local actor watches *node*."""
        return node in self.__dict__.get("peer_watchers", ())

    def tell_peer_lost(self, node: str, reason: str, unsent: bool, deliver: Any) -> bool:
        """``deliver(actor, PeerLost(...))`` to each actor watching *node*; False when none does."""
        watchers = self.__dict__.get("peer_watchers", {}).get(node)
        if not watchers:
            return False
        from runtime.messages import PeerLost

        msg = PeerLost(node=node, reason=reason, unsent=unsent)
        for actor in list(watchers):
            deliver(actor, msg)
        return True
