"""Server-side heartbeats: the pure TTL and expiry core, and the HeartbeatMonitor actor.

Nomad's ``nomad/heartbeat.go`` (NOMAD.md §3):

* only the leader keeps timers, one per live (non-``down``) node;
* every Register and UpdateStatus answers with a TTL scaled so the whole
  cluster stays under ``max_heartbeats_per_second``, never below
  ``min_heartbeat_ttl``, plus a uniform random stagger in ``[0, base)``;
* the server's timer is ``TTL + heartbeat_grace``: the client heartbeats
  every TTL, so grace is its slack for a slow or retried heartbeat;
* a new leader first gives every non-down node exactly
  ``failover_heartbeat_ttl`` (no grace, no stagger), so a leader change
  never marks a healthy cluster down;
* a leader that steps down clears every timer.

One deliberate difference: a reset never moves a node's deadline earlier
than one this leader already promised it.  Nomad replaces the timer, so a
heartbeat answered with a short TTL right after one with a long TTL -- or
a retried request the leader processes late -- can expire a node before
the time its client was told.  Here every TTL handed out is honoured, which
costs at most one earlier TTL of extra detection time.  The failover timer
is not a promise to the client and is replaced as in Nomad.

:class:`HeartbeatTimers` is the core: deadlines in a dict plus a lazy heap,
time passed in, no I/O.  :class:`HeartbeatMonitor` hosts it with a single
actor timer armed at the earliest deadline (10,000 nodes cost one timer,
not 10,000), answers the NodeEndpoint's ``ResetHeartbeat`` with the TTL, and
tells the endpoint ``NodeExpired`` when a deadline passes -- the endpoint
marks the node down through Raft, as Nomad's ``invalidateHeartbeat`` calls
``Node.UpdateStatus``.

**Fast path.**  A plain heartbeat (``ready`` from a node whose status is
already ``ready``) changes no state, so clients address it to the monitor
itself (and the endpoint hands over any that reach it,
:class:`FastHeartbeat`): the monitor answers the client when it holds a
live timer for a node it knows is ready.  That knowledge is sound on the
leader: only the endpoint's UpdateStatus changes a status, it tells the
monitor the outcome with every reset, and expiry, step-down and
``ClearHeartbeat`` forget it.  A heartbeat for a node not known ready goes
to the endpoint (:class:`SlowHeartbeat`) for the full read/write path; on a
server that does not lead, the request goes to the endpoint as it came,
which forwards it to the leader.  A heartbeat is thus two actor turns on
the leader's side (receive + answer on the client), the leader's main cost
at 10,000 nodes.  The endpoint keeps the monitor told of the server list
that answers carry (:class:`HeartbeatServers`).
"""

from __future__ import annotations

import heapq
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from random import Random

from actors.client.messages import DOWN, READY, NodeUpdateResponse, UpdateNodeStatus
from actors.raft.peer import Read
from actors.server import ENDPOINT, RAFT, InfoQuery, LeadershipChanged, RaftInfo, RaftReply, ReplyTo, log
from runtime.actor import NodeActor
from runtime.config import ServerConfig
from runtime.env import Env
from runtime.wire import builder

# Nomad helper.RateScaledInterval: at or below one event a day the rate is
# treated as "unlimited" and the minimum applies.
MIN_RATE = 1.0 / 86400
MIN_TIMER_S = 1e-6  # shortest expiry timer: later than any float rounding of "now + delay"
# HeartbeatTimers' calendar buckets per second: an entry moves once per bucket it waits past, and a
# bucket's entries are scanned each time the earliest deadline is asked for (a few per heartbeat second).
_BUCKETS_PER_S = 1.0
NOT_LEADER = "failed to reset heartbeat since server is not leader"  # Nomad's text
_node_update_response = builder(NodeUpdateResponse)  # one per heartbeat answered


