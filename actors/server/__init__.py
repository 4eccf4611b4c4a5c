"""Server-side node management: heartbeats, the node endpoint, node GC.

Shared plumbing for the three actors lives here:

* :class:`ReplyTo` turns a RaftPeer reply (which expects a future) into a
  ``tell``: an actor must never block on a future (DESIGN.md §2), so it hands
  Raft this adapter and gets a :class:`RaftReply` message back in its inbox.
  ``env.send`` to the local node is a plain ``tell`` in both runtimes, so the
  adapter never blocks the Raft actor either.
* Leadership: the NodeEndpoint polls its RaftPeer with ``InfoQuery`` every
  ``raft_poll_interval_s`` (and takes ``RaftInfo`` pushes from RaftPeer's
  ``leadership_subscribers``), and tells the HeartbeatMonitor and NodeGC a
  :class:`LeadershipChanged` when this server starts or stops leading.  Each
  of them also asks Raft once on start, so a restarted actor learns at once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from actors.raft.peer import InfoQuery, RaftInfo
from runtime.env import Env

log = logging.getLogger("nomad.nodes")

ENDPOINT = "node-endpoint"  # NodeEndpoint's actor name on every server
HEARTBEATS = "heartbeats"  # HeartbeatMonitor
NODE_GC = "node-gc"  # NodeGC
RAFT = "raft"  # RaftPeer
LEADER_ACTORS = (ENDPOINT, HEARTBEATS, NODE_GC)

__all__ = ["ENDPOINT", "HEARTBEATS", "LEADER_ACTORS", "NODE_GC", "RAFT", "InfoQuery", "LeadershipChanged",
           "RaftInfo", "RaftReply", "ReplyTo"]


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
