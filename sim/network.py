"""The simulated network: the same contract as the production transports.

Every message is encoded with the real wire codec on send and decoded on
delivery, so anything a simulation passes would also pass the wire.  Faults
are drawn from the ``<seed>:net`` RNG stream.  Knobs (all per-link
overridable by :meth:`SimNetwork.set_link`):

* ``latency_min_s`` / ``latency_max_s`` -- one-way delay, uniform.
* ``loss`` -- probability a message is dropped.
* ``duplicate`` -- probability a message is delivered twice.
* ``reorder`` -- probability a message may overtake earlier ones on its link
  (otherwise a link is FIFO, like a TCP stream).
* partitions -- :meth:`partition` cuts links one way or both ways; a cut
  link drops what is sent on it and what is in flight on it.
* hold -- :meth:`hold` parks a link's messages until :meth:`release`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from actors.client.messages import NodeUpdateResponse, UpdateNodeStatus
from actors.raft.messages import AppendResp
from runtime import wire
from runtime.messages import Envelope
from sim.runtime import push_event

if TYPE_CHECKING:
    from sim.runtime import Scheduler

# The messages of a heartbeat (most of a quiet cluster's traffic) and Raft's
# answer to an append (half of an idle Raft's), whose fields are all str,
# int, float, bool or tuples of str: decoding their frame gives back a message
# equal to the one sent, so a delivery may hand over the sent one
# (tests/test_sim_network.py checks the round trip).
_PASSTHROUGH = frozenset({UpdateNodeStatus, NodeUpdateResponse, AppendResp})


@dataclass(frozen=True, slots=True)
class LinkFaults:
    latency_min_s: float = 0.001  # LAN round trips are ~0.1-1 ms; 1-10 ms one way is a slow LAN
    latency_max_s: float = 0.010
    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0

    def __post_init__(self) -> None:
        if not 0 <= self.latency_min_s <= self.latency_max_s:
            raise ValueError("need 0 <= latency_min_s <= latency_max_s")
        for name in ("loss", "duplicate", "reorder"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be within [0, 1]")


class SimNetwork:
    """In-memory network between a scheduler's nodes."""

    def __init__(self, sched: Scheduler) -> None:
        self.sched = sched
        self.rng = random.Random(f"{sched.seed}:net")
        self.defaults = LinkFaults()
        self._links: dict[tuple[str, str], LinkFaults] = {}
        self._cut: set[tuple[str, str]] = set()
        self._held: dict[tuple[str, str], list[bytes]] = {}
        # Per sender: the envelope heads it has packed (by actor) and when the
        # last message on each of its links arrives (by destination; links are FIFO).
        self._out: dict[str, tuple[dict[str, bytes], dict[str, float]]] = {}
        self._encode_envelope = wire.fields_encoder(Envelope)
        # encode(Envelope(src, actor, msg)) is the envelope's head (its tag, src
        # and actor: packed once per pair, see _out) followed by encode(msg).
        self._envelope_head = wire.head_encoder(Envelope)
        self._payload_encoders = wire._ENCODERS  # encode(msg) is packb(_ENCODERS[type(msg)](msg))
        self._make_payload_encoder = wire._make_encoder
        self._packb = wire._packb
        self._decode_envelope = wire.fields_decoder(Envelope)
        # Frames in flight of a type whose decode is exactly the message sent
        # (flat fields: str, int, float, bool and tuples of str): data -> (actor,
        # msg).  The frame is still encoded (its bytes are counted and it must
        # encode), but its delivery takes the message back instead of decoding
        # it; a frame delivered twice (duplicated) or not found decodes as any.
        # (SimEnv.send's fault-free path puts the message in the delivery event
        # instead: no dict, and no hash of the frame.)
        self._inflight: dict[bytes, tuple[str, Any]] = {}
        self._passthrough = _PASSTHROUGH
        # One bound method for every delivery event: the scheduler knows a
        # delivery by it and runs its common case inline.
        self.deliver_fn = self._deliver
        self._closed_seen: dict[tuple[str, str], int] = {}
        self.stats = {"sent": 0, "delivered": 0, "lost": 0, "cut": 0, "duplicated": 0,
                      "undeliverable": 0, "bad": 0, "bytes": 0, "peer_lost": 0}
        # No link is cut, held or overridden, the defaults lose and duplicate
        # nothing, and transmit is this class's: a send takes transmit's inlined
        # path (SimEnv.send).  Kept by the fault verbs.
        self._plain = True

    def _faults_changed(self) -> None:
        d = self.defaults
        self._plain = not (self._cut or self._held or self._links or d.loss or d.duplicate
                           or "transmit" in self.__dict__)

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        if name == "transmit":
            # Replaced on the instance (a test recording what is sent): SimEnv.send, which
            # inlines transmit on a plain network, must call it for every message.
            self._faults_changed()

    def __delattr__(self, name: str) -> None:
        object.__delattr__(self, name)
        if name == "transmit":
            self._faults_changed()

    # ------------------------------------------------------------ fault verbs
    def configure(self, **knobs: Any) -> None:
        """Change the default knobs for every link (see LinkFaults)."""
        self.defaults = replace(self.defaults, **knobs)
        self._faults_changed()

    def set_link(self, src: str, dst: str, **knobs: Any) -> None:
        self._links[(src, dst)] = replace(self._links.get((src, dst), self.defaults), **knobs)
        self._faults_changed()

    def partition(self, side_a: list[str], side_b: list[str], *, one_way: bool = False) -> None:
        """Cut links from side_a to side_b (and back, unless one_way)."""
        for a in side_a:
            for b in side_b:
                self._cut.add((a, b))
                if not one_way:
                    self._cut.add((b, a))
        self._faults_changed()

    def heal(self) -> None:
        """Remove every partition and per-link override; release held links."""
        self._cut.clear()
        self._links.clear()
        for link in sorted(self._held):
            self.release(*link)
        self._faults_changed()

    def is_cut(self, src: str, dst: str) -> bool:
        return (src, dst) in self._cut

    def hold(self, src: str, dst: str) -> None:
        self._held.setdefault((src, dst), [])
        self._faults_changed()

    def release(self, src: str, dst: str) -> None:
        held = self._held.pop((src, dst), [])
        self._faults_changed()
        for data in held:
            self._schedule(src, dst, data, self._faults(src, dst))

    # ------------------------------------------------------------ lost connections
    # A process that dies closes its connections: its host's kernel sends a
    # FIN to each peer, and answers a later frame with a reset.  The actors
    # watching that node (Env.watch_peer) are told, one link latency later,
    # as production's transport tells them.  A cut link carries neither.
    # A sender learns first that its connection ended (a frame it wrote may
    # have been read: not "unsent"); only after that are its frames refused
    # at connect (unsent).  _closed_seen holds, per (sender, node), the
    # incarnation of the node whose end the sender's host learned of (the
    # FIN reaches every host the link is not cut to, watched or not).

    def node_crashed(self, name: str) -> None:
        """*name* crashed: the nodes watching it learn that its connections closed."""
        cut = self._cut
        incarnation = self.sched.nodes[name].incarnation
        for node in self.sched.nodes.values():
            if node.up and node.name != name and (name, node.name) not in cut:
                self._closed_seen[(node.name, name)] = incarnation
                if node.env.watches(name):
                    self._notify_lost(node, name, "connection closed by the peer", False)

    def _refused(self, src: str, dst: str) -> None:
        """A frame from *src* found *dst* down: a reset, or a refused connect, tells *src*'s watchers."""
        node = self.sched.nodes.get(src)
        if node is None or not node.up or not node.env.watches(dst) or (dst, src) in self._cut:
            return
        incarnation = self.sched.nodes[dst].incarnation
        if self._closed_seen.get((src, dst)) == incarnation:
            self._notify_lost(node, dst, "connection refused", True)
        else:  # the FIN never reached src (a cut link then): this frame meets the old connection's reset
            self._closed_seen[(src, dst)] = incarnation
            self._notify_lost(node, dst, "connection reset by peer", False)

    def _notify_lost(self, node: Any, peer: str, reason: str, unsent: bool) -> None:
        self.sched.at_call(self.sched.now + self.defaults.latency_max_s, self._tell_lost,
                           (node.name, node.incarnation, peer, reason, unsent))

    def _tell_lost(self, at: str, incarnation: int, peer: str, reason: str, unsent: bool) -> None:
        node = self.sched.nodes.get(at)
        if node is None or not node.up or node.incarnation != incarnation:
            return
        if node.env.tell_peer_lost(peer, reason, unsent, node.deliver_local):
            self.stats["peer_lost"] += 1

    # ------------------------------------------------------------ traffic
    def _faults(self, src: str, dst: str) -> LinkFaults:
        return self._links.get((src, dst), self.defaults)

    def _sender(self, src: str) -> tuple[dict[str, bytes], dict[str, float]]:
        out = self._out[src] = ({}, {})
        return out

    def transmit(self, src: str, dst: str, actor: str, msg: Any) -> None:
        # The bytes of encode(Envelope(src, actor, msg)), without building the Envelope.
        out = self._out.get(src)
        if out is None:
            out = self._sender(src)
        heads = out[0]
        head = heads.get(actor)
        if head is None:
            head = heads[actor] = self._envelope_head(src, actor)
        # head + wire.encode(msg), with its lookups inlined.
        enc = self._payload_encoders.get(type(msg))
        if enc is None:
            enc = self._make_payload_encoder(type(msg))
        data = head + self._packb(enc(msg))
        if self._plain and type(msg) in self._passthrough:
            self._inflight[data] = (actor, msg)
        # The fault-free hot path is SimEnv.send's inlined copy of this; here every send takes the
        # general one (the same random draws, so the same run).
        self.transmit_bytes(src, dst, data)

    def transmit_bytes(self, src: str, dst: str, data: bytes) -> None:
        """Send raw bytes (tests use this to inject malformed frames)."""
        stats = self.stats
        stats["sent"] += 1
        stats["bytes"] += len(data)
        link = (src, dst)
        if self._cut and link in self._cut:
            stats["cut"] += 1
            return
        if self._held:
            held = self._held.get(link)
            if held is not None:
                held.append(data)
                return
        faults = self._links.get(link, self.defaults) if self._links else self.defaults
        if faults.loss and self.rng.random() < faults.loss:
            stats["lost"] += 1
            return
        self._schedule(src, dst, data, faults)
        if faults.duplicate and self.rng.random() < faults.duplicate:
            stats["duplicated"] += 1
            self._schedule(src, dst, data, faults)

    def _schedule(self, src: str, dst: str, data: bytes, faults: LinkFaults) -> None:
        rng = self.rng
        lo = faults.latency_min_s
        sched = self.sched
        # rng.uniform(lo, hi), added to now with exactly its rounding (traces stay byte-identical).
        arrive = sched.now + (lo + (faults.latency_max_s - lo) * rng.random())
        if not (faults.reorder and rng.random() < faults.reorder):
            last_at = (self._out.get(src) or self._sender(src))[1]
            last = last_at.get(dst, 0.0)
            if last > arrive:
                arrive = last
            last_at[dst] = arrive
        push_event(sched, arrive, self.deliver_fn, (src, dst, data, None, None))

    def _deliver(self, src: str, dst: str, data: bytes, actor: str | None, msg: Any) -> None:
        """Deliver *data*; *actor* and *msg*, when SimEnv.send put them in the event (not None), are
        what it encodes (a passthrough type's), handed over instead of decoded."""
        hit = (actor, msg) if actor is not None else \
            (self._inflight.pop(data, None) if self._inflight else None)
        if self._cut and (src, dst) in self._cut:
            self.stats["cut"] += 1
            return
        node = self.sched.nodes.get(dst)
        if node is None or not node.up:
            self.stats["undeliverable"] += 1
            if node is not None:  # a host whose process is down resets; one that is not there is silent
                self._refused(src, dst)
            return
        if hit is not None:
            self.stats["delivered"] += 1
            node.deliver_local(*hit)
            return
        try:
            _, actor, payload = self._decode_envelope(data)
        except wire.WireError as exc:
            self.stats["bad"] += 1
            self.sched.record(repr(self.sched.now), "bad", src, dst, str(exc))
            return
        self.stats["delivered"] += 1
        node.deliver_local(actor, payload)