@dataclass(frozen=True, slots=True, kw_only=True)
class HeartbeatConfig:
    """The server's heartbeat knobs (``server.*`` keys; defaults from nomad/config.go)."""

    # Floor of the TTL: small clusters heartbeat every 10-20 s, often enough
    # to notice a dead node quickly, rare enough to cost nothing.
    min_heartbeat_ttl_s: float = 10.0
    # Cluster-wide heartbeat budget of the leader: TTL = n / rate, so 5,000
    # nodes heartbeat every 100-200 s and the leader sees at most ~50/s.
    max_heartbeats_per_second: float = 50.0
    # Slack after the TTL before a node is marked down: covers a heartbeat
    # that is late, lost once, or retried on another server.
    heartbeat_grace_s: float = 10.0
    # Flat TTL a new leader gives every node: clients must find the new
    # leader (retries, server rotation) before anything is marked down.
    failover_heartbeat_ttl_s: float = 300.0
    # Retry delay of the new leader's read of the node table (a Raft
    # barrier); it fails only while leadership is still settling.
    init_retry_s: float = 1.0
    # With a metrics registry: how often nomad.heartbeat.active (the timers
    # this server holds; 0 unless it leads) is set (Nomad heartbeatStats: 5 s).
    stats_interval_s: float = 5.0

    def __post_init__(self) -> None:
        if self.stats_interval_s <= 0:
            raise ValueError("stats_interval_s must be > 0")
        if self.min_heartbeat_ttl_s <= 0:
            raise ValueError("min_heartbeat_ttl_s must be > 0")
        if self.max_heartbeats_per_second <= 0:
            raise ValueError("max_heartbeats_per_second must be > 0")
        if self.heartbeat_grace_s < 0:
            raise ValueError("heartbeat_grace_s must be >= 0")
        if self.failover_heartbeat_ttl_s <= 0:
            raise ValueError("failover_heartbeat_ttl_s must be > 0")
        if self.init_retry_s <= 0:
            raise ValueError("init_retry_s must be > 0")

    @classmethod
    def from_server(cls, server: ServerConfig) -> HeartbeatConfig:
        return cls(min_heartbeat_ttl_s=server.min_heartbeat_ttl_s,
                   max_heartbeats_per_second=server.max_heartbeats_per_second,
                   heartbeat_grace_s=server.heartbeat_grace_s,
                   failover_heartbeat_ttl_s=server.failover_heartbeat_ttl_s)


def rate_scaled_interval(rate: float, min_s: float, n: int) -> float:
    """Nomad ``helper.RateScaledInterval``: ``max(n / rate, min_s)``; min_s if rate <= 1/day."""
    if rate <= MIN_RATE:
        return min_s
    return max(n / rate, min_s)


def random_stagger(rng: Random, interval_s: float) -> float:
    """Nomad ``helper.RandomStagger``: uniform in ``[0, interval_s)``; 0 for a zero interval."""
    if interval_s <= 0:
        return 0.0
    return rng.random() * interval_s


def heartbeat_ttl(cfg: HeartbeatConfig, n: int, rng: Random) -> float:
    """The TTL handed to a client when the leader tracks *n* timers: in ``[base, 2 base)``."""
    base = rate_scaled_interval(cfg.max_heartbeats_per_second, cfg.min_heartbeat_ttl_s, n)
    return base + random_stagger(rng, base)


