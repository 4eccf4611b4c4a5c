"""SWIM with Lifeguard: the pure core of a gossip pool's failure detector.

In the manner of etcd raft and h11, :class:`SwimCore` never touches a clock,
a socket or a global RNG: the host passes ``now`` into every call, the RNG
is injected, and everything the core wants done comes out as *effects* in
``out`` (taken with :meth:`take_effects`).  The behaviour and the numbers
are HashiCorp memberlist's (``state.go``, ``suspicion.go``, ``awareness.go``,
``queue.go``); the shape is not -- no locks, no goroutines, no sleeps.

What it does, with the paper sections it follows:

* **Failure detection** (SWIM §3, §4.3): each probe interval, probe the next
  member of a randomised round-robin list with a :class:`Ping`; with no ack
  after ``probe_timeout_s``, ask ``indirect_checks`` random members to probe
  it (:class:`IndirectPing`, relays answer :class:`Nack` when they hear
  nothing); with no ack by the end of the (scaled) probe interval, suspect it.
* **Lifeguard**: *local health awareness* (LHA-probe) -- a score that rises
  on failed probes with missing nacks and on refutations, falls on
  successful probes, and multiplies the probe interval; *suspicion* (LHA-
  suspicion) -- the suspicion timeout starts at its maximum and shrinks
  logarithmically to its minimum with each independent confirmation
  (:func:`remaining_suspicion_time`); *buddy system* -- a probe of a suspect
  member carries the :class:`Suspect` message so it can refute at once.
* **Suspicion and refutation** (SWIM §4.2): alive -> suspect -> dead; a member
  that hears it is suspected or dead refutes with a higher incarnation.
* **Dissemination** (SWIM §4.1): updates ride in every packet's ``gossip``
  field and in :class:`Gossip` packets, newest and least-sent first, each at
  most ``retransmit_mult * ceil(log10(N + 1))`` times (:class:`BroadcastQueue`).
* **Anti-entropy**: a periodic push-pull full state exchange with one random
  member, and one with each address on join.

Where this departs from memberlist, it is to keep a healthy member from being
declared dead when a refutation goes astray (found by the simulator at 10%
loss, where memberlist's rules let roughly one member-hour in ten end in a
false "failed"):

* a push-pull's suspect / dead rows are *hearsay*: they start a suspicion
  (attributed to the peer) but neither confirm a running one nor are
  re-gossiped as a new accuser (memberlist counts them as our own
  confirmation and re-broadcasts them, so two members that push-pull during
  a suspicion become two "independent" confirmations everywhere);
* the buddy system also applies to pings relayed for indirect probes;
* a member that receives an accusation older than its incarnation
  re-queues its current alive (``_reassert``): the accuser missed it;
* a successful probe of a suspect un-marks it locally (SWIM §4.2);
* relays nack after 80% of the probe timeout (Lifeguard §IV-A), so nacks
  arrive while the probe still counts them;
* the gossip timer idles while nothing is queued and resumes at a random
  phase, as memberlist's free-running ticker would be found; after a join
  push-pull both sides gossip at once.

Effects are applied in list order; none depends on another having
completed (there is no persistence in gossip).  Timer names are
``probe``, ``probe-ack``, ``gossip``, ``push-pull``, ``relay:<seq>``,
``suspect:<member>`` and ``join:<req>``; a host re-arming a name replaces
the earlier arming (``NodeActor.set_timer`` semantics).

Serf's layer (``actors.gossip.serf``) is the :class:`Delegate`: it hears of
joins, leaves and updates, carries its own broadcasts in the same queue,
and adds its state to push-pulls.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from random import Random
from typing import Any, Protocol

from actors.gossip.config import GossipConfig
from actors.gossip.messages import (
    ALIVE,
    DEAD,
    LEFT,
    MAX_GOSSIP_ITEMS,
    SUSPECT,
    VSN_BYTES,
    Ack,
    Alive,
    Dead,
    Gossip,
    IndirectPing,
    JoinIntent,
    LeaveIntent,
    MemberEvent,
    Nack,
    Ping,
    PushPullReq,
    PushPullResp,
    Suspect,
    valid_member,
)
from runtime import wire


class GossipInvariantError(AssertionError):
    """The core broke its own protocol (a bug here, never a peer's fault)."""


# ---------------------------------------------------------------- effects


@dataclass(frozen=True, slots=True)
class Send:
    """Send *msg* to the pool actor of the member at address *to* (unreliable)."""

    to: str
    msg: Any


@dataclass(frozen=True, slots=True)
class SetTimer:
    """(Re)arm timer *name* to fire after *delay_s*; an earlier arming no longer fires."""

    name: str
    delay_s: float


@dataclass(frozen=True, slots=True)
class CancelTimer:
    name: str


@dataclass(frozen=True, slots=True)
class Emit:
    """Tell *event* to every subscriber."""

    event: MemberEvent


@dataclass(frozen=True, slots=True)
class Reply:
    """Answer local request *req* with *value*, or fail it with *error*."""

    req: int
    value: Any = None
    error: str = ""


Effect = Send | SetTimer | CancelTimer | Emit | Reply


# ---------------------------------------------------------------- state


class NodeState:
    """What this member believes about one member of the pool."""

    __slots__ = ("addr", "incarnation", "meta", "name", "state", "state_change", "vsn")

    def __init__(self, name: str, addr: str, incarnation: int, state: int, state_change: float,
                 meta: bytes, vsn: bytes) -> None:
        self.name = name
        self.addr = addr
        self.incarnation = incarnation
        self.state = state
        self.state_change = state_change
        self.meta = meta  # opaque to SWIM: the Serf layer's encoded tags
        self.vsn = vsn

    def dead_or_left(self) -> bool:
        return self.state == DEAD or self.state == LEFT

    def __repr__(self) -> str:
        return f"NodeState({self.name}@{self.addr} inc={self.incarnation} state={self.state})"


def remaining_suspicion_time(n: int, k: int, elapsed_s: float, min_s: float, max_s: float) -> float:
    """Lifeguard: the timeout after *n* of *k* wanted confirmations, minus time already waited.

    The timeout falls from *max_s* towards *min_s* as ``log(n + 1) / log(k + 1)``
    (memberlist ``remainingSuspicionTime``), floored to milliseconds and never
    below *min_s*.  The result may be negative: the timer is then already due.
    """
    frac = math.log(n + 1.0) / math.log(k + 1.0)
    raw = max_s - frac * (max_s - min_s)
    timeout = max(math.floor(1000.0 * raw) / 1000.0, min_s)
    return timeout - elapsed_s


class Suspicion:
    """One suspicion timer: starts long, shrinks with independent confirmations."""

    __slots__ = ("confirmations", "k", "max_s", "min_s", "n", "start")

    def __init__(self, sender: str, k: int, min_s: float, max_s: float, start: float) -> None:
        self.n = 0
        self.k = k
        self.min_s = min_s
        self.max_s = max_s
        self.start = start
        # The accuser is not a confirmation: our own suspicion may be gossiped back.
        self.confirmations: dict[str, None] = {sender: None}

    def initial_timeout(self) -> float:
        return self.max_s if self.k >= 1 else self.min_s

    def confirm(self, sender: str, now: float) -> float | None:
        """Count *sender*'s confirmation; the new remaining time, or None if it was not new."""
        if self.n >= self.k or sender in self.confirmations:
            return None
        self.confirmations[sender] = None
        self.n += 1
        return remaining_suspicion_time(self.n, self.k, now - self.start, self.min_s, self.max_s)


class Awareness:
    """Lifeguard local health: 0 is healthy; timeouts scale by ``score + 1``."""

    __slots__ = ("max", "score")

    def __init__(self, max_multiplier: int) -> None:
        self.max = max_multiplier
        self.score = 0

    def apply(self, delta: int) -> None:
        self.score = min(max(self.score + delta, 0), self.max - 1)

    def scale(self, timeout_s: float) -> float:
        return timeout_s * (self.score + 1)


class _Item:
    __slots__ = ("id", "key", "msg", "notify", "size", "transmits")

    def __init__(self, key: Any, msg: Any, size: int, notify: str | None, item_id: int) -> None:
        self.key = key
        self.msg = msg
        self.size = size
        self.notify = notify
        self.id = item_id
        self.transmits = 0


class BroadcastQueue:
    """memberlist's TransmitLimitedQueue: least-sent first, then newest first.

    A broadcast replaces (invalidates) a queued one with the same key: news
    about a member supersedes older news about it.  An item leaves the queue
    after ``limit`` sends; its ``notify`` token (if any) is then appended to
    ``finished``, which the owner drains (a leave waits on it).
    """

    # Stop looking for a message that fits after this many that did not.
    MAX_MISSES = 16
    # No broadcast is smaller than this many encoded bytes.
    MIN_ITEM_BYTES = 8

    def __init__(self) -> None:
        self._by_key: dict[Any, _Item] = {}
        self._buckets: dict[int, dict[int, _Item]] = {}  # transmits -> id -> item (ids ascending)
        self._next_id = 0
        self.finished: list[str] = []

    def __len__(self) -> int:
        return len(self._by_key)

    def has(self, key: Any) -> bool:
        return key in self._by_key

    def push(self, key: Any, msg: Any, size: int, notify: str | None = None) -> None:
        old = self._by_key.pop(key, None)
        if old is not None:
            self._drop(old)
        self._next_id += 1
        item = _Item(key, msg, size, notify, self._next_id)
        self._by_key[key] = item
        self._buckets.setdefault(0, {})[item.id] = item

    def _drop(self, item: _Item) -> None:
        bucket = self._buckets[item.transmits]
        del bucket[item.id]
        if not bucket:
            del self._buckets[item.transmits]
        if item.notify is not None:
            self.finished.append(item.notify)

    def take(self, budget: int, limit: int) -> list[Any]:
        """Broadcasts that fit in *budget* encoded bytes, each counted as sent once more."""
        picked: list[_Item] = []
        free = budget - 3  # the array header of the gossip field
        for transmits in sorted(self._buckets):
            misses = 0
            for item in reversed(self._buckets[transmits].values()):
                if item.size <= free:
                    picked.append(item)
                    free -= item.size
                    misses = 0
                else:
                    misses += 1
                if free < self.MIN_ITEM_BYTES or misses >= self.MAX_MISSES or len(picked) >= MAX_GOSSIP_ITEMS:
                    break
            if free < self.MIN_ITEM_BYTES or len(picked) >= MAX_GOSSIP_ITEMS:
                break
        for item in picked:
            bucket = self._buckets[item.transmits]
            del bucket[item.id]
            if not bucket:
                del self._buckets[item.transmits]
            item.transmits += 1
            if item.transmits >= limit:
                del self._by_key[item.key]
                if item.notify is not None:
                    self.finished.append(item.notify)
            else:
                self._buckets.setdefault(item.transmits, {})[item.id] = item
        return [item.msg for item in picked]

    def expire(self, limit: int) -> None:
        """Drop what has been sent *limit* times already (the pool shrank)."""
        for transmits in sorted(self._buckets):
            if transmits < limit:
                continue
            for item in list(self._buckets[transmits].values()):
                del self._by_key[item.key]
                self._drop(item)

    def prune(self, max_retain: int) -> int:
        """Keep at most *max_retain* items, dropping the most-sent (then oldest) first."""
        dropped = 0
        while len(self._by_key) > max_retain:
            worst = max(self._buckets)
            item = next(iter(self._buckets[worst].values()))
            del self._by_key[item.key]
            self._drop(item)
            dropped += 1
        return dropped

    def items(self) -> list[tuple[Any, int]]:
        """(message, transmits) of everything queued, for tests and checkers."""
        return [(item.msg, item.transmits) for item in self._by_key.values()]


class Delegate(Protocol):
    """What the SWIM core tells the layer above it (Serf)."""

    def notify_join(self, node: NodeState, now: float) -> None: ...
    def notify_leave(self, node: NodeState, now: float) -> None: ...
    def notify_update(self, node: NodeState, now: float) -> None: ...
    def notify_alive(self, node: NodeState, now: float) -> None: ...
    def notify_msg(self, msg: JoinIntent | LeaveIntent, now: float) -> None: ...
    def local_state(self) -> tuple[int, tuple[tuple[str, int], ...], tuple[str, ...]]: ...
    def merge_remote_state(self, pp: PushPullReq | PushPullResp, now: float) -> None: ...
    def join_finished(self, req: int, contacted: int, now: float) -> None: ...


class _NullDelegate:
    def notify_join(self, node: NodeState, now: float) -> None:
        pass

    def notify_leave(self, node: NodeState, now: float) -> None:
        pass

    def notify_update(self, node: NodeState, now: float) -> None:
        pass

    def notify_alive(self, node: NodeState, now: float) -> None:
        pass

    def notify_msg(self, msg: JoinIntent | LeaveIntent, now: float) -> None:
        pass

    def local_state(self) -> tuple[int, tuple[tuple[str, int], ...], tuple[str, ...]]:
        return 0, (), ()

    def merge_remote_state(self, pp: PushPullReq | PushPullResp, now: float) -> None:
        pass

    def join_finished(self, req: int, contacted: int, now: float) -> None:
        pass


class _Probe:
    __slots__ = ("acked", "addr", "expected_nacks", "incarnation", "nacks", "seq", "target")

    def __init__(self, seq: int, target: str, addr: str, incarnation: int) -> None:
        self.seq = seq
        self.target = target
        self.addr = addr
        self.incarnation = incarnation
        self.acked = False
        self.nacks = 0
        self.expected_nacks = 0


# A relay answers Nack when the target has not acked within this share of the probe timeout.
NACK_TIMEOUT_FRACTION = 0.8

# Envelope overhead on top of a message and the source address: the actor
# name (up to 24 characters) and msgpack framing.
_ENVELOPE_OVERHEAD = 32


class SwimCore:
    """One member's SWIM state machine (see the module docstring)."""

    def __init__(self, name: str, addr: str, config: GossipConfig, rng: Random, *,
                 meta: bytes = b"", delegate: Delegate | None = None) -> None:
        self.name = name
        self.addr = addr
        self.cfg = config
        self.rng = rng
        self.meta = meta
        self.delegate: Delegate = delegate or _NullDelegate()
        self.incarnation = 0
        self.nodes: dict[str, NodeState] = {}
        self.order: list[str] = []  # randomised round-robin probe order (a permutation of nodes)
        self.probe_index = 0
        self.seq = 0
        self.probe: _Probe | None = None
        self.relays: dict[int, tuple[int, str, bool]] = {}  # our seq -> (their seq, origin, nack)
        self.suspicions: dict[str, Suspicion] = {}
        self.awareness = Awareness(config.awareness_max_multiplier)
        self.queue = BroadcastQueue()
        self.push_pulls: dict[int, tuple[float, int | None, str]] = {}  # seq -> (deadline, join req, to)
        self.joins: dict[int, list[int]] = {}  # join req -> [outstanding, contacted]
        self.leaving = False
        self.stopped = False
        self.gossip_armed = False
        self.out: list[Effect] = []
        self.stats = dict.fromkeys(
            ("probes", "acks", "indirect_probes", "nacks", "alive", "suspects", "dead", "refutes", "packets",
             "gossip_sent", "push_pulls", "conflicts", "ignored", "pruned", "reasserts", "unmarked"), 0)
        self._gossip_overhead = (len(wire.encode(Gossip(src_name=name, gossip=()))) + len(addr)
                                 + _ENVELOPE_OVERHEAD)

    # ============================================================ host interface
    def take_effects(self) -> list[Effect]:
        out, self.out = self.out, []
        return out

    def start(self, now: float) -> None:
        """Become alive (incarnation 1) and start the periodic work, each with a random stagger."""
        self.incarnation += 1
        self._alive(Alive(name=self.name, addr=self.addr, incarnation=self.incarnation, meta=self.meta),
                    now, bootstrap=True)
        cfg = self.cfg
        self._set_timer("probe", self.rng.uniform(0, cfg.probe_interval_s))
        if cfg.push_pull_interval_s > 0:
            self._set_timer("push-pull", self.rng.uniform(0, cfg.push_pull_interval_s))

    def shutdown(self) -> None:
        """Stop all activity (after a leave): no more timers, packets are ignored."""
        self.stopped = True
        for name in ("probe", "probe-ack", "gossip", "push-pull"):
            self.out.append(CancelTimer(name))
        for seq in sorted(self.relays):
            self.out.append(CancelTimer(f"relay:{seq}"))
        for name in sorted(self.suspicions):
            self.out.append(CancelTimer(f"suspect:{name}"))
        self.relays.clear()
        self.suspicions.clear()
        for req in sorted(self.joins):
            _, contacted = self.joins.pop(req)
            self.out.append(CancelTimer(f"join:{req}"))
            self.delegate.join_finished(req, contacted, 0.0)

    def on_timer(self, name: str, now: float) -> bool:
        """Handle timer *name*; False if it is not one of this core's."""
        if self.stopped:
            return name in ("probe", "probe-ack", "gossip", "push-pull") or name.startswith(
                ("relay:", "suspect:", "join:"))
        if name == "probe":
            self._probe_tick(now)
        elif name == "probe-ack":
            self._probe_ack_timeout()
        elif name == "gossip":
            self._gossip_tick(now)
        elif name == "push-pull":
            self._push_pull_tick(now)
        elif name.startswith("relay:"):
            self._relay_timeout(int(name[6:]))
        elif name.startswith("suspect:"):
            self._suspicion_timeout(name[8:], now)
        elif name.startswith("join:"):
            self._join_timeout(int(name[5:]), now)
        else:
            return False
        return True

    def on_message(self, msg: Any, now: float) -> None:
        """Handle a packet from the network (already decoded and field-validated)."""
        if self.stopped:
            return
        kind = type(msg)
        if kind is Ping:
            self._absorb(msg.gossip, now)
            self._on_ping(msg)
        elif kind is Ack:
            self._absorb(msg.gossip, now)
            self._on_ack(msg, now)
        elif kind is Gossip:
            self._absorb(msg.gossip, now)
        elif kind is IndirectPing:
            self._absorb(msg.gossip, now)
            self._on_indirect_ping(msg)
        elif kind is Nack:
            self._absorb(msg.gossip, now)
            if self.probe is not None and msg.seq == self.probe.seq:
                self.probe.nacks += 1
                self.stats["nacks"] += 1
        elif kind is PushPullReq:
            self._on_push_pull_req(msg, now)
        elif kind is PushPullResp:
            self._on_push_pull_resp(msg, now)
        else:
            self.stats["ignored"] += 1

    def join(self, addrs: tuple[str, ...], req: int | None, now: float) -> None:
        """Push-pull with each address (memberlist ``Join``).

        With a request id, ``delegate.join_finished(req, contacted)`` follows
        once every address answered or ``join_timeout_s`` passed; with
        None (Serf's reconnects) nothing is reported.
        """
        targets = [a for a in dict.fromkeys(addrs) if a and a != self.addr]
        # Our own address counts as joined, as memberlist's push-pull with itself succeeds.
        itself = int(self.addr in addrs and not self.stopped)
        if req is None:
            for addr in targets if not self.stopped else ():
                self._send_push_pull(addr, now, join=True)
            return
        if not targets or self.stopped:
            self.delegate.join_finished(req, itself, now)
            return
        if req in self.joins:
            raise GossipInvariantError(f"join request {req} is already running")
        self.joins[req] = [len(targets), itself]
        for addr in targets:
            self._send_push_pull(addr, now, req=req, join=True)
        self._set_timer(f"join:{req}", self.cfg.join_timeout_s)

    def leave(self, now: float) -> bool:
        """Broadcast our own death (``sender == name``: we left); True if anyone alive must hear it."""
        self.leaving = True
        me = self.nodes[self.name]
        dead = Dead(name=self.name, incarnation=me.incarnation, sender=self.name)
        self.dead(dead, now)
        self.fan_out(dead)
        return self.any_alive()

    def fan_out(self, msg: Any) -> None:
        """Send *msg* once, directly, to every member we believe alive (on top of gossiping it).

        Used for leaving: gossip picks random targets, dead ones included, and
        a small pool can let every live member miss a leave's few
        transmissions; the leaving member would then be seen as failed.  One
        packet per member, once per leave, makes a leave on a healthy network
        reach everyone.
        """
        for node in self.nodes.values():
            if node.name != self.name and not node.dead_or_left():
                self.stats["packets"] += 1
                self.out.append(Send(node.addr, Gossip(src_name=self.name, gossip=(msg,))))

    def set_meta(self, meta: bytes, now: float) -> None:
        """New meta (tags) for this member: a new incarnation, broadcast as an update."""
        self.meta = meta
        self.incarnation += 1
        self._alive(Alive(name=self.name, addr=self.addr, incarnation=self.incarnation, meta=meta),
                    now, bootstrap=True)

    def broadcast(self, key: Any, msg: Any, notify: str | None = None) -> None:
        """Queue *msg* for dissemination, replacing what is queued under *key*."""
        self.queue.push(key, msg, len(wire.encode(msg)), notify)
        if not self.gossip_armed and not self.stopped:
            # A free-running gossip ticker (memberlist's) would fire at a random
            # phase of its interval; an idle one resumes the same way.
            self.gossip_armed = True
            self._set_timer("gossip", self.rng.uniform(0, self.cfg.gossip_interval_s))
        if len(self.queue) > self.cfg.max_queue_depth:
            self.stats["pruned"] += self.queue.prune(self.cfg.max_queue_depth)

    def any_alive(self) -> bool:
        return any(n.name != self.name and not n.dead_or_left() for n in self.nodes.values())

    def num_nodes(self) -> int:
        return len(self.nodes)

    def retransmit_limit(self) -> int:
        return self.cfg.retransmit_limit(len(self.nodes))

    # ============================================================ probing
    def _probe_tick(self, now: float) -> None:
        self._finish_probe(now)
        self._start_probe(now)
        self._set_timer("probe", self.awareness.scale(self.cfg.probe_interval_s))

    def _start_probe(self, now: float) -> None:
        for _ in range(len(self.order) + 1):
            if self.probe_index >= len(self.order):
                self._reset_nodes(now)
                self.probe_index = 0
            if not self.order:
                return
            node = self.nodes[self.order[self.probe_index]]
            self.probe_index += 1
            if node.name == self.name or node.dead_or_left():
                continue
            self._probe_node(node)
            return

    def _probe_node(self, node: NodeState) -> None:
        self.seq += 1
        self.probe = _Probe(self.seq, node.name, node.addr, node.incarnation)
        self.stats["probes"] += 1
        ping = Ping(seq=self.seq, target=node.name, src_name=self.name, src_addr=self.addr)
        self._send_packet(node.addr, ping, self._buddy(node.name))
        self._set_timer("probe-ack", self.cfg.probe_timeout_s)

    def _buddy(self, target: str) -> tuple[Any, ...]:
        """Lifeguard's buddy system: a ping to a member we suspect carries the suspicion first.

        Applied to relayed pings too (memberlist only does it for its own
        probes): a suspect that missed the gossip then hears it from every
        prober, and a suspect that already refuted re-asserts its alive to a
        member that missed the refutation (``_reassert``).
        """
        node = self.nodes.get(target)
        if node is None or node.state != SUSPECT:
            return ()
        return (Suspect(name=node.name, incarnation=node.incarnation, sender=self.name),)

    def _probe_ack_timeout(self) -> None:
        probe = self.probe
        if probe is None or probe.acked:
            return
        peers = self._k_random(self.cfg.indirect_checks, lambda n: (
            n.name == self.name or n.name == probe.target or n.state != ALIVE))
        for peer in peers:
            self._send_packet(peer.addr, IndirectPing(
                seq=probe.seq, target=probe.target, target_addr=probe.addr, src_name=self.name,
                src_addr=self.addr, nack=True))
        probe.expected_nacks = len(peers)
        self.stats["indirect_probes"] += len(peers)

    def _finish_probe(self, now: float) -> None:
        probe, self.probe = self.probe, None
        if probe is None:
            return
        self._cancel_timer("probe-ack")
        if probe.acked:
            self.awareness.apply(-1)
            return
        # Lifeguard: missing nacks mean *we* may be the one in trouble.
        if probe.expected_nacks > 0:
            self.awareness.apply(max(0, probe.expected_nacks - probe.nacks))
        else:
            self.awareness.apply(1)
        self.suspect(Suspect(name=probe.target, incarnation=probe.incarnation, sender=self.name), now)

    def _on_ping(self, ping: Ping) -> None:
        if ping.target != self.name:
            self.stats["ignored"] += 1  # meant for whoever had this address before us
            return
        self._send_packet(ping.src_addr, Ack(seq=ping.seq))

    def _on_ack(self, ack: Ack, now: float) -> None:
        probe = self.probe
        if probe is not None and ack.seq == probe.seq:
            if not probe.acked:
                probe.acked = True
                self.stats["acks"] += 1
                self._cancel_timer("probe-ack")
                self._unmark(probe, now)
            return
        relay = self.relays.pop(ack.seq, None)
        if relay is not None:
            self._cancel_timer(f"relay:{ack.seq}")
            self._send_packet(relay[1], Ack(seq=relay[0]))

    def _unmark(self, probe: _Probe, now: float) -> None:
        """SWIM §4.2: a suspect we just probed successfully is alive in our view again.

        Only locally, and at the incarnation we suspected: we cannot speak
        for it (the refutation with a higher incarnation is its own to send,
        and the buddy system has asked for it), but a member that answers us
        must not be declared dead by us because its refutation went astray.
        A dead message at this incarnation still wins.
        """
        node = self.nodes.get(probe.target)
        if node is None or node.state != SUSPECT or node.incarnation != probe.incarnation:
            return
        self._clear_suspicion(node.name)
        node.state = ALIVE
        node.state_change = now
        self.stats["unmarked"] += 1

    def _on_indirect_ping(self, ind: IndirectPing) -> None:
        self.seq += 1
        self.relays[self.seq] = (ind.seq, ind.src_addr, ind.nack)
        self._send_packet(ind.target_addr, Ping(seq=self.seq, target=ind.target, src_name=self.name,
                                                src_addr=self.addr), self._buddy(ind.target))
        # Lifeguard §IV-A: nack after 80% of the probe timeout, so the nack reaches
        # the prober before its probe interval ends (memberlist waits the whole
        # timeout, and its nacks then mostly arrive too late to count).
        self._set_timer(f"relay:{self.seq}", NACK_TIMEOUT_FRACTION * self.cfg.probe_timeout_s)

    def _relay_timeout(self, seq: int) -> None:
        relay = self.relays.pop(seq, None)
        if relay is not None and relay[2]:
            self._send_packet(relay[1], Nack(seq=relay[0]))

    def _reset_nodes(self, now: float) -> None:
        """At each wrap of the probe list: forget long-dead members and reshuffle."""
        cutoff = now - self.cfg.gossip_to_the_dead_s
        for name in [n.name for n in self.nodes.values()
                     if n.dead_or_left() and n.name != self.name and n.state_change < cutoff]:
            del self.nodes[name]
        self.order = list(self.nodes)
        self.rng.shuffle(self.order)
        limit = self.retransmit_limit()
        self.queue.expire(limit)

    def _add_node(self, node: NodeState) -> None:
        # A random position keeps the expected time to the first probe low
        # (appending would make every newcomer wait for a whole round).
        self.nodes[node.name] = node
        self.order.append(node.name)
        n = len(self.order) - 1
        offset = self.rng.randrange(n + 1)
        self.order[offset], self.order[n] = self.order[n], self.order[offset]

    def _k_random(self, k: int, exclude: Any) -> list[NodeState]:
        """Up to *k* distinct random members not excluded (memberlist ``kRandomNodes``)."""
        order = self.order
        n = len(order)
        out: list[NodeState] = []
        if n < 3 * k:
            names = list(order)
            self.rng.shuffle(names)
            for name in names:
                node = self.nodes[name]
                if not exclude(node):
                    out.append(node)
                    if len(out) >= k:
                        break
            return out
        for _ in range(3 * n):
            node = self.nodes[order[self.rng.randrange(n)]]
            if exclude(node) or node in out:
                continue
            out.append(node)
            if len(out) >= k:
                break
        return out

    # ============================================================ gossip
    def _gossip_tick(self, now: float) -> None:
        # The gossip timer idles while nothing is queued (see ``broadcast``).
        self.gossip_armed = False
        if not len(self.queue):
            return
        self.gossip_armed = True
        self._set_timer("gossip", self.cfg.gossip_interval_s)
        cutoff = now - self.cfg.gossip_to_the_dead_s

        def exclude(n: NodeState) -> bool:
            if n.name == self.name or n.state == LEFT:
                return True
            return n.state == DEAD and n.state_change < cutoff

        budget = self.cfg.packet_budget_bytes - self._gossip_overhead
        limit = self.retransmit_limit()
        for node in self._k_random(self.cfg.gossip_nodes, exclude):
            items = self.queue.take(budget, limit)
            if not items:
                return
            self.stats["gossip_sent"] += len(items)
            self.stats["packets"] += 1
            self.out.append(Send(node.addr, Gossip(src_name=self.name, gossip=tuple(items))))

    def _send_packet(self, to: str, msg: Any, extra: tuple[Any, ...] = ()) -> None:
        """Send *msg* with as many queued broadcasts piggybacked as fit in one packet."""
        used = len(wire.encode(msg)) + len(self.addr) + _ENVELOPE_OVERHEAD
        used += sum(len(wire.encode(m)) for m in extra)
        items = self.queue.take(self.cfg.packet_budget_bytes - used, self.retransmit_limit()) if len(
            self.queue) else []
        if extra or items:
            self.stats["gossip_sent"] += len(items)
            msg = dataclasses.replace(msg, gossip=(*extra, *items))
        self.stats["packets"] += 1
        self.out.append(Send(to, msg))

    def _absorb(self, gossip: tuple[Any, ...], now: float) -> None:
        for m in gossip:
            kind = type(m)
            if kind is Alive:
                self._alive(m, now)
            elif kind is Suspect:
                self.suspect(m, now)
            elif kind is Dead:
                self.dead(m, now)
            elif kind is JoinIntent or kind is LeaveIntent:
                self.delegate.notify_msg(m, now)
            else:
                self.stats["ignored"] += 1

    # ============================================================ push-pull
    def _push_pull_tick(self, now: float) -> None:
        self._set_timer("push-pull", self.cfg.push_pull_interval_for(len(self.nodes)))
        for seq in [s for s, (deadline, _, _) in self.push_pulls.items() if deadline < now]:
            del self.push_pulls[seq]
        peers = self._k_random(1, lambda n: n.name == self.name or n.state != ALIVE)
        if peers:
            self._send_push_pull(peers[0].addr, now)

    def _push_state(self) -> dict[str, Any]:
        nodes = self.nodes.values()
        return {"names": tuple([n.name for n in nodes]), "addrs": tuple([n.addr for n in nodes]),
                "incarnations": tuple([n.incarnation for n in nodes]),
                "states": tuple([n.state for n in nodes]), "metas": tuple([n.meta for n in nodes]),
                "vsns": tuple([n.vsn for n in nodes])}

    def _send_push_pull(self, addr: str, now: float, req: int | None = None, join: bool = False) -> None:
        if len(self.push_pulls) >= 64:  # forget exchanges nobody answered within the stream timeout
            for seq in [s for s, (deadline, _, _) in self.push_pulls.items() if deadline < now]:
                del self.push_pulls[seq]
        self.seq += 1
        self.push_pulls[self.seq] = (now + self.cfg.stream_timeout_s, req, addr)
        self.stats["push_pulls"] += 1
        self.out.append(Send(addr, PushPullReq(seq=self.seq, src_name=self.name, src_addr=self.addr,
                                               join=join, **self._push_state(), **self._serf_state())))

    def _on_push_pull_req(self, req: PushPullReq, now: float) -> None:
        self.out.append(Send(req.src_addr, PushPullResp(seq=req.seq, src_name=self.name, src_addr=self.addr,
                                                        join=req.join, **self._push_state(),
                                                        **self._serf_state())))
        self._merge(req, now)
        if req.join:
            self._gossip_soon()

    def _gossip_soon(self) -> None:
        """A join was just merged: gossip the news now, not at the timer's next phase.

        memberlist waits for its free-running gossip ticker (half an interval
        on average); a join is rare and its news is what everyone waits for.
        """
        if len(self.queue) and not self.stopped:
            self.gossip_armed = True
            self._set_timer("gossip", 0.0)

    def _serf_state(self) -> dict[str, Any]:
        ltime, status, left = self.delegate.local_state()
        return {"ltime": ltime, "status_names": tuple([s[0] for s in status]),
                "status_ltimes": tuple([s[1] for s in status]), "left": left}

    def _on_push_pull_resp(self, resp: PushPullResp, now: float) -> None:
        entry = self.push_pulls.pop(resp.seq, None)
        if entry is None:
            self.stats["ignored"] += 1  # unsolicited, or answered after the stream timeout
            return
        self._merge(resp, now)
        req = entry[1]
        pending = self.joins.get(req) if req is not None else None
        if pending is not None:
            pending[0] -= 1
            pending[1] += 1
            if pending[0] <= 0:
                self._finish_join(req, now)
        if resp.join:
            self._gossip_soon()

    def stream_failed(self, addr: str, now: float) -> None:
        """The stream to *addr* failed (refused, reset): a join waiting on its push-pull counts it
        as not contacted now, as memberlist's dial error ends that address's try at once."""
        for seq, (_, req, to) in list(self.push_pulls.items()):
            if to != addr or req is None:
                continue
            del self.push_pulls[seq]
            pending = self.joins.get(req)
            if pending is not None:
                pending[0] -= 1
                if pending[0] <= 0:
                    self._finish_join(req, now)

    def _join_timeout(self, req: int, now: float) -> None:
        if req in self.joins:
            self._finish_join(req, now)

    def _finish_join(self, req: int, now: float) -> None:
        _, contacted = self.joins.pop(req)
        self._cancel_timer(f"join:{req}")
        self.delegate.join_finished(req, contacted, now)

    def _merge(self, pp: PushPullReq | PushPullResp, now: float) -> None:
        for name, addr, inc, state, meta, vsn in pp.rows():
            if not valid_member(name, addr, inc, state, meta, vsn):
                self.stats["ignored"] += 1
                continue
            if state == ALIVE:
                self._alive_fields(name, addr, inc, meta, vsn, None, now)
            elif state == LEFT:
                self.dead(Dead(name=name, incarnation=inc, sender=name), now)
            else:
                # A remote "dead" is only a suspicion here: it may be stale, and
                # the member deserves the chance to refute.  It is the peer's
                # belief, not our observation: it must neither confirm a running
                # suspicion nor be gossiped as a new accuser (memberlist does
                # both, so two members that push-pull mid-suspicion become two
                # "independent" confirmations everywhere and cut the timeout).
                self.suspect(Suspect(name=name, incarnation=inc, sender=pp.src_name), now, hearsay=True)
        self.delegate.merge_remote_state(pp, now)

    # ============================================================ state changes
    def _alive(self, a: Alive, now: float, bootstrap: bool = False) -> None:
        self._alive_fields(a.name, a.addr, a.incarnation, a.meta, a.vsn, a, now, bootstrap)

    def _alive_fields(self, name: str, addr: str, incarnation: int, meta: bytes, vsn: bytes,
                      msg: Alive | None, now: float, bootstrap: bool = False) -> None:
        local = name == self.name
        if local and self.leaving:
            return  # an alive about us still in flight must not undo our leave
        node = self.nodes.get(name)
        updates_node = False
        if node is None:
            node = NodeState(name, addr, 0, DEAD, now, meta, vsn)
            self._add_node(node)
            updates_node = True
        elif node.addr != addr:
            if node.state != LEFT:
                self.stats["conflicts"] += 1  # two members claim one name: keep the one we know
                return
            updates_node = True  # a member that left may come back at a new address
        if not updates_node:
            if incarnation < node.incarnation or (incarnation == node.incarnation and not local):
                return
        self._clear_suspicion(name)
        old_state, old_meta = node.state, node.meta
        if local and not bootstrap:
            if incarnation == node.incarnation and meta == node.meta and vsn == node.vsn:
                return
            self._refute(node, incarnation)
        else:
            if msg is None:
                msg = Alive(name=name, addr=addr, incarnation=incarnation, meta=meta, vsn=vsn)
            self.broadcast(name, msg)
            node.incarnation = incarnation
            node.meta = meta
            node.addr = addr
            node.vsn = vsn
            if node.state != ALIVE:
                node.state = ALIVE
                node.state_change = now
        self.stats["alive"] += 1  # an alive accepted (memberlist's msg.alive), a refute of our own too
        if old_state == DEAD or old_state == LEFT:
            self.delegate.notify_join(node, now)
        elif old_meta != node.meta:
            self.delegate.notify_update(node, now)
        else:
            self.delegate.notify_alive(node, now)

    def suspect(self, s: Suspect, now: float, hearsay: bool = False) -> None:
        """Handle a suspicion (SWIM §4.2, Lifeguard §IV-B); *hearsay* comes from a push-pull state."""
        node = self.nodes.get(s.name)
        if node is None:
            return
        if s.incarnation < node.incarnation:
            if s.name == self.name:
                self._reassert()
            return
        sus = self.suspicions.get(s.name)
        if sus is not None:
            if hearsay:
                return
            remaining = sus.confirm(s.sender, now)
            if remaining is not None:
                # New information: pass it on, so confirmations keep flowing.
                self.broadcast(s.name, s)
                self._set_timer(f"suspect:{s.name}", max(0.0, remaining))
            return
        if node.state != ALIVE:
            return
        if s.name == self.name:
            self._refute(node, s.incarnation)
            return
        if not hearsay:
            self.broadcast(s.name, s)
        self.stats["suspects"] += 1
        node.incarnation = s.incarnation
        node.state = SUSPECT
        node.state_change = now
        n = len(self.nodes)
        cfg = self.cfg
        sus = Suspicion(s.sender, cfg.suspicion_confirmations(n), cfg.suspicion_timeout_s(n),
                        cfg.suspicion_max_timeout_s(n), now)
        self.suspicions[s.name] = sus
        self._set_timer(f"suspect:{s.name}", sus.initial_timeout())

    def _suspicion_timeout(self, name: str, now: float) -> None:
        sus = self.suspicions.pop(name, None)
        node = self.nodes.get(name)
        if sus is None or node is None or node.state != SUSPECT or node.state_change != sus.start:
            return
        self.dead(Dead(name=name, incarnation=node.incarnation, sender=self.name), now)

    def dead(self, d: Dead, now: float) -> None:
        node = self.nodes.get(d.name)
        if node is None:
            return
        if d.incarnation < node.incarnation:
            if d.name == self.name:
                self._reassert()
            return
        self._clear_suspicion(d.name)
        if node.dead_or_left():
            return
        if d.name == self.name:
            if not self.leaving:
                self._refute(node, d.incarnation)
                return
            self.broadcast(d.name, d, notify="leave-dead")
        else:
            self.broadcast(d.name, d)
        self.stats["dead"] += 1
        node.incarnation = d.incarnation
        node.state = LEFT if d.name == d.sender else DEAD
        node.state_change = now
        self.delegate.notify_leave(node, now)

    def _refute(self, me: NodeState, accused: int) -> None:
        """Someone thinks we are suspect or dead: outbid their incarnation and say so."""
        self.incarnation += 1
        if accused >= self.incarnation:
            self.incarnation = accused + 1
        me.incarnation = self.incarnation
        self.awareness.apply(1)  # Lifeguard: being accused hints that we are slow
        self.stats["refutes"] += 1
        self.broadcast(self.name, Alive(name=self.name, addr=self.addr, incarnation=self.incarnation,
                                        meta=me.meta, vsn=me.vsn))

    def _reassert(self) -> None:
        """A stale accusation reached us: someone missed our refutation; say it again.

        An accuser still holding an older incarnation has not heard our last
        alive (memberlist would ignore it and let the accuser's suspicion run
        out).  Re-queue the alive we last sent, unchanged: members that have
        it ignore it, so this cannot grow into a storm.
        """
        if self.leaving or self.queue.has(self.name):
            return
        me = self.nodes[self.name]
        self.stats["reasserts"] += 1
        self.broadcast(self.name, Alive(name=self.name, addr=self.addr, incarnation=me.incarnation,
                                        meta=me.meta, vsn=me.vsn))

    def _clear_suspicion(self, name: str) -> None:
        if self.suspicions.pop(name, None) is not None:
            self._cancel_timer(f"suspect:{name}")

    # ============================================================ helpers
    def _set_timer(self, name: str, delay_s: float) -> None:
        self.out.append(SetTimer(name, delay_s))

    def _cancel_timer(self, name: str) -> None:
        self.out.append(CancelTimer(name))

    def seed_view(self, alives: list[Alive], now: float) -> None:
        """Start from a converged view (simulations of large pools skip the mass join).

        Equivalent to having heard each :class:`Alive` by push-pull, except
        that nothing is queued for dissemination: everyone already knows.
        """
        for a in alives:
            if a.name == self.name or a.name in self.nodes:
                continue
            self._add_node(NodeState(a.name, a.addr, a.incarnation, ALIVE, now, a.meta, a.vsn))

    def check_invariants(self, full: bool = False) -> None:
        """Cheap checks always; ``full`` also walks every member and queued broadcast."""
        me = self.nodes.get(self.name)
        if self.incarnation > 0:
            if me is None:
                raise GossipInvariantError(f"{self.name}: not in its own view")
            if me.incarnation != self.incarnation:
                raise GossipInvariantError(f"{self.name}: own incarnation {me.incarnation} "
                                           f"!= {self.incarnation}")
            want = LEFT if self.leaving else ALIVE
            if me.state != want:
                raise GossipInvariantError(f"{self.name}: sees itself in state {me.state}, not {want}")
        if len(self.order) != len(self.nodes):
            raise GossipInvariantError(f"{self.name}: probe order has {len(self.order)} of "
                                       f"{len(self.nodes)} members")
        if not 0 <= self.awareness.score < self.awareness.max:
            raise GossipInvariantError(f"{self.name}: awareness {self.awareness.score} out of range")
        for name in self.suspicions:
            node = self.nodes.get(name)
            if node is None or node.state != SUSPECT:
                raise GossipInvariantError(f"{self.name}: suspicion timer for {name} not suspect")
        if not full:
            return
        if sorted(self.order) != sorted(self.nodes):
            raise GossipInvariantError(f"{self.name}: probe order is not a permutation of members")
        for node in self.nodes.values():
            if node.state not in (ALIVE, SUSPECT, DEAD, LEFT):
                raise GossipInvariantError(f"{self.name}: {node.name} in unknown state {node.state}")
            if node.state == SUSPECT and node.name not in self.suspicions and not self.stopped:
                raise GossipInvariantError(f"{self.name}: {node.name} suspect with no timer")
        limit = self.retransmit_limit()
        for _, transmits in self.queue.items():
            if transmits >= max(limit, 1) + 1:
                raise GossipInvariantError(f"{self.name}: broadcast sent {transmits} > limit {limit}")


__all__ = [
    "VSN_BYTES",
    "Awareness",
    "BroadcastQueue",
    "CancelTimer",
    "Delegate",
    "Effect",
    "Emit",
    "GossipInvariantError",
    "NodeState",
    "Reply",
    "Send",
    "SetTimer",
    "Suspicion",
    "SwimCore",
    "remaining_suspicion_time",
]
