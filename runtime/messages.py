"""Messages of the runtime itself (tags 1-99 are reserved for the runtime)."""

from __future__ import annotations

from dataclasses import dataclass

from runtime.wire import Message, message

msg = dataclass(frozen=True, slots=True, kw_only=True)


@message(1)
@msg
class TimerFired(Message):
    """A timer set with ``NodeActor.set_timer`` came due.

    ``generation`` rises each time the timer is set or cancelled; a firing
    whose generation is not the current one is stale and is ignored.
    """

    name: str
    generation: int


@message(2)
@msg
class ChildFailed(Message):
    """Told to a node's supervisor when one of its actors died of an exception."""

    node: str
    actor: str
    error: str


@message(3)
@msg
class Envelope(Message):
    """What crosses the network: who sent it, which actor gets it, and what."""

    src: str
    dst_actor: str
    payload: Message


@message(4)
@msg
class Ping(Message):
    """Liveness probe used by the demo cluster, benchmarks and tests."""

    seq: int
    reply_to_node: str
    reply_to_actor: str
    body: bytes = b""


@message(5)
@msg
class Pong(Message):
    seq: int
    src: str
    body: bytes = b""


@message(6)
@msg
class PeerLost(Message):
    """The connection to *node* was lost: the peer closed it, reset it, or refused a new one.

    The runtime tells it to every local actor that watches *node*
    (``Env.watch_peer``), so requests outstanding there fail now instead of
    when their timers run out: a process that dies or restarts closes its
    connections at once.  A partition or a machine that vanished gives no
    notice, so timers still bound every request.  Local only: never sent.
    """

    node: str
    reason: str
    # Found before anything was written (a refused connect, a link still backing off; in the
    # simulator, a frame that found the node down): nothing sent to *node* since the last report
    # of its connection's end reached it, so a request sent since may safely be made again.
    unsent: bool = False