class HeartbeatTimers:
    """The leader's node deadlines (pure: time is an argument, the RNG is passed in).

    ``deadlines`` maps node ID to the time it expires.  A deadline answered
    to a client is a promise: a later heartbeat only moves it later (every
    TTL handed out is honoured).  The failover TTL a new leader gives is
    not (``_failover``: the nodes holding one); the node's first heartbeat
    replaces it, earlier or later.

    The earliest deadline is found through a calendar: each live node has
    one entry, in the bucket of whole seconds (``_BUCKETS_PER_S``) that holds
    a time no later than its deadline (``_queued``: the entry's bucket), and
    a heap of the buckets' numbers.  A heartbeat changes the node's deadline
    and nothing else: its entry comes up with its bucket and moves then to
    the bucket of the node's deadline -- once per entry's wait (about a TTL
    + grace), not once per heartbeat, and as a list append, where a heap of
    ``(deadline, node)`` pairs compared its way down a dozen levels of cold
    pairs.  A deadline brought earlier (the failover TTL replaced) or a node
    removed leaves a stale entry that is dropped when its bucket comes up;
    the calendar is rebuilt once it holds more than twice the live nodes, so
    memory stays O(nodes).
    """

    def __init__(self, cfg: HeartbeatConfig) -> None:
        self.cfg = cfg
        self.deadlines: dict[str, float] = {}
        self._failover: dict[str, None] = {}  # nodes whose deadline is the failover TTL, not a promise
        self._queued: dict[str, int] = {}  # node -> the bucket of its entry (<= its deadline's bucket)
        self._buckets: dict[int, list[str]] = {}
        self._keys: list[int] = []  # a heap of the buckets in _buckets
        self._entries = 0  # entries in _buckets, stale ones included
        # rate_scaled_interval for the last timer count seen: it changes only
        # when a node comes or goes, and reset runs once per heartbeat.
        self._base_n = -1
        self._base = 0.0

    def __len__(self) -> int:
        return len(self.deadlines)

    def __contains__(self, node_id: object) -> bool:
        return node_id in self.deadlines

    def promised(self, node_id: str) -> float:
        """The deadline answered TTLs promised *node_id* (its deadline, unless a failover one); 0 if none."""
        if node_id in self._failover:
            return 0.0
        return self.deadlines.get(node_id, 0.0)

    def _set(self, node_id: str, deadline: float) -> None:
        """A deadline that is not a promise (the failover TTL)."""
        self.deadlines[node_id] = deadline
        self._failover[node_id] = None
        queued = self._queued.get(node_id)
        if queued is None or int(deadline * _BUCKETS_PER_S) < queued:
            self._queue(node_id, deadline)

    def _queue(self, node_id: str, deadline: float) -> None:
        """An entry for *node_id* in the bucket of *deadline* (any other entry of it becomes stale)."""
        if self._entries >= 2 * len(self.deadlines) + 64:
            self._rebuild()
            if node_id in self._queued:  # the rebuild queued it at its deadline
                return
        b = int(deadline * _BUCKETS_PER_S)
        self._queued[node_id] = b
        bucket = self._buckets.get(b)
        if bucket is None:
            self._buckets[b] = [node_id]
            heapq.heappush(self._keys, b)
        else:
            bucket.append(node_id)
        self._entries += 1

    def _rebuild(self) -> None:
        self._buckets.clear()
        self._keys.clear()
        self._queued.clear()
        self._entries = 0
        for node_id, deadline in self.deadlines.items():
            self._queue(node_id, deadline)

    def reset(self, node_id: str, now: float, rng: Random) -> float:
        """A heartbeat (or registration) from *node_id*: returns the TTL for the client.

        The TTL is computed from the timers tracked *before* this node is
        (re)added, as Nomad does; the deadline is ``now + ttl + grace``, or a
        later one already promised to this node.
        """
        deadlines = self.deadlines
        n = len(deadlines)
        if n != self._base_n:
            self._base_n = n
            cfg = self.cfg
            self._base = rate_scaled_interval(cfg.max_heartbeats_per_second, cfg.min_heartbeat_ttl_s, n)
        base = self._base
        # heartbeat_ttl(self.cfg, n, rng), with random_stagger inlined (base > 0).
        ttl = base + rng.random() * base
        deadline = now + ttl + self.cfg.heartbeat_grace_s
        old = deadlines.get(node_id)
        if old is not None and not (self._failover and node_id in self._failover):
            # A promise (nearly every heartbeat): the deadline only moves later, so the node's
            # entry, no later than the old deadline, stays where it is.
            if old > deadline:
                deadline = old
            deadlines[node_id] = deadline
            return ttl
        self._failover.pop(node_id, None)
        deadlines[node_id] = deadline
        queued = self._queued.get(node_id)
        if queued is None or int(deadline * _BUCKETS_PER_S) < queued:
            self._queue(node_id, deadline)
        return ttl

    def initialize(self, node_ids: Iterable[str], now: float) -> int:
        """A new leader: every known live node gets exactly the failover TTL.

        A node that already heartbeated to this leader keeps its (shorter)
        timer: it holds a fresh TTL and will heartbeat again within it.
        Returns how many timers were created.
        """
        made = 0
        deadline = now + self.cfg.failover_heartbeat_ttl_s
        for node_id in node_ids:
            if node_id not in self.deadlines:
                self._set(node_id, deadline)
                made += 1
        return made

    def remove(self, node_id: str) -> None:
        self.deadlines.pop(node_id, None)
        self._failover.pop(node_id, None)
        self._queued.pop(node_id, None)

    def clear(self) -> None:
        """Leadership lost: no timer survives (Nomad ``clearAllHeartbeatTimers``)."""
        self.deadlines.clear()
        self._failover.clear()
        self._queued.clear()
        self._buckets.clear()
        self._keys.clear()
        self._entries = 0

    def _earliest(self) -> float | None:
        """The earliest deadline, with the first bucket holding live entries, each at its deadline."""
        keys, buckets, live, queued = self._keys, self._buckets, self.deadlines, self._queued
        while keys:
            b = keys[0]
            bucket = buckets[b]
            # An entry of a node may stand twice in a bucket (a stale one, from before its deadline
            # was brought earlier or it was removed, and its live one moved or queued there since):
            # both look live, and the dict keeps it once.
            kept: dict[str, None] = {}
            best = None
            moved = 0
            for node_id in bucket:
                if queued.get(node_id) != b:
                    continue  # superseded by an earlier entry, or the node is gone
                deadline = live[node_id]
                later = int(deadline * _BUCKETS_PER_S)
                if later != b:  # the node heartbeated since: its entry moves to its deadline's bucket
                    queued[node_id] = later
                    later_bucket = buckets.get(later)
                    if later_bucket is None:
                        buckets[later] = [node_id]
                        heapq.heappush(keys, later)
                    else:
                        later_bucket.append(node_id)
                    moved += 1
                    continue
                kept[node_id] = None
                if best is None or deadline < best:
                    best = deadline
            self._entries -= len(bucket) - len(kept) - moved
            if kept:
                buckets[b] = list(kept)
                return best
            del buckets[b]
            heapq.heappop(keys)
        return None

    def next_deadline(self) -> float | None:
        return self._earliest()

    def pop_expired(self, now: float) -> list[str]:
        """Remove and return (in deadline order, then node ID) every node whose deadline is <= *now*."""
        expired: list[tuple[float, str]] = []
        while True:
            first = self._earliest()
            if first is None or first > now:
                break
            b = self._keys[0]
            bucket = self._buckets[b]
            kept = []
            for node_id in bucket:  # every entry here is live and at its deadline (_earliest)
                deadline = self.deadlines[node_id]
                if deadline <= now:
                    expired.append((deadline, node_id))
                    del self.deadlines[node_id]
                    del self._queued[node_id]
                    self._failover.pop(node_id, None)
                else:
                    kept.append(node_id)
            self._entries -= len(bucket) - len(kept)
            if kept:
                self._buckets[b] = kept
                break
            del self._buckets[b]
            heapq.heappop(self._keys)
        expired.sort()
        return [node_id for _, node_id in expired]

    def check_invariants(self) -> None:
        if self._queued.keys() != self.deadlines.keys():
            raise AssertionError("the nodes with a calendar entry are not the live nodes")
        if not self._failover.keys() <= self.deadlines.keys():
            raise AssertionError("a node without a timer holds a failover deadline")
        if sorted(self._keys) != sorted(self._buckets) or len(set(self._keys)) != len(self._keys):
            raise AssertionError("the heap of buckets is not the calendar's buckets")
        if self._entries != sum(len(b) for b in self._buckets.values()):
            raise AssertionError("the calendar's entry count is off")
        for node_id, deadline in self.deadlines.items():
            queued = self._queued[node_id]
            if queued > int(deadline * _BUCKETS_PER_S):
                raise AssertionError(f"node {node_id}'s calendar entry is later than its deadline")
            if node_id not in self._buckets.get(queued, ()):
                raise AssertionError("a live node's entry is missing from the calendar")


