"""Server-side node management: heartbeats, the node endpoint, node GC.

Shared plumbing for the three actors lives here:

* :class:`ReplyTo` turns a RaftPeer reply (which expects a future) into a
  ``tell``: an actor must never block on a future (DESIGN.md §2), so it hands
  Raft this adapter and gets a :class:`RaftReply` message back in its inbox.
  ``env.send`` to the local node is a plain ``tell`` in both runtimes, so the
  adapter never blocks the Raft actor either.
* :class:`Leadership` fans RaftPeer's ``on_leadership(is_leader, term)``
  callback out to the actors that only act on the leader, and remembers the
  last value so an actor (re)started while its node leads learns it at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from runtime.env import Env

log = logging.getLogger("nomad.nodes")

ENDPOINT = "node-endpoint"  # NodeEndpoint's actor name on every server
HEARTBEATS = "heartbeats"  # HeartbeatMonitor
NODE_GC = "node-gc"  # NodeGC
RAFT = "raft"  # RaftPeer
LEADER_ACTORS = (ENDPOINT, HEARTBEATS, NODE_GC)

__all__ = ["ENDPOINT", "HEARTBEATS", "LEADER_ACTORS", "NODE_GC", "RAFT", "Leadership", "LeadershipChanged",
           "RaftReply", "ReplyTo"]


@dataclass(frozen=True, slots=True)
class RaftReply:
    """A Raft request's outcome, told to the actor that made it (local only, never on the wire).

    ``value`` is ``(index, result)`` for a Propose and ``(applied_index, query
    result)`` for a Read; treat it as read-only.
    """

    tag: Any
    ok: bool
    value: Any = None
    error: str = ""


@dataclass(frozen=True, slots=True)
class LeadershipChanged:
    """This server became leader (or stopped being it) at *term* (local only)."""

    is_leader: bool
    term: int


class ReplyTo:
    """A future-shaped reply target: ``set``/``set_exception`` tell *actor* a RaftReply.

    Raft calls exactly one of them once (``RaftPeer._answer``); a second call
    is ignored, as a second ``set`` on a real future would raise and Raft
    swallows that.
    """

    __slots__ = ("_actor", "_done", "_env", "_tag")

    def __init__(self, env: Env, actor: str, tag: Any) -> None:
        self._env = env
        self._actor = actor
        self._tag = tag
        self._done = False

    def set(self, value: Any = None) -> None:
        if self._done:
            return
        self._done = True
        self._env.send(self._env.node, self._actor, RaftReply(self._tag, True, value))

    def set_exception(self, exc_info: Any = None) -> None:
        if self._done:
            return
        self._done = True
        exc = exc_info[1] if isinstance(exc_info, tuple) else exc_info
        self._env.send(self._env.node, self._actor, RaftReply(self._tag, False, None, str(exc)))


class Leadership:
    """RaftPeer's ``on_leadership`` callback for one server node.

    Pass the same object to RaftPeer (``on_leadership=``) and to the node
    actors (``leadership=``).  The callback runs inside the Raft actor; it
    only records the value and tells each actor, so it never blocks.  The
    recorded value is a tuple replaced whole (never mutated), which an actor
    reads once in ``on_start``: under gevent there is no preemption between
    greenlets and the simulator is single-threaded, so the read is atomic.
    """

    def __init__(self, env: Env, actors: tuple[str, ...] = LEADER_ACTORS,
                 also: Callable[[bool, int], None] | None = None) -> None:
        self._env = env
        self._actors = actors
        self._also = also  # e.g. the agent's own callback, chained
        self.state: tuple[bool, int] = (False, 0)

    def __call__(self, is_leader: bool, term: int) -> None:
        self.state = (is_leader, term)
        for actor in self._actors:
            self._env.send(self._env.node, actor, LeadershipChanged(is_leader, term))
        if self._also is not None:
            self._also(is_leader, term)

    def current(self) -> tuple[bool, int]:
        return self.state