# ------------------------------------------------------------ local messages (never on the wire)
@dataclass(frozen=True, slots=True)
class ResetHeartbeat:
    """NodeEndpoint -> monitor: (re)start *node_id*'s timer; answered with HeartbeatReset."""

    op_id: int
    node_id: str
    status: str = ""  # the node's committed status, so the monitor knows who is ready


@dataclass(frozen=True, slots=True)
class FastHeartbeat:
    """NodeEndpoint -> monitor: a heartbeat to answer directly if the node is known ready."""

    request: UpdateNodeStatus
    servers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class HeartbeatServers:
    """NodeEndpoint -> monitor: the server list answers hand to clients (sent when it changes)."""

    servers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SlowHeartbeat:
    """Monitor -> NodeEndpoint: not known ready here; take the full path."""

    request: UpdateNodeStatus


@dataclass(frozen=True, slots=True)
class HeartbeatReset:
    op_id: int
    node_id: str
    ok: bool
    ttl_s: float = 0.0
    num_nodes: int = 0
    error: str = ""


@dataclass(frozen=True, slots=True)
class ClearHeartbeat:
    """NodeEndpoint -> monitor: the node is down or gone; stop its timer."""

    node_id: str


@dataclass(frozen=True, slots=True)
class NodeExpired:
    """Monitor -> NodeEndpoint: *node_id* missed TTL + grace; mark it down."""

    node_id: str


def live_node_ids(state: Any) -> list[str]:
    """Read query (runs inside Raft): the IDs of every node that is not down, sorted."""
    nodes = state.tables["nodes"]
    return [nid for nid in sorted(nodes) if nodes[nid].get("Status") != DOWN]


class HeartbeatMonitor(NodeActor):
    """Per-node TTL timers on the leader; expiry -> ``NodeExpired`` to the endpoint."""

    def __init__(self, env: Env, name: str, *, config: HeartbeatConfig | None = None, raft: str = RAFT,
                 endpoint: str = ENDPOINT, metrics: Any = None) -> None:
        super().__init__(env, name)
        self.cfg = config or HeartbeatConfig()
        self.metrics = metrics  # the agent's registry; None (simulations): no gauge, no timer for it
        self.timers = HeartbeatTimers(self.cfg)
        self.raft = raft
        self.endpoint = endpoint
        self.is_leader = False
        self.term = 0
        self.initialized = False
        self._barrier_at = 0.0  # env time the leadership barrier (the nodes read) was sent
        self.ready: dict[str, None] = {}  # nodes with a timer whose committed status is ready
        self.servers: tuple[str, ...] = ()  # what answers tell clients; the endpoint keeps it current
        self._armed_at: float | None = None
        self.stats = {"resets": 0, "fast": 0, "expired": 0, "initialized": 0}

    def on_start(self) -> None:
        # Restarted while this server leads: learn it now, not at the next change.
        self.send(self.env.node, self.raft, InfoQuery(reply_to=self.name))
        if self.metrics is not None:
            self.set_timer("stats", 0.0)

    # ------------------------------------------------------------ messages
    def receive(self, message: Any) -> Any:
        if isinstance(message, UpdateNodeStatus):
            if self.is_leader and message.status == READY:  # _heartbeat's fast case, without its call
                self._fast(message, self.servers)
            else:
                self._heartbeat(message, self.servers)
        elif isinstance(message, FastHeartbeat):
            self._fast(message.request, message.servers)
        elif isinstance(message, HeartbeatServers):
            self.servers = message.servers
        elif isinstance(message, ResetHeartbeat):
            self._reset(message)
        elif isinstance(message, ClearHeartbeat):
            self.timers.remove(message.node_id)
            self.ready.pop(message.node_id, None)
        elif isinstance(message, (LeadershipChanged, RaftInfo)):
            if isinstance(message, RaftInfo) and (message.voters or message.learners):
                # The Raft members are the server list (as the endpoint's): a
                # restarted monitor knows it before the endpoint's next change.
                self.servers = tuple(sorted(message.voters + message.learners))
            self._leadership(message.is_leader, message.term)
        elif isinstance(message, RaftReply):
            self._initialized_reply(message)
        elif message == "status":
            return {"leader": self.is_leader, "active": len(self.timers), **self.stats}
        return None

    def _reset(self, m: ResetHeartbeat) -> None:
        if not self.is_leader:
            refused = HeartbeatReset(m.op_id, m.node_id, False, error=NOT_LEADER)
            self.send(self.env.node, self.endpoint, refused)
            return
        # Interned: a node's ID is a key of two tables for as long as it lives, and each heartbeat looks
        # it up in both (a client in the same process, the simulator's, sends this very string).
        node_id = sys.intern(m.node_id)
        ttl = self.timers.reset(node_id, self.env.now(), self.env.rng)
        if m.status == READY:
            self.ready[node_id] = None
        else:
            self.ready.pop(node_id, None)
        self.stats["resets"] += 1
        self._arm()
        self.send(self.env.node, self.endpoint,
                  HeartbeatReset(m.op_id, m.node_id, True, ttl_s=ttl, num_nodes=len(self.timers)))

    def _heartbeat(self, r: UpdateNodeStatus, servers: tuple[str, ...]) -> None:
        """A client's UpdateStatus addressed to the monitor."""
        if self.is_leader and r.status == READY:
            self._fast(r, servers)
        else:
            # Not leading (the endpoint forwards to the leader or answers
            # "no leader"), or a status change: the endpoint's full path.
            self.send(self.env.node, self.endpoint, r)

    def _fast(self, r: UpdateNodeStatus, servers: tuple[str, ...]) -> None:
        node_id, timers, env = r.node_id, self.timers, self.env
        deadlines = timers.deadlines
        if not (self.is_leader and r.status == READY and node_id in self.ready and node_id in deadlines):
            self.send(env.node, self.endpoint, SlowHeartbeat(r))
            return
        ttl = timers.reset(node_id, env.now(), env.rng)
        self.stats["fast"] += 1
        # _arm() only ever pulls the expiry timer earlier, and it leaves it
        # armed at or before every live deadline; a new deadline at or after
        # the armed one changes nothing, so the heap need not be consulted.
        armed = self._armed_at
        if armed is None or deadlines[node_id] < armed:
            self._arm()
        answer = _node_update_response(req_id=r.req_id, ok=True, heartbeat_ttl_s=ttl, leader=env.node,
                                       servers=servers, num_nodes=len(deadlines))
        env.send(r.reply_node, r.reply_actor, answer)  # NodeActor.send, without its call (once per heartbeat)

    # ------------------------------------------------------------ leadership
    def _leadership(self, is_leader: bool, term: int) -> None:
        if is_leader and not (self.is_leader and term == self.term):
            self._become_leader(term)
        elif not is_leader and self.is_leader:
            self._step_down()

    def _become_leader(self, term: int) -> None:
        self.timers.clear()
        self.ready.clear()
        self.is_leader, self.term, self.initialized = True, term, False
        self._read_nodes()

    def _read_nodes(self) -> None:
        # A linearizable read is the barrier Nomad runs before
        # initializeHeartbeatTimers: it sees every node committed so far.
        self._barrier_at = self.env.now()
        self.send(self.env.node, self.raft,
                  Read(query=live_node_ids, reply=ReplyTo(self.env, self.name, ("init", self.term))))

    def _initialized_reply(self, m: RaftReply) -> None:
        if not (self.is_leader and m.tag == ("init", self.term)) or self.initialized:
            return
        if not m.ok:
            self.set_timer("init", self.cfg.init_retry_s)
            return
        if self.metrics is not None:  # Nomad's leader.barrier: the leader's barrier on taking the lead
            self.metrics.add_sample(("nomad", "leader", "barrier"), (self.env.now() - self._barrier_at) * 1e3)
        made = self.timers.initialize([sys.intern(n) for n in m.value[1]], self.env.now())
        self.initialized = True
        self.stats["initialized"] += made
        log.info("%s: heartbeat timers initialized for %d nodes (failover TTL %.0fs)",
                 self.env.node, made, self.cfg.failover_heartbeat_ttl_s)
        self._arm()

    def _step_down(self) -> None:
        self.is_leader, self.initialized = False, False
        self.timers.clear()
        self.ready.clear()
        self.cancel_timer("expire")
        self.cancel_timer("init")
        self._armed_at = None

    # ------------------------------------------------------------ expiry
    def _arm(self) -> None:
        nd = self.timers.next_deadline()
        if nd is None:
            self.cancel_timer("expire")
            self._armed_at = None
        elif self._armed_at is None or nd < self._armed_at:
            # Only ever pull the timer earlier: a later deadline is picked up
            # when the armed one fires and finds nothing due.
            # The floor keeps a deadline a few ulps ahead of the clock from
            # re-arming at the same instant forever (the timer must fire at
            # or after the deadline: a node is never down early).
            self._armed_at = nd
            self.set_timer("expire", max(MIN_TIMER_S, nd - self.env.now()))

    def on_timer(self, name: str) -> None:
        if name == "stats":
            self.metrics.set_gauge(("nomad", "heartbeat", "active"), len(self.timers))
            self.set_timer("stats", self.cfg.stats_interval_s)
            return
        if name == "init":
            if self.is_leader and not self.initialized:
                self._read_nodes()
            return
        if name != "expire":
            return
        self._armed_at = None
        if not self.is_leader:
            return
        for node_id in self.timers.pop_expired(self.env.now()):
            self.stats["expired"] += 1
            self.ready.pop(node_id, None)
            log.warning("%s: node TTL expired node_id=%s", self.env.node, node_id)
            self.send(self.env.node, self.endpoint, NodeExpired(node_id))
        self._arm()
